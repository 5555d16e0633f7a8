pub mod keygen;
pub mod template;
