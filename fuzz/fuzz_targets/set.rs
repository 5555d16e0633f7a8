#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kompi_fuzz::set(data));
