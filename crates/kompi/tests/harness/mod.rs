//! The runner of the tests that need what not every machine has (root, the unprivileged test user, the
//! testbed). Each test names its need; a test whose need is not met here is reported as ignored (nextest
//! shows it as skipped), with the reason on stderr, never as passed. `KOMPI_TESTS_REQUIRE_ALL=1`, which
//! `scripts/test.sh` sets on the machine it has prepared, makes an unmet need a failure instead, so CI
//! reports 0 skipped or fails.
#![allow(dead_code)] // each test binary uses its own part of this module

use libtest_mimic::{Arguments, Failed, Trial};

/// Whether this machine can run a test: `Err` says what is missing and how to get it.
pub type Need = fn() -> Result<(), String>;

pub struct Test {
    pub name: &'static str,
    pub need: Need,
    pub run: fn(),
}

/// `tests![need => [test_fn, ...], ...]`: the tests of a binary, each named after its function.
macro_rules! tests {
    ($($need:expr => [$($test:ident),* $(,)?]),* $(,)?) => {
        vec![$($(crate::harness::Test { name: stringify!($test), need: $need, run: $test }),*),*]
    };
}
pub(crate) use tests;

/// Runs the tests libtest's way (same flags, same output, so cargo test and nextest drive it) and exits.
pub fn main(tests: Vec<Test>) -> ! {
    let arguments = Arguments::from_args();
    let strict = std::env::var_os("KOMPI_TESTS_REQUIRE_ALL").is_some_and(|v| !v.is_empty() && v != "0");
    let trials = tests
        .into_iter()
        .map(|test| {
            let unmet = (test.need)().err();
            let ignore = unmet.is_some() && !strict;
            if let (true, Some(reason)) = (ignore, &unmet) {
                eprintln!("{}: cannot run here, ignored: {reason}", test.name);
            }
            let run = test.run;
            Trial::test(test.name, move || match unmet {
                Some(reason) => Err(Failed::from(format!("cannot run here: {reason} (KOMPI_TESTS_REQUIRE_ALL is set)"))),
                None => {
                    run();
                    Ok(())
                }
            })
            .with_ignored_flag(ignore)
        })
        .collect();
    libtest_mimic::run(&arguments, trials).exit()
}

/// Runs as root.
pub fn root() -> Result<(), String> {
    if nix::unistd::geteuid().is_root() { Ok(()) } else { Err("needs root".into()) }
}
