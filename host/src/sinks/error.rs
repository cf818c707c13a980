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
    #[error("{path}: writing Parquet: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
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
}
