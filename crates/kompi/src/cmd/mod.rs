pub mod args;
pub mod keygen;
pub mod template;
pub mod local;
pub mod kube;
pub mod job;
pub mod operator;
