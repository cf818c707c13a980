//! [`CaptureError`].

use super::TickClockError;

/// Why flow capture could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The embedded object did not load (often: not root, or missing capabilities).
    #[error(
        "loading the flows eBPF program (needs root, or CAP_BPF, CAP_NET_ADMIN and \
         CAP_PERFMON): {cause}"
    )]
    Load {
        /// The cause.
        #[source]
        cause: Box<aya::EbpfError>,
    },
    /// A program was missing from the object, or the verifier refused it.
    #[error("eBPF program {program}: {action}: {cause}")]
    Program {
        /// The program's name.
        program: &'static str,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        cause: Box<aya::programs::ProgramError>,
    },
    /// A map was missing from the object or a map operation failed.
    #[error("eBPF map {map}: {action}: {cause}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        cause: Box<aya::maps::MapError>,
    },
    /// A configured interface does not exist.
    #[error("interface {interface:?} does not exist in this network namespace")]
    NoInterface {
        /// The interface's name.
        interface: String,
    },
    /// A setting is out of range.
    #[error("{setting}: {message}")]
    Config {
        /// The setting.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The kernel's tick could not be measured, so flow times could not be converted.
    #[error("measuring the kernel's tick for flow timestamps: {cause}")]
    Clock {
        /// The cause.
        #[source]
        cause: Box<TickClockError<CaptureError>>,
    },
    /// Waiting for ring-buffer events failed.
    #[error("waiting for flow events: {cause}")]
    Poll {
        /// The cause.
        #[source]
        cause: std::io::Error,
    },
}

impl CaptureError {
    pub(crate) fn map(map: &'static str, action: &'static str, cause: aya::maps::MapError) -> Self {
        Self::Map {
            map,
            action,
            cause: Box::new(cause),
        }
    }

    pub(crate) fn program(
        program: &'static str,
        action: &'static str,
        cause: aya::programs::ProgramError,
    ) -> Self {
        Self::Program {
            program,
            action,
            cause: Box::new(cause),
        }
    }
}
