//! The error type policy functions return.

use std::fmt;

/// An error from a policy function or from the SDK (e.g. asking for a column under the wrong
/// type). Returned from `weir_process` as status `GUEST_ERROR` with [`Error::message`] as the
/// message; from `weir_init` as `BAD_CONFIG`.
///
/// Build one from a string, a `String` or `format!`:
///
/// ```
/// use weir_sdk::Error;
/// let e: Error = "bad row".into();
/// let f = Error::new(format!("row {} is bad", 3));
/// assert_eq!(f.message(), "row 3 is bad");
/// # let _ = e;
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = core::result::Result<T, E>;
