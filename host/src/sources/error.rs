//! [`SourceError`].

use std::path::PathBuf;

/// Why a source could not open or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading an input failed.
    #[error("source {source_name}: {path}: {action}: {cause}")]
    Io {
        /// The source's name.
        source_name: String,
        /// The file, socket address or `stdin`.
        path: PathBuf,
        /// What it was doing.
        action: &'static str,
        /// The cause.
        #[source]
        cause: std::io::Error,
    },
    /// The input cannot be read as its format at all (not one bad record: those are rejected
    /// rows), e.g. a corrupt Parquet footer.
    #[error("source {source_name}: {path}: {message}")]
    Format {
        /// The source's name.
        source_name: String,
        /// The input.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The schema could not be declared or inferred.
    #[error("source {source_name}: schema: {message}")]
    Schema {
        /// The source's name.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// Flow capture could not start or failed.
    #[error("source {source_name}: {cause}")]
    Capture {
        /// The source's name.
        source_name: String,
        /// The cause.
        #[source]
        cause: crate::capture::CaptureError,
    },
    /// The pipeline stopped taking chunks (it failed elsewhere).
    #[error("source {source_name}: the pipeline closed")]
    Closed {
        /// The source's name.
        source_name: String,
    },
}

impl SourceError {
    /// An [`SourceError::Io`] error.
    pub(crate) fn io(
        source_name: &str,
        path: impl Into<PathBuf>,
        action: &'static str,
        cause: std::io::Error,
    ) -> Self {
        Self::Io {
            source_name: source_name.to_owned(),
            path: path.into(),
            action,
            cause,
        }
    }

    /// A [`SourceError::Format`] error.
    pub(crate) fn format(
        source_name: &str,
        path: impl Into<PathBuf>,
        message: impl Into<String>,
    ) -> Self {
        Self::Format {
            source_name: source_name.to_owned(),
            path: path.into(),
            message: message.into(),
        }
    }

    /// A [`SourceError::Schema`] error.
    pub(crate) fn schema(source_name: &str, message: impl Into<String>) -> Self {
        Self::Schema {
            source_name: source_name.to_owned(),
            message: message.into(),
        }
    }

    /// A [`SourceError::Closed`] error.
    pub(crate) fn closed(source_name: &str) -> Self {
        Self::Closed {
            source_name: source_name.to_owned(),
        }
    }
}
