//! [`PolicyError`]: every way running a policy over a batch can fail.

use std::time::Duration;

use super::abi::{InputError, OutputCheck, OutputError};

/// When a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Instantiation, start function, `_initialize` or `weir_init`.
    Init,
    /// A `weir_process` call.
    Batch,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Init => "init",
            Self::Batch => "batch",
        })
    }
}

/// A coarse class of [`PolicyError`], for counters and fail-mode decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The batch did not fit the policy's declared inputs.
    BadInput,
    /// The deadline passed.
    TimeLimit,
    /// The memory cap was hit.
    MemoryLimit,
    /// The author's code returned an error, refused its config, or panicked.
    GuestError,
    /// The guest's output failed a check.
    BadOutput,
    /// Any other trap or instantiation failure.
    GuestFault,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [Self; 6] = [
        Self::BadInput,
        Self::TimeLimit,
        Self::MemoryLimit,
        Self::GuestError,
        Self::BadOutput,
        Self::GuestFault,
    ];

    /// The stable name used in logs and metrics.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadInput => "bad_input",
            Self::TimeLimit => "time_limit",
            Self::MemoryLimit => "memory_limit",
            Self::GuestError => "guest_error",
            Self::BadOutput => "bad_output",
            Self::GuestFault => "guest_fault",
        }
    }
}

/// Why a policy failed on a batch (or while starting).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    /// The batch does not fit the policy's declared inputs; the guest was not called.
    #[error("input refused: {0}")]
    Input(#[source] InputError),
    /// The guest ran past its deadline and was stopped.
    #[error("{phase}: stopped at the {deadline:?} deadline")]
    TimeLimit {
        /// When.
        phase: Phase,
        /// The deadline that passed.
        deadline: Duration,
    },
    /// The guest tried to grow its memory past the cap and was stopped.
    #[error("{phase}: memory limit, wanted {desired} bytes with a cap of {cap}")]
    MemoryLimit {
        /// When.
        phase: Phase,
        /// Bytes requested.
        desired: usize,
        /// The cap.
        cap: usize,
    },
    /// The policy's own code returned an error.
    #[error("{phase}: policy error (status {status}): {message}")]
    Guest {
        /// When.
        phase: Phase,
        /// The ABI status code.
        status: u32,
        /// The author's message.
        message: String,
    },
    /// `weir_init` refused the parameters.
    #[error("init: policy refused its parameters: {message}")]
    Config {
        /// The author's message.
        message: String,
    },
    /// The policy panicked.
    #[error("{phase}: policy panicked: {message}")]
    Panic {
        /// When.
        phase: Phase,
        /// The panic message.
        message: String,
    },
    /// The guest's output failed a check.
    #[error("{phase}: {error}")]
    BadOutput {
        /// When.
        phase: Phase,
        /// Which check and why.
        #[source]
        error: OutputError,
    },
    /// Any other trap.
    #[error("{phase}: guest fault: {reason}")]
    Fault {
        /// When.
        phase: Phase,
        /// The trap.
        reason: String,
    },
    /// The instance could not be created.
    #[error("init: cannot instantiate: {reason}")]
    Instantiate {
        /// Why.
        reason: String,
    },
}

impl PolicyError {
    /// A [`PolicyError::BadOutput`] for a check the runtime makes itself.
    #[must_use]
    pub fn bad_output(phase: Phase, check: OutputCheck, detail: impl Into<String>) -> Self {
        Self::BadOutput {
            phase,
            error: OutputError {
                check,
                detail: detail.into(),
            },
        }
    }

    /// The error's class.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Input(_) => ErrorKind::BadInput,
            Self::TimeLimit { .. } => ErrorKind::TimeLimit,
            Self::MemoryLimit { .. } => ErrorKind::MemoryLimit,
            Self::Guest { .. } | Self::Config { .. } | Self::Panic { .. } => ErrorKind::GuestError,
            Self::BadOutput { .. } => ErrorKind::BadOutput,
            Self::Fault { .. } | Self::Instantiate { .. } => ErrorKind::GuestFault,
        }
    }

    /// The output check that failed, for [`PolicyError::BadOutput`].
    #[must_use]
    pub fn output_check(&self) -> Option<OutputCheck> {
        match self {
            Self::BadOutput { error, .. } => Some(error.check),
            _ => None,
        }
    }
}
