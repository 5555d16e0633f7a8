//! What the entry points of `kompi init` and `kompi hostfile` share: argument parsers, the error line.

use std::fmt::Display;
use std::io::Write;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use kompi_spec::{ClusterName, MpiImplementation};

pub fn cluster_name(s: &str) -> Result<ClusterName, String> {
    ClusterName::new(s)
}

/// `openmpi | mpich | intel`, listed in `--help`.
pub fn mpi_implementation() -> impl TypedValueParser<Value = MpiImplementation> {
    PossibleValuesParser::new(MpiImplementation::WORDS).try_map(|s| s.parse::<MpiImplementation>())
}

/// The one line a fatal error gets. Never panics, even with stderr closed (eprintln! would).
pub fn print_error(error: &dyn Display) {
    let _ = writeln!(std::io::stderr(), "error: {error}");
}
