//! [`AdminError`]: why the admin API or the watched directory could not start or stopped.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the admin API or the watched directory could not start (or its server failed).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `admin.listen` is not a socket address.
    #[error("admin.listen {listen:?} is not an address such as \"127.0.0.1:7878\"")]
    BadListen {
        /// The configured value.
        listen: String,
        /// The parse failure.
        #[source]
        source: std::net::AddrParseError,
    },
    /// `admin.listen` is `"off"`: there is nothing to serve.
    #[error("admin.listen is \"off\": the admin API is disabled")]
    ListenOff,
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("the admin API on {addr} failed")]
    Serve {
        /// The address it listened on.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server task panicked.
    #[error("the admin API on {addr} panicked")]
    Panicked {
        /// The address it listened on.
        addr: SocketAddr,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The token file could not be read.
    #[error("cannot read the admin token file {}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The token file holds only whitespace.
    #[error("the admin token file {} is empty", path.display())]
    EmptyToken {
        /// The file.
        path: PathBuf,
    },
    /// A TLS certificate or key file could not be read.
    #[error("cannot read the admin TLS file {}", path.display())]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A TLS certificate or key file holds no usable PEM.
    #[error("the admin TLS file {}: {problem}", path.display())]
    TlsPem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// rustls refused the certificate and key (e.g. the key does not match).
    #[error("the admin TLS certificate {} with key {}", cert.display(), key.display())]
    Tls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
    /// The watched directory (or its `accepted/` or `refused/`) could not be created.
    #[error("cannot create the watched policy directory {}", path.display())]
    WatchDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The directory could not be watched.
    #[error("cannot watch {}", path.display())]
    Watch {
        /// The directory.
        path: PathBuf,
        /// notify's error.
        #[source]
        source: notify::Error,
    },
    /// The watcher's worker thread could not be started.
    #[error("cannot start the thread watching {}", path.display())]
    Thread {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
