//! Exit statuses that tell the truth, and the error that carries one to `main`.

/// Bad input: invalid values, flags or names. Nothing was changed.
pub const INVALID_INPUT: i32 = 2;
/// A failure at run time (a cluster that did not come up, a command that could not run).
pub const FAILURE: i32 = 1;

/// An error with the exit status it should end kompi with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl Exit {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Exit { code, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Exit::new(INVALID_INPUT, message)
    }
}

/// The status an error ends kompi with: its own if it carries one; invalid values are bad input.
pub fn code_of(error: &anyhow::Error) -> i32 {
    if let Some(exit) = error.downcast_ref::<Exit>() {
        return exit.code;
    }
    if error.downcast_ref::<kompi_spec::SpecError>().is_some() {
        return INVALID_INPUT;
    }
    FAILURE
}
