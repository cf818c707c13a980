//! The admin API's routes and handlers: health, metrics, the policy list (no token needed) and
//! uploads (bearer token, size cap, submit on a blocking thread with a time limit).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Serialize;

use super::ErrorBody;
use super::bearer_token::BearerToken;
use crate::config::ByteSize;
use crate::metrics::{self, PipelineMetrics};
use crate::policy::{PolicyControl, PolicyStatus, Refusal, RefusalCode};

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct ApiState {
    /// The registry.
    pub(crate) control: Arc<dyn PolicyControl>,
    /// The upload token; `None` refuses every upload.
    pub(crate) token: Option<BearerToken>,
    /// The largest upload, in bytes.
    pub(crate) max_upload: u64,
    /// What `GET /metrics` serves.
    pub(crate) metrics: Arc<PipelineMetrics>,
}

/// `GET /v1/policies`.
#[derive(Serialize)]
struct PolicyList {
    policies: Vec<PolicyStatus>,
}

/// The router: `GET /healthz`, `GET /metrics`, `GET /v1/policies`, `PUT /v1/policies/{name}`;
/// JSON 404 and 405 for everything else.
pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/policies", get(list))
        .route("/v1/policies/{name}", put(upload))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn healthz(State(state): State<ApiState>) -> Response {
    let control = Arc::clone(&state.control);
    match tokio::task::spawn_blocking(move || control.health()).await {
        Ok(health) => Json(health).into_response(),
        Err(e) => internal("/healthz", &format!("the registry failed: {e}")),
    }
}

/// `GET /metrics`: the OpenMetrics text (read on a blocking thread: it asks the registry and
/// /proc).
async fn metrics_text(State(state): State<ApiState>) -> Response {
    let metrics = Arc::clone(&state.metrics);
    match tokio::task::spawn_blocking(move || metrics.encode()).await {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => internal("/metrics", &format!("encoding the metrics failed: {e}")),
    }
}

async fn list(State(state): State<ApiState>) -> Response {
    let control = Arc::clone(&state.control);
    match tokio::task::spawn_blocking(move || control.list()).await {
        Ok(policies) => Json(PolicyList { policies }).into_response(),
        Err(e) => internal("/v1/policies", &format!("the registry failed: {e}")),
    }
}

async fn not_found(method: Method, uri: Uri) -> Response {
    let body = ErrorBody::new(
        RefusalCode::NotFound.as_str(),
        uri.path(),
        format!("no endpoint {method} {}", uri.path()),
    );
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let body = ErrorBody::new(
        "method_not_allowed",
        uri.path(),
        format!("{method} is not allowed on {}", uri.path()),
    );
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

fn internal(subject: &str, reason: &str) -> Response {
    tracing::error!(subject, reason, "admin API request failed");
    let body = ErrorBody::new(RefusalCode::Internal.as_str(), subject, reason);
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

/// The answer to a refused upload, logged (and counted when the registry never saw it).
fn refused(refusal: &Refusal, peer: SocketAddr) -> Response {
    tracing::warn!(
        code = %refusal.code,
        subject = %refusal.subject,
        reason = %refusal.reason,
        peer = %peer,
        "policy upload refused"
    );
    let status = StatusCode::from_u16(refusal.code.http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(ErrorBody::from(refusal))).into_response()
}

/// `PUT /v1/policies/{name}`.
async fn upload(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let name = match name {
        Ok(Path(name)) => name,
        Err(e) => {
            let r = Refusal::new(RefusalCode::Malformed, "upload", e.body_text());
            return refused(&r, peer);
        }
    };
    let subject = format!("upload of {name}");
    // Refusals made here never reach the registry: count them so that /healthz shows them.
    let early = |code: RefusalCode, reason: String| {
        state.control.count_refusal(code);
        refused(&Refusal::new(code, subject.clone(), reason), peer)
    };

    if let Err(reason) = authorize(state.token.as_ref(), &headers) {
        return early(RefusalCode::Unauthorized, reason.to_owned());
    }
    let max = state.max_upload;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared
        && len > max
    {
        // A client that writes its whole body before reading the answer would see the
        // connection reset instead of the JSON refusal; read and discard a moderately
        // oversized body first (bounded in size and time), so it gets the answer.
        let drain = max.saturating_mul(4).min(64 << 20);
        if len <= drain {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                axum::body::to_bytes(body, usize::try_from(drain).unwrap_or(usize::MAX)),
            )
            .await;
        }
        return early(
            RefusalCode::TooLarge,
            format!(
                "{} ({len} bytes) is over the {} upload limit",
                ByteSize(len),
                ByteSize(max)
            ),
        );
    }
    let cap = usize::try_from(max).unwrap_or(usize::MAX);
    let bytes = match axum::body::to_bytes(body, cap).await {
        Ok(bytes) => bytes,
        Err(e) if is_length_limit(&e) => {
            return early(
                RefusalCode::TooLarge,
                format!("the body is over the {} upload limit", ByteSize(max)),
            );
        }
        Err(e) => {
            return early(
                RefusalCode::Malformed,
                format!("the body could not be read: {e}"),
            );
        }
    };

    let control = Arc::clone(&state.control);
    let via = format!("http from {peer}");
    let expected = name.clone();
    let task =
        tokio::task::spawn_blocking(move || control.submit(bytes.to_vec(), Some(&expected), &via));
    let limit = state.control.submit_timeout();
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(Ok(activation))) => {
            tracing::info!(
                policy = %activation.name,
                version = activation.version,
                previous = ?activation.previous_version,
                peer = %peer,
                total_ms = activation.timings.total_ms,
                "policy activated over HTTP"
            );
            Json(activation).into_response()
        }
        Ok(Ok(Err(refusal))) => refused(&refusal, peer),
        Ok(Err(e)) => refused(
            &Refusal::new(
                RefusalCode::Internal,
                subject,
                format!("the registry failed: {e}"),
            ),
            peer,
        ),
        Err(_) => refused(
            &Refusal::new(
                RefusalCode::Internal,
                subject,
                format!(
                    "no answer within {}; the promotion may still finish (see GET /v1/policies)",
                    humantime::format_duration(limit)
                ),
            ),
            peer,
        ),
    }
}

/// Checks `Authorization: Bearer <token>`; the error is the refusal's reason.
fn authorize(token: Option<&BearerToken>, headers: &HeaderMap) -> Result<(), &'static str> {
    let Some(token) = token else {
        return Err("this host has no admin token_file: uploads over HTTP are disabled");
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match presented {
        None => Err("no bearer token"),
        Some(t) if token.matches(t) => Ok(()),
        Some(_) => Err("wrong token"),
    }
}

/// Whether reading the body failed on the size cap (`http_body_util::LengthLimitError`, which
/// axum wraps; it is not a dependency here, so it is recognized by its message).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.to_string().contains("length limit exceeded") {
            return true;
        }
        cause = c.source();
    }
    false
}
