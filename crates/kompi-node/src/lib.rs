//! kompi inside the MPI pods (and inside the local backend's nodes): `kompi init` and `kompi hostfile`.

mod atomic_file;
mod cli;
pub mod hostfile;
pub mod init;
mod termination;
