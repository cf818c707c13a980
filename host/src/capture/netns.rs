//! Running code inside a named network namespace (`/run/netns/NAME`, as `ip netns add`
//! makes them), for capturing in a namespace other than the process's own.

use std::os::fd::AsRawFd as _;

/// Why entering a namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file could not be opened or entered.
    #[error("network namespace {name:?}: {action}: {cause}")]
    Enter {
        /// The namespace's name.
        name: String,
        /// What failed.
        action: &'static str,
        /// The cause.
        #[source]
        cause: std::io::Error,
    },
    /// The closure's thread panicked.
    #[error("network namespace {name:?}: the thread panicked")]
    Panicked {
        /// The namespace's name.
        name: String,
    },
}

/// Runs `f` on a new thread that has entered network namespace `name`: sockets it creates
/// belong to that namespace, and interface names and indexes are that namespace's (aya
/// attaches by name in the calling thread's namespace; the links stay after the thread ends).
///
/// # Errors
/// The namespace does not exist or cannot be entered (needs `CAP_SYS_ADMIN`).
pub fn in_netns<T: Send, E: Send + From<NetnsError>>(
    name: &str,
    f: impl FnOnce() -> Result<T, E> + Send,
) -> Result<T, E> {
    let path = format!("/run/netns/{name}");
    let enter = |action, cause| NetnsError::Enter {
        name: name.to_owned(),
        action,
        cause,
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(&path).map_err(|e| enter("open", e))?;
            // SAFETY: `file` is an open namespace file; setns changes only this thread's
            // network namespace, and the thread ends when `f` returns.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(enter("setns", std::io::Error::last_os_error()).into());
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetnsError::Panicked {
                name: name.to_owned(),
            }
            .into())
        })
    })
}
