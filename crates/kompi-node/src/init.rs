//! `kompi init`: PID 1 of every MPI container. (Being written: see issue 3.)

use clap::Args;

#[derive(Args, Debug)]
pub struct InitArgs {}

pub fn run(_args: &InitArgs) -> i32 {
    eprintln!("error: kompi init is not implemented yet");
    1
}
