//! The controller's HTTP API, for agents and the CLI. Every route needs the
//! bearer token; errors are JSON (`{"error": ...}`).
//!
//! - `GET  /v1/agents/{instance}/desired?after=REV`: long-poll the node's desired state
//! - `POST /v1/agents/{instance}/report`: an agent's report
//! - `POST /v1/agents/{instance}/certificate`: sign a node's request for its own address (TLS)
//!
//! The agent routes also need the agent's own key (`X-Zkop-Agent-Key`,
//! bound to its instance at first contact: `controller/agent_identity.rs`).
//!
//! - `POST /v1/client-certificates`: sign a client's request as `CN=NAME` (`zkop client-cert`)
//! - `GET  /v1/status`: the cluster as `zkop status` shows it
//! - `POST /v1/roll`: restart every member once, one at a time (`zkop roll`)
//! - `POST /v1/replace/{instance}`: replace that member's instance (`zkop replace`)
//! - `GET  /metrics`: Prometheus text
//! - `GET  /`: the status page (no data; it asks for the token)
//! - `GET  /v1/timeline`: the last hour of the status page's plots (canary
//!   write and reads, each member's lag) with the events

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};

use zkop_spec::wire::{AgentReport, ApiError};

use zkop_spec::tls::{ClientCertificateRequest, NodeCertificateRequest};

use crate::api_tls::Peer;
use crate::controller::{AGENT_KEY_HEADER, AgentRefused, Shared, SignRefused};

/// How long a desired-state long poll is held.
pub const LONG_POLL: Duration = Duration::from_secs(20);

/// The router over `shared`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/agents/{instance}/desired", get(desired))
        .route("/v1/agents/{instance}/report", post(report))
        .route("/v1/agents/{instance}/certificate", post(node_certificate))
        .route("/v1/client-certificates", post(client_certificate))
        .route("/v1/status", get(status))
        .route("/v1/timeline", get(timeline))
        .route("/v1/roll", post(roll))
        .route("/v1/replace/{instance}", post(replace))
        .route("/metrics", get(metrics))
        .route("/", get(page))
        .fallback(not_found)
        .layer(middleware::from_fn(peer_of_connection))
        // Layers run outside in: the token first, then leadership.
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            require_leadership,
        ))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ))
        .with_state(shared)
}

/// An error response with a JSON body.
pub fn api_error(status: StatusCode, error: impl Into<String>) -> Response {
    (
        status,
        Json(ApiError {
            error: error.into(),
            leader: None,
        }),
    )
        .into_response()
}

/// Whether `a` equals `b`, in a time that does not depend on where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The status page: static, holding no data; it asks for the token and reads
/// the API with it.
const PAGE: &str = include_str!("status_page.html");

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

/// None when `req` may pass: the page, or `token` as its bearer token;
/// otherwise the 401 to answer.
pub(crate) fn bearer_refusal(req: &Request, token: &str) -> Option<Response> {
    if req.uri().path() == "/" {
        return None;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(t) if constant_time_eq(t.trim().as_bytes(), token.as_bytes()) => None,
        Some(_) => Some(api_error(StatusCode::UNAUTHORIZED, "wrong bearer token")),
        None => Some(api_error(
            StatusCode::UNAUTHORIZED,
            "missing bearer token (Authorization: Bearer <token>)",
        )),
    }
}

async fn require_token(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    match bearer_refusal(&req, &shared.token) {
        Some(refused) => refused,
        None => next.run(req).await,
    }
}

/// Only the leader answers agents and status; the others name it.
async fn require_leadership(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path() == "/metrics" || req.uri().path() == "/" {
        return next.run(req).await;
    }
    match shared.follower_of() {
        None => next.run(req).await,
        Some(leader) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ApiError {
                error: "this controller is not the leader".into(),
                leader,
            }),
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    api_error(StatusCode::NOT_FOUND, "no such route")
}

/// The agent key a request shows, if any.
fn agent_key(headers: &HeaderMap) -> Option<&str> {
    headers.get(AGENT_KEY_HEADER).and_then(|v| v.to_str().ok())
}

/// An agent's request refused: 404 for an instance the fleet does not list
/// (yet), 403 for a caller that is not its agent.
fn agent_refused(refused: AgentRefused) -> Response {
    let status = match refused {
        AgentRefused::UnknownInstance(_) => StatusCode::NOT_FOUND,
        AgentRefused::Forbidden(_) => StatusCode::FORBIDDEN,
    };
    api_error(status, refused.to_string())
}

/// On plain HTTP, the connection's address as its [`Peer`] (HTTPS sets
/// its own, with the node certificate shown).
async fn peer_of_connection(mut req: Request, next: Next) -> Response {
    if req.extensions().get::<Peer>().is_none()
        && let Some(ConnectInfo(from)) = req.extensions().get::<ConnectInfo<SocketAddr>>().cloned()
    {
        req.extensions_mut().insert(Peer {
            address: from.ip(),
            node: None,
            over_tls: false,
        });
    }
    next.run(req).await
}

fn parse_after(query: Option<&str>) -> Result<u64, String> {
    let Some(q) = query else { return Ok(0) };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("after=") {
            return v
                .parse()
                .map_err(|_| format!("query parameter after: `{v}` is not a whole number"));
        }
    }
    Ok(0)
}

async fn desired(
    State(shared): State<Arc<Shared>>,
    Path(instance): Path<String>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(refused) =
        shared.authorize_agent(&instance, peer.as_deref(), agent_key(&headers), false)
    {
        return agent_refused(refused);
    }
    let after = match parse_after(query.as_deref()) {
        Ok(a) => a,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, e),
    };
    let mut changes = shared.subscribe();
    let deadline = tokio::time::Instant::now() + LONG_POLL;
    loop {
        let d = shared.desired(&instance);
        // A revision below `after` means the agent saw an older controller.
        if d.revision != after {
            return Json(d).into_response();
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            _ => return Json(shared.desired(&instance)).into_response(),
        }
    }
}

async fn report(
    State(shared): State<Arc<Shared>>,
    Path(instance): Path<String>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) =
        shared.authorize_agent(&instance, peer.as_deref(), agent_key(&headers), false)
    {
        return agent_refused(refused);
    }
    let report: AgentReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, format!("malformed report: {e}")),
    };
    if report.instance != instance {
        return api_error(
            StatusCode::BAD_REQUEST,
            format!(
                "report is for instance `{}` but was posted to `{instance}`",
                report.instance
            ),
        );
    }
    match shared.record_report(report) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => api_error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

fn refused(e: SignRefused) -> Response {
    let status = match &e {
        SignRefused::TlsOff => StatusCode::CONFLICT,
        SignRefused::UnknownInstance(_) => StatusCode::NOT_FOUND,
        SignRefused::BadRequest(_) => StatusCode::BAD_REQUEST,
    };
    api_error(status, e.to_string())
}

async fn node_certificate(
    State(shared): State<Arc<Shared>>,
    Path(instance): Path<String>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) =
        shared.authorize_agent(&instance, peer.as_deref(), agent_key(&headers), true)
    {
        return agent_refused(refused);
    }
    let req: NodeCertificateRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, format!("malformed request: {e}")),
    };
    match shared.sign_node(&instance, &req.csr) {
        Ok(signed) => Json(signed).into_response(),
        Err(e) => refused(e),
    }
}

async fn client_certificate(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: ClientCertificateRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, format!("malformed request: {e}")),
    };
    match shared.sign_client(&req.name, &req.csr) {
        Ok(signed) => Json(signed).into_response(),
        Err(e) => refused(e),
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.status()).into_response()
}

/// The status page's plots: the last hour of samples, with the events.
async fn timeline(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.timeline()).into_response()
}

/// Asks for a rolling restart of every member; answers 202 with what happens.
async fn roll(State(shared): State<Arc<Shared>>) -> Response {
    shared.request_roll();
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "accepted": "every member restarts once, one at a time: observers, followers, the leader last"
        })),
    )
        .into_response()
}

/// Asks for the member on an instance to be replaced; 202, or 404 naming why.
async fn replace(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(instance): axum::extract::Path<String>,
) -> Response {
    match shared.request_replace(&instance) {
        Ok(id) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "accepted": format!("member {id} on {instance} is replaced: a new instance joins, takes its place in the config, then {instance} is terminated")
            })),
        )
            .into_response(),
        Err(e @ crate::controller::ReplaceRefused::NoMember(_)) => {
            api_error(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ crate::controller::ReplaceRefused::ExternallyScaled) => {
            api_error(StatusCode::CONFLICT, e.to_string())
        }
    }
}

/// The cluster's metrics as Prometheus text. Only the leading controller
/// knows the cluster: a follower (or a controller fenced off by another)
/// exports its leadership and nothing else, so that no gauge of a deposed
/// or standby controller fires an alert.
pub fn metrics_text(shared: &Shared) -> String {
    let leading = shared.follower_of().is_none();
    let cluster = shared.spec().name;
    let mut body = match leading {
        true => shared.metrics.render(&shared.status()),
        false => String::new(),
    };
    body.push_str(&crate::metrics::leadership(
        &cluster,
        leading,
        shared.fenced().is_some(),
    ));
    body
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let body = metrics_text(&shared);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_is_parsed_or_refused_by_name() {
        assert_eq!(parse_after(None), Ok(0));
        assert_eq!(parse_after(Some("after=42")), Ok(42));
        assert!(parse_after(Some("after=x")).unwrap_err().contains("after"));
    }
}
