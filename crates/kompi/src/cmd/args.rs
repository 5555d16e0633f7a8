//! Arguments several commands share.

use std::time::Duration;

use clap::Args;

/// How an MPI program is launched (`kompi run`, `kompi local run`).
#[derive(Args, Debug, Clone)]
pub struct LaunchArgs {
    /// Number of MPI processes (mpiexec --np; default: every slot of the hostfile)
    #[arg(long, value_name = "NP", value_parser = clap::value_parser!(u32).range(1..))]
    pub np: Option<u32>,
    /// Processes per node (mpiexec --npernode)
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub npernode: Option<u32>,
    /// An Open MPI MCA parameter for this run; may repeat
    #[arg(long, value_name = "NAME=VALUE", value_parser = kompi_spec::mca_parameter)]
    pub mca: Vec<(String, String)>,
    /// The program and its arguments
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `90`, `90s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = digits.parse().map_err(|_| format!("{text:?}: expected a duration such as 90s, 5m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: the unit must be s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

