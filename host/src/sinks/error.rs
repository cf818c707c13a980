//! [`SinkError`].

use std::path::PathBuf;

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Reading or writing a file or directory failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the sink was doing, e.g. `renaming the finished file`.
        action: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Encoding Parquet failed.
    #[error("{path}: {action}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What the sink was doing, e.g. `encoding a batch`.
        action: &'static str,
        /// The cause.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Encoding Arrow (IPC, JSON or a table) failed.
    #[error("{output}: {action}: {source}")]
    Arrow {
        /// The file, or `stdout`.
        output: String,
        /// What the sink was doing.
        action: &'static str,
        /// The cause.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// The reader of a pipe (stdout) went away (`EPIPE`).
    #[error("{output}: the reader closed the pipe; nothing more can be written")]
    BrokenPipe {
        /// The output, e.g. `stdout`.
        output: String,
    },
    /// The sink cannot do what was asked, e.g. a second schema on an IPC stream.
    #[error("{output}: {message}")]
    Unsupported {
        /// The file, directory or `stdout`.
        output: String,
        /// What is not possible, and what to do instead.
        message: String,
    },
    /// An earlier call failed; the sink refuses more work so that nothing after the failure is
    /// reported as committed.
    #[error("{output}: not writing after an earlier failure")]
    Failed {
        /// The file, directory or `stdout`.
        output: String,
    },
}
