//! kompi inside the MPI pods (and inside the local backend's nodes): `kompi init` and `kompi hostfile`.

pub mod hostfile;
pub mod init;
