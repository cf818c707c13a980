//! [`AdminClient`]: the HTTP(S) client `weir push`, `weir policies` and `weir status` use to
//! talk to a host's admin API (ureq with rustls and the ring provider).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};

use crate::admin::ErrorBody;
use crate::policy::{Activation, PolicyStatus};

/// Where the system's CA bundle is on common distributions (after `SSL_CERT_FILE`).
const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Which admin API to talk to: the `--to` and `--ca-cert` options of every command that does
/// (`weir push`, `weir policies`, `weir status`).
#[derive(Debug, Clone, clap::Args)]
pub struct AdminTarget {
    /// The admin API, e.g. `http://127.0.0.1:7878` or `https://gateway:7878`.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// A PEM file of CAs to trust for HTTPS (e.g. a self-signed admin certificate); default: the
    /// system's CA bundle.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
}

impl AdminTarget {
    /// A client of this API whose requests each take at most `timeout`.
    pub(crate) fn client(&self, timeout: Duration) -> anyhow::Result<AdminClient> {
        AdminClient::new(&self.to, self.ca_cert.as_deref(), timeout)
    }
}

/// A client of one admin API.
pub(crate) struct AdminClient {
    agent: ureq::Agent,
    base: String,
}

/// What an upload came back with.
pub(crate) enum UploadAnswer {
    /// The new version runs.
    Activated(Activation),
    /// Refused: the HTTP status and the error.
    Refused(u16, ErrorBody),
}

impl AdminClient {
    /// A client of the API at `url` (`http://` or `https://`, no path). `ca_cert` is a PEM file
    /// of CAs to trust for HTTPS (e.g. a self-signed admin certificate); without it, the
    /// system's CA bundle is used. `timeout` bounds each whole request.
    pub(crate) fn new(
        url: &str,
        ca_cert: Option<&Path>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            bail!("{url:?} is not an http:// or https:// URL");
        };
        let host = rest.trim_end_matches('/');
        if host.is_empty() {
            bail!("{url:?} has no host");
        }
        if host.contains('/') {
            bail!("{url:?} has a path; give the admin API's base URL, e.g. http://127.0.0.1:7878");
        }
        let base = format!("{}://{host}", if https { "https" } else { "http" });
        let roots = match (ca_cert, https) {
            (Some(path), _) => read_certificates(path)?,
            (None, true) => system_roots()?,
            // Plain HTTP never verifies a certificate.
            (None, false) => RootCerts::Specific(Arc::new(Vec::new())),
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .root_certs(roots)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            // The token must not follow a redirect to another host.
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(timeout))
            .build()
            .new_agent();
        Ok(Self { agent, base })
    }

    /// The base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `PUT /v1/policies/{name}` with `bundle`.
    pub(crate) fn upload(
        &self,
        name: &str,
        token: &str,
        bundle: &[u8],
    ) -> anyhow::Result<UploadAnswer> {
        let url = format!("{}/v1/policies/{name}", self.base);
        let mut response = self
            .agent
            .put(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/octet-stream")
            .send(bundle)
            .with_context(|| format!("uploading to {url}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the answer of {url}"))?;
        if status == 200 {
            let activation = serde_json::from_str(&body)
                .with_context(|| format!("{url} answered 200 with an unexpected body: {body}"))?;
            Ok(UploadAnswer::Activated(activation))
        } else {
            Ok(UploadAnswer::Refused(
                status,
                error_body(&url, status, &body)?,
            ))
        }
    }

    /// `GET /v1/policies`: the policies and the raw JSON.
    pub(crate) fn policies(&self) -> anyhow::Result<(Vec<PolicyStatus>, serde_json::Value)> {
        #[derive(serde::Deserialize)]
        struct List {
            policies: Vec<PolicyStatus>,
        }
        let (url, body) = self.get_ok("/v1/policies")?;
        let raw: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("{url} answered with something other than JSON: {body}"))?;
        let list: List = serde_json::from_value(raw.clone())
            .with_context(|| format!("{url} answered with an unexpected policy list"))?;
        Ok((list.policies, raw))
    }

    /// `GET /metrics`: the metrics text.
    pub(crate) fn metrics(&self) -> anyhow::Result<String> {
        Ok(self.get_ok("/metrics")?.1)
    }

    /// `GET path`: the URL and the body of a 200 answer; any other status is an error with
    /// the host's code and reason.
    fn get_ok(&self, path: &str) -> anyhow::Result<(String, String)> {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .agent
            .get(&url)
            .call()
            .with_context(|| format!("connecting to {url}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the answer of {url}"))?;
        if status != 200 {
            let e = error_body(&url, status, &body)?.error;
            bail!("{url}: {status} ({}): {}", e.code, e.reason);
        }
        Ok((url, body))
    }
}

/// The JSON error of a non-200 answer.
fn error_body(url: &str, status: u16, body: &str) -> anyhow::Result<ErrorBody> {
    serde_json::from_str(body).with_context(|| {
        format!(
            "{url} answered {status} without a Weir error: {}",
            body.trim()
        )
    })
}

/// The certificates in a PEM file.
fn read_certificates(path: &Path) -> anyhow::Result<RootCerts> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::Certificate(cert) =
            item.with_context(|| format!("parsing {} as PEM", path.display()))?
        {
            certs.push(cert);
        }
    }
    if certs.is_empty() {
        bail!("{} holds no CERTIFICATE block", path.display());
    }
    Ok(RootCerts::Specific(Arc::new(certs)))
}

/// The system's CA bundle: `SSL_CERT_FILE`, else the first of [`SYSTEM_CA_BUNDLES`] present.
fn system_roots() -> anyhow::Result<RootCerts> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        return read_certificates(Path::new(&file));
    }
    match SYSTEM_CA_BUNDLES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
    {
        Some(path) => read_certificates(path),
        None => bail!(
            "no system CA bundle found (tried {}); pass --ca-cert with the admin API's CA",
            SYSTEM_CA_BUNDLES.join(", ")
        ),
    }
}

/// Reads a bearer token file (surrounding whitespace trimmed).
pub(crate) fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the token file {} is empty", path.display());
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::Command;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::admin::test_support::{FakeControl, statuses};
    use crate::config::{AdminConfig, TlsConfig};
    use crate::policy::PolicyControl;

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (it is needed to make the test certificate)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A CA (`ca.crt`) and a certificate for 127.0.0.1 signed by it (`admin.crt`, `admin.key`).
    fn make_certificates(dir: &Path) {
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=weir-test-ca",
        ]);
        openssl(dir, &ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "admin.key",
            "-out",
            "admin.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(dir, &csr);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "admin.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "admin.crt",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn admin_tls_serves_a_client_that_trusts_its_ca() {
        let dir = tempfile::tempdir().unwrap();
        make_certificates(dir.path());
        let config = AdminConfig {
            listen: "127.0.0.1:0".into(),
            tls: Some(TlsConfig {
                cert: PathBuf::from("admin.crt"),
                key: PathBuf::from("admin.key"),
            }),
            ..AdminConfig::default()
        };
        let shutdown = CancellationToken::new();
        let base = dir.path().to_path_buf();
        let control: Arc<dyn PolicyControl> = FakeControl::accepting();
        let server = crate::admin::serve(&config, |p| base.join(p), control, shutdown.clone())
            .await
            .unwrap();
        assert!(server.is_tls());
        let url = server.url();
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        let ca = dir.path().join("ca.crt");
        let plain_url = url.replacen("https://", "http://", 1);
        tokio::task::spawn_blocking(move || {
            let timeout = Duration::from_secs(10);
            let client = AdminClient::new(&url, Some(&ca), timeout).unwrap();
            let (policies, raw) = client.policies().unwrap();
            assert_eq!(policies, statuses());
            assert_eq!(raw["policies"][0]["name"], "clamp");

            // A client that does not trust the CA is turned away by the handshake.
            let other = dir.path().join("other");
            std::fs::create_dir(&other).unwrap();
            make_certificates(&other);
            let stranger = AdminClient::new(&url, Some(&other.join("ca.crt")), timeout).unwrap();
            let e = format!("{:#}", stranger.policies().unwrap_err());
            assert!(
                e.contains(&url) && e.to_lowercase().contains("certificate"),
                "{e}"
            );

            // Plain HTTP to the TLS port gets no answer it can use.
            let plain = AdminClient::new(&plain_url, None, timeout).unwrap();
            assert!(plain.policies().is_err());
        })
        .await
        .unwrap();
        shutdown.cancel();
        server.join().await.unwrap();
    }

    #[tokio::test]
    async fn admin_tls_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        make_certificates(dir.path());
        let control: Arc<dyn PolicyControl> = FakeControl::accepting();
        let try_serve = |cert: &str, key: &str| {
            let config = AdminConfig {
                listen: "127.0.0.1:0".into(),
                tls: Some(TlsConfig {
                    cert: dir.path().join(cert),
                    key: dir.path().join(key),
                }),
                ..AdminConfig::default()
            };
            let control = Arc::clone(&control);
            async move {
                crate::admin::serve(
                    &config,
                    Path::to_path_buf,
                    control,
                    CancellationToken::new(),
                )
                .await
                .map(|_| ())
                .unwrap_err()
                .to_string()
            }
        };
        let e = try_serve("admin.crt", "missing.key").await;
        assert!(e.contains("missing.key"), "{e}");
        // The key where the certificate should be, and the other way round.
        let e = try_serve("admin.key", "admin.key").await;
        assert!(
            e.contains("admin.key") && e.contains("no CERTIFICATE"),
            "{e}"
        );
        let e = try_serve("admin.crt", "admin.crt").await;
        assert!(
            e.contains("admin.crt") && e.contains("no PRIVATE KEY"),
            "{e}"
        );
        // A key that does not belong to the certificate.
        let e = try_serve("admin.crt", "ca.key").await;
        assert!(e.contains("admin.crt") && e.contains("ca.key"), "{e}");
    }

    #[test]
    fn admin_client_refuses_bad_urls_and_files() {
        let t = Duration::from_secs(1);
        let e = AdminClient::new("ftp://host", None, t)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not an http:// or https:// URL"), "{e}");
        let e = AdminClient::new("http://", None, t)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no host"), "{e}");
        let e = AdminClient::new("https://h", Some(Path::new("/nonexistent/ca.pem")), t)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("t");
        std::fs::write(&token, "\n").unwrap();
        let e = read_token(&token).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
        std::fs::write(&token, " abc \n").unwrap();
        assert_eq!(read_token(&token).unwrap(), "abc");
    }
}
