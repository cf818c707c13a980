//! `[admin]`: the admin HTTP API (listen address, bearer token, upload cap, TLS) and the watched
//! policy directory. See `docs/admin.md`.

use std::net::{AddrParseError, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ByteSize, ConfigError};

/// The value of `listen` that turns the HTTP API off.
pub const LISTEN_OFF: &str = "off";

/// The smallest `max_upload` accepted.
const MIN_UPLOAD: u64 = 1 << 10;
/// The largest `max_upload` accepted.
const MAX_UPLOAD: u64 = 256 << 20;

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the HTTP API listens (default `127.0.0.1:7878`); `"off"` disables it (the watched
    /// directory still works).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// A file holding the bearer token that uploads must present. Without it every upload is
    /// refused `unauthorized`. Relative paths are relative to the config file.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The largest bundle accepted, over HTTP or from the watched directory (default 16 MiB).
    #[serde(default = "default_max_upload")]
    pub max_upload: ByteSize,
    /// A directory to drop bundles (`*.wpol`) into; they move to `accepted/` or `refused/`.
    #[serde(default)]
    pub watch_dir: Option<PathBuf>,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// `[admin.tls]`: the server certificate for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn default_listen() -> String {
    "127.0.0.1:7878".to_owned()
}

fn default_max_upload() -> ByteSize {
    ByteSize(16 << 20)
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            token_file: None,
            max_upload: default_max_upload(),
            watch_dir: None,
            tls: None,
        }
    }
}

impl AdminConfig {
    /// The address to listen on, or `None` when `listen = "off"`.
    ///
    /// # Errors
    /// `listen` is neither `"off"` nor a socket address such as `127.0.0.1:7878`.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, AddrParseError> {
        if self.listen.trim() == LISTEN_OFF {
            return Ok(None);
        }
        self.listen.trim().parse().map(Some)
    }

    /// Checks the section; `file` names the config file in errors.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `file` and the `admin.*` key.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        self.listen_addr().map_err(|e| {
            ConfigError::new(
                file,
                "admin.listen",
                format!(
                    "{:?} is not an address such as \"127.0.0.1:7878\" or \"off\": {e}",
                    self.listen
                ),
            )
        })?;
        if !(MIN_UPLOAD..=MAX_UPLOAD).contains(&self.max_upload.0) {
            return Err(ConfigError::new(
                file,
                "admin.max_upload",
                format!(
                    "must be between {} and {} (is {})",
                    ByteSize(MIN_UPLOAD),
                    ByteSize(MAX_UPLOAD),
                    self.max_upload
                ),
            ));
        }
        let empty = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str().is_empty());
        if empty(&self.token_file) {
            return Err(ConfigError::new(file, "admin.token_file", "is empty"));
        }
        if empty(&self.watch_dir) {
            return Err(ConfigError::new(file, "admin.watch_dir", "is empty"));
        }
        if let Some(tls) = &self.tls {
            if tls.cert.as_os_str().is_empty() {
                return Err(ConfigError::new(file, "admin.tls.cert", "is empty"));
            }
            if tls.key.as_os_str().is_empty() {
                return Err(ConfigError::new(file, "admin.tls.key", "is empty"));
            }
        }
        Ok(())
    }

    /// Whether uploads arrive unprotected from other machines: a non-loopback address with
    /// neither a token nor TLS (allowed, but the server warns).
    #[must_use]
    pub fn is_exposed(&self) -> bool {
        let remote = matches!(self.listen_addr(), Ok(Some(a)) if !a.ip().is_loopback());
        remote && self.token_file.is_none() && self.tls.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        admin: AdminConfig,
    }

    fn parse(text: &str) -> Result<AdminConfig, String> {
        let doc: Doc = toml::from_str(text).map_err(|e| e.to_string())?;
        doc.admin.validate("weir.toml").map_err(|e| e.to_string())?;
        Ok(doc.admin)
    }

    #[test]
    fn defaults() {
        let c = parse("[admin]").unwrap();
        assert_eq!(c, AdminConfig::default());
        assert_eq!(
            c.listen_addr().unwrap(),
            Some("127.0.0.1:7878".parse().unwrap())
        );
        assert_eq!(c.max_upload.0, 16 << 20);
        assert!(!c.is_exposed());
    }

    #[test]
    fn every_key() {
        let c = parse(
            r#"
            [admin]
            listen = "0.0.0.0:9000"
            token_file = "admin.token"
            max_upload = "1 MiB"
            watch_dir = "incoming"
            [admin.tls]
            cert = "admin.crt"
            key = "admin.key"
            "#,
        )
        .unwrap();
        assert_eq!(
            c.listen_addr().unwrap(),
            Some("0.0.0.0:9000".parse().unwrap())
        );
        assert_eq!(c.token_file, Some(PathBuf::from("admin.token")));
        assert_eq!(c.max_upload.0, 1 << 20);
        assert_eq!(c.watch_dir, Some(PathBuf::from("incoming")));
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("admin.crt"));
        assert_eq!(tls.key, PathBuf::from("admin.key"));
    }

    #[test]
    fn off_disables_http() {
        let c = parse("[admin]\nlisten = \"off\"\nwatch_dir = \"in\"").unwrap();
        assert_eq!(c.listen_addr().unwrap(), None);
        assert!(!c.is_exposed());
    }

    #[test]
    fn exposed_only_without_token_and_tls() {
        let c = parse("[admin]\nlisten = \"0.0.0.0:7878\"").unwrap();
        assert!(c.is_exposed());
        let c = parse("[admin]\nlisten = \"0.0.0.0:7878\"\ntoken_file = \"t\"").unwrap();
        assert!(!c.is_exposed());
        let c = parse("[admin]\nlisten = \"[::1]:7878\"").unwrap();
        assert!(!c.is_exposed());
    }

    #[test]
    fn refuses_bad_values() {
        let e = parse("[admin]\nlisten = \"localhost\"").unwrap_err();
        assert!(e.contains("weir.toml: admin.listen:"), "{e}");
        let e = parse("[admin]\nmax_upload = 100").unwrap_err();
        assert!(
            e.contains("admin.max_upload: must be between 1.0 KiB"),
            "{e}"
        );
        let e = parse("[admin]\nmax_upload = \"1 GiB\"").unwrap_err();
        assert!(e.contains("admin.max_upload"), "{e}");
        let e = parse("[admin]\ntoken = \"secret\"").unwrap_err();
        assert!(e.contains("unknown field `token`"), "{e}");
        let e = parse("[admin]\n[admin.tls]\ncert = \"c\"").unwrap_err();
        assert!(e.contains("missing field `key`"), "{e}");
        let e = parse("[admin]\ntoken_file = \"\"").unwrap_err();
        assert!(e.contains("admin.token_file: is empty"), "{e}");
    }
}
