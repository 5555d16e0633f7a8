//! kompi inside the MPI pods (and inside the local backend's nodes): `kompi init`, `kompi hostfile` and
//! `kompi launch`; and the hostfile writer the local backend shares.

pub mod atomic_file;
mod cli;
mod foreground;
pub mod gate;
pub mod hostfile;
pub mod init;
pub mod inject;
pub mod launch;
mod reaper;
mod termination;
