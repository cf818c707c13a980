//! Log lines to the host (`weir.log`), rate-limited there.
//!
//! On native builds (unit tests) lines go to stderr.

/// Log level.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Errors.
    Error = weir_abi::LOG_ERROR,
    /// Warnings.
    Warn = weir_abi::LOG_WARN,
    /// Information.
    Info = weir_abi::LOG_INFO,
    /// Debugging.
    Debug = weir_abi::LOG_DEBUG,
    /// Tracing.
    Trace = weir_abi::LOG_TRACE,
}

/// Sends one log line at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `len` bytes at `ptr` during the call; both describe `message`.
    unsafe {
        crate::rt::imports::log(level as i32, message.as_ptr(), message.len());
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[weir {level:?}] {message}");
}

/// Logs at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// Logs at warning level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}
