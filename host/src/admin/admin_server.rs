//! [`serve`] and [`AdminServer`]: the admin HTTP(S) API, bound and running until shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::AdminError;
use super::bearer_token::BearerToken;
use super::routes::{ApiState, router};
use super::server_tls::server_config;
use crate::config::{AdminConfig, TlsConfig};
use crate::metrics::PipelineMetrics;
use crate::policy::PolicyControl;

/// A running admin API.
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    tls: bool,
    task: JoinHandle<std::io::Result<()>>,
}

impl AdminServer {
    /// The address it listens on (the real port when the config said port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether it serves HTTPS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Its base URL, e.g. `http://127.0.0.1:7878`.
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Waits until the server has stopped (after `shutdown` was cancelled and the requests in
    /// flight finished, or were cut after the registry's submit timeout).
    ///
    /// # Errors
    /// The server failed or panicked.
    pub async fn join(self) -> Result<(), AdminError> {
        let addr = self.local_addr;
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(AdminError::Serve { addr, source }),
            Err(source) => Err(AdminError::Panicked { addr, source }),
        }
    }
}

/// Starts the admin API described by `config`; `resolve` turns the config's relative paths
/// (token file, TLS files) into real ones. Reads the token file and the TLS files once, binds,
/// logs the address and serves on the current tokio runtime until `shutdown` is cancelled.
///
/// Reads (`GET /healthz`, `GET /metrics`, `GET /v1/policies`) need no token; uploads
/// (`PUT /v1/policies/{name}`) need `Authorization: Bearer <token>`. See `docs/admin.md`.
/// `GET /metrics` shows only what `control` knows (see [`serve_with_metrics`]).
///
/// # Errors
/// `listen` is `"off"` or not an address, the token or TLS files cannot be used, or the address
/// cannot be bound.
pub async fn serve(
    config: &AdminConfig,
    resolve: impl Fn(&Path) -> PathBuf,
    control: Arc<dyn PolicyControl>,
    shutdown: CancellationToken,
) -> Result<AdminServer, AdminError> {
    let metrics = Arc::new(PipelineMetrics::new(Arc::clone(&control)));
    serve_with_metrics(config, resolve, control, metrics, shutdown).await
}

/// As [`serve`], with `GET /metrics` serving a running pipeline's `metrics`.
///
/// # Errors
/// As for [`serve`].
pub async fn serve_with_metrics(
    config: &AdminConfig,
    resolve: impl Fn(&Path) -> PathBuf,
    control: Arc<dyn PolicyControl>,
    metrics: Arc<PipelineMetrics>,
    shutdown: CancellationToken,
) -> Result<AdminServer, AdminError> {
    let addr = config
        .listen_addr()
        .map_err(|source| AdminError::BadListen {
            listen: config.listen.clone(),
            source,
        })?
        .ok_or(AdminError::ListenOff)?;
    let token = match &config.token_file {
        Some(path) => Some(BearerToken::read(&resolve(path))?),
        None => None,
    };
    let tls = match &config.tls {
        Some(tls) => Some(server_config(&TlsConfig {
            cert: resolve(&tls.cert),
            key: resolve(&tls.key),
        })?),
        None => None,
    };

    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| AdminError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| AdminError::Bind { addr, source })?;

    if config.is_exposed() {
        tracing::warn!(
            addr = %local_addr,
            "the admin API listens beyond loopback over plain HTTP without a token: anyone who \
             can reach it can read the policy list; set admin.token_file and [admin.tls]"
        );
    }
    if token.is_none() {
        tracing::info!(
            addr = %local_addr,
            "no admin.token_file: every upload over HTTP is refused"
        );
    }

    let state = ApiState {
        control: Arc::clone(&control),
        token,
        max_upload: config.max_upload.0,
        metrics,
    };
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    let grace = control.submit_timeout();
    let is_tls = tls.is_some();
    let task = tokio::spawn(async move {
        let stopper = {
            let handle = handle.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                handle.graceful_shutdown(Some(grace));
            })
        };
        let result = match tls {
            Some(tls) => {
                axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(tls))
                    .handle(handle)
                    .serve(app)
                    .await
            }
            None => {
                axum_server::from_tcp(listener)
                    .handle(handle)
                    .serve(app)
                    .await
            }
        };
        stopper.abort();
        tracing::info!(addr = %local_addr, "admin API stopped");
        result
    });
    tracing::info!(addr = %local_addr, tls = is_tls, "admin API listening");
    Ok(AdminServer {
        local_addr,
        tls: is_tls,
        task,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::admin::test_support::{FakeControl, activation, statuses};
    use crate::config::ByteSize;
    use crate::policy::{Refusal, RefusalCode};

    const TOKEN: &str = "tok-123";

    struct Fixture {
        server: AdminServer,
        control: Arc<FakeControl>,
        shutdown: CancellationToken,
        _dir: tempfile::TempDir,
    }

    async fn start_with(control: Arc<FakeControl>, with_token: bool) -> Fixture {
        start_capped(control, with_token, 1024).await
    }

    async fn start_capped(control: Arc<FakeControl>, with_token: bool, cap: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.token"), format!("{TOKEN}\n")).unwrap();
        let config = AdminConfig {
            listen: "127.0.0.1:0".into(),
            token_file: with_token.then(|| PathBuf::from("admin.token")),
            max_upload: ByteSize(cap),
            ..AdminConfig::default()
        };
        let shutdown = CancellationToken::new();
        let base = dir.path().to_path_buf();
        let server = serve(
            &config,
            |p| base.join(p),
            Arc::clone(&control) as Arc<dyn PolicyControl>,
            shutdown.clone(),
        )
        .await
        .unwrap();
        Fixture {
            server,
            control,
            shutdown,
            _dir: dir,
        }
    }

    async fn start() -> Fixture {
        start_with(FakeControl::accepting(), true).await
    }

    /// Sends `raw` and reads the answer until the server closes: (status, JSON body).
    async fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, Value) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(raw).await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        let read = async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the server answered within 10 s");
        let text = String::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
        (status, body)
    }

    fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        let mut raw = raw.into_bytes();
        raw.extend_from_slice(body);
        raw
    }

    fn bearer() -> (&'static str, String) {
        ("Authorization", format!("Bearer {TOKEN}"))
    }

    async fn put(f: &Fixture, name: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
        let path = format!("/v1/policies/{name}");
        exchange(f.server.local_addr(), &request("PUT", &path, headers, body)).await
    }

    fn error_code(body: &Value) -> &str {
        body["error"]["code"].as_str().unwrap_or_default()
    }

    #[tokio::test]
    async fn admin_healthz_and_list_need_no_token() {
        let f = start().await;
        let addr = f.server.local_addr();
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        assert_eq!(f.server.url(), format!("http://{addr}"));
        let (status, body) = exchange(addr, &request("GET", "/healthz", &[], b"")).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"status": "ok", "compilations": 4, "refusals": {"downgrade": 2}, "swaps": 3})
        );
        let (status, body) = exchange(addr, &request("GET", "/v1/policies", &[], b"")).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"policies": serde_json::to_value(statuses()).unwrap()})
        );
    }

    #[tokio::test]
    async fn admin_put_submits_the_body_and_answers_the_activation() {
        let f = start().await;
        let (k, v) = bearer();
        let (status, body) = put(&f, "clamp", &[(k, &v)], b"bundle bytes").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, serde_json::to_value(activation()).unwrap());
        let subs = f.control.submissions();
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].bytes, b"bundle bytes");
        assert_eq!(subs[0].expected_name.as_deref(), Some("clamp"));
        assert!(
            subs[0].via.starts_with("http from 127.0.0.1:"),
            "{}",
            subs[0].via
        );
        assert!(f.control.counted().is_empty());
    }

    #[tokio::test]
    async fn admin_put_without_or_with_a_wrong_token_is_unauthorized() {
        let f = start().await;
        for (headers, reason) in [
            (vec![], "no bearer token"),
            (
                vec![("Authorization", "Basic dXNlcjpwYXNz")],
                "no bearer token",
            ),
            (vec![("Authorization", "Bearer tok-12")], "wrong token"),
            (vec![("Authorization", "Bearer tok-1234")], "wrong token"),
        ] {
            let (status, body) = put(&f, "clamp", &headers, b"x").await;
            assert_eq!(status, 401, "{body}");
            assert_eq!(
                body,
                json!({"error": {
                    "code": "unauthorized", "reason": reason, "subject": "upload of clamp"
                }})
            );
        }
        assert!(f.control.submissions().is_empty());
        assert_eq!(f.control.counted(), vec![RefusalCode::Unauthorized; 4]);
    }

    #[tokio::test]
    async fn admin_put_without_a_token_file_is_always_unauthorized() {
        let f = start_with(FakeControl::accepting(), false).await;
        let (k, v) = bearer();
        let (status, body) = put(&f, "clamp", &[(k, &v)], b"x").await;
        assert_eq!(status, 401);
        assert_eq!(error_code(&body), "unauthorized");
        assert!(
            body["error"]["reason"]
                .as_str()
                .unwrap()
                .contains("token_file")
        );
        assert!(f.control.submissions().is_empty());
    }

    #[tokio::test]
    async fn admin_put_over_the_cap_by_content_length_is_too_large() {
        let f = start().await;
        // Only the head: the server must answer without waiting for the announced body.
        let raw = format!(
            "PUT /v1/policies/clamp HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Length: 1000000\r\n\r\n"
        );
        let (status, body) = exchange(f.server.local_addr(), raw.as_bytes()).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(error_code(&body), "too_large");
        assert_eq!(body["error"]["subject"], "upload of clamp");
        assert!(f.control.submissions().is_empty());
        assert_eq!(f.control.counted(), vec![RefusalCode::TooLarge]);

        // At the cap exactly is fine.
        let (k, v) = bearer();
        let (status, _) = put(&f, "clamp", &[(k, &v)], &[7u8; 1024]).await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn admin_put_over_the_cap_chunked_is_too_large() {
        let f = start().await;
        // No Content-Length: 2 KiB in 256-byte chunks, and no final chunk. The cap (1 KiB)
        // must stop the read.
        let mut raw = format!(
            "PUT /v1/policies/clamp HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        for _ in 0..8 {
            raw.extend_from_slice(b"100\r\n");
            raw.extend_from_slice(&[b'x'; 256]);
            raw.extend_from_slice(b"\r\n");
        }
        let (status, body) = exchange(f.server.local_addr(), &raw).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(error_code(&body), "too_large");
        assert!(f.control.submissions().is_empty());
        assert_eq!(f.control.counted(), vec![RefusalCode::TooLarge]);
    }

    #[tokio::test]
    async fn admin_put_takes_bundles_over_axums_default_body_limit() {
        // axum's own default limit (2 MB) must not apply: max_upload decides.
        let f = start_capped(FakeControl::accepting(), true, 4 << 20).await;
        let (k, v) = bearer();
        let body = vec![0x5a; 3 << 20];
        let (status, body_json) = put(&f, "clamp", &[(k, &v)], &body).await;
        assert_eq!(status, 200, "{body_json}");
        assert_eq!(f.control.submissions()[0].bytes.len(), 3 << 20);
    }

    #[tokio::test]
    async fn admin_every_refusal_code_has_its_status_and_json() {
        let f = start().await;
        let (k, v) = bearer();
        for code in RefusalCode::ALL {
            let refusal = Refusal::new(code, "upload of clamp", format!("because {code}"));
            f.control.answer(Err(refusal));
            let (status, body) = put(&f, "clamp", &[(k, &v)], b"x").await;
            assert_eq!(status, code.http_status(), "{code}");
            assert_eq!(
                body,
                json!({"error": {
                    "code": code.as_str(),
                    "reason": format!("because {code}"),
                    "subject": "upload of clamp",
                }})
            );
        }
        assert_eq!(f.control.submissions().len(), RefusalCode::ALL.len());
        // Refusals made by the registry are counted by the registry, not here.
        assert!(f.control.counted().is_empty());
    }

    #[tokio::test]
    async fn admin_unknown_routes_and_methods_answer_json() {
        let f = start().await;
        let addr = f.server.local_addr();
        let (status, body) = exchange(addr, &request("GET", "/nope", &[], b"")).await;
        assert_eq!(status, 404);
        assert_eq!(
            body,
            json!({"error": {"code": "not_found", "reason": "no endpoint GET /nope", "subject": "/nope"}})
        );
        for (method, path) in [
            ("POST", "/v1/policies"),
            ("GET", "/v1/policies/clamp"),
            ("DELETE", "/healthz"),
        ] {
            let (status, body) = exchange(addr, &request(method, path, &[], b"")).await;
            assert_eq!(status, 405, "{method} {path}");
            assert_eq!(error_code(&body), "method_not_allowed");
            assert_eq!(body["error"]["subject"], path);
        }
    }

    #[tokio::test]
    async fn admin_a_slow_registry_answers_internal_after_the_submit_timeout() {
        let control = Arc::new(FakeControl {
            delay: Duration::from_secs(1),
            timeout: Duration::from_millis(100),
            ..Arc::into_inner(FakeControl::accepting()).unwrap()
        });
        let f = start_with(control, true).await;
        let (k, v) = bearer();
        let started = std::time::Instant::now();
        let (status, body) = put(&f, "clamp", &[(k, &v)], b"x").await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(error_code(&body), "internal");
        assert!(
            body["error"]["reason"]
                .as_str()
                .unwrap()
                .contains("no answer within 100ms")
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn admin_stops_on_shutdown() {
        let f = start().await;
        let addr = f.server.local_addr();
        f.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), f.server.join())
            .await
            .expect("stopped within 5 s")
            .unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn admin_startup_errors_name_the_file_or_setting() {
        let control: Arc<dyn PolicyControl> = FakeControl::accepting();
        let config = AdminConfig {
            listen: "127.0.0.1:0".into(),
            token_file: Some(PathBuf::from("/nonexistent/admin.token")),
            ..AdminConfig::default()
        };
        let e = serve(
            &config,
            Path::to_path_buf,
            Arc::clone(&control),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, AdminError::TokenFile { ref path, .. } if path.ends_with("admin.token")),
            "{e}"
        );
        let config = AdminConfig {
            listen: "off".into(),
            ..AdminConfig::default()
        };
        let e = serve(
            &config,
            Path::to_path_buf,
            Arc::clone(&control),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, AdminError::ListenOff), "{e}");
        let config = AdminConfig {
            listen: "127.0.0.1:0".into(),
            tls: Some(TlsConfig {
                cert: PathBuf::from("/nonexistent/admin.crt"),
                key: PathBuf::from("/nonexistent/admin.key"),
            }),
            ..AdminConfig::default()
        };
        let e = serve(
            &config,
            Path::to_path_buf,
            control,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/admin.crt"), "{e}");
    }
}
