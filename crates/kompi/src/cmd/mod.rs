pub mod args;
pub mod keygen;
pub mod template;
pub mod local;
pub mod kube;
