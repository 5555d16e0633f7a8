//! `kompi hostfile`: the master's sidecar. (Being written: see issue 3.)

use clap::Args;

#[derive(Args, Debug)]
pub struct HostfileArgs {}

pub fn run(_args: &HostfileArgs) -> i32 {
    eprintln!("error: kompi hostfile is not implemented yet");
    1
}
