//! One API over every cluster a controller runs from a directory (`zkop
//! local up DIR`, `zkop run DIR`), on `--api`, beside each cluster's own.
//! It reads what the clusters' loops share and changes nothing. Every route
//! but the page needs the group's bearer token (`ROOT/token`); errors are
//! JSON (`{"error": ...}`).
//!
//! - `GET /metrics`: every cluster's metrics, one family at a time
//! - `GET /v1/status`: every cluster's status (as `zkop status --json`), by name
//! - `GET /v1/clusters`: each cluster's name, API URL and status
//! - `GET /`: a page listing the clusters (no data; it asks for the token)

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;

use zkop_spec::wire::StatusReply;

use crate::api::{api_error, bearer_refusal, metrics_text};
use crate::controller::Shared;

/// The clusters a controller runs now, by name, with their API URLs.
#[derive(Default)]
pub struct Clusters {
    by_name: RwLock<BTreeMap<String, (Arc<Shared>, String)>>,
}

impl Clusters {
    /// Adds (or replaces) the cluster `shared` serves at `url`.
    pub fn insert(&self, shared: Arc<Shared>, url: &str) {
        let name = shared.spec().name;
        self.write().insert(name, (shared, url.to_string()));
    }

    /// Forgets the cluster `name` (no longer managed).
    pub fn remove(&self, name: &str) {
        self.write().remove(name);
    }

    /// Every cluster, by name.
    fn all(&self) -> Vec<(String, Arc<Shared>, String)> {
        self.by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, (s, u))| (n.clone(), s.clone(), u.clone()))
            .collect()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, (Arc<Shared>, String)>> {
        self.by_name.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the group's routes read.
struct Group {
    clusters: Arc<Clusters>,
    token: String,
}

/// One cluster in `GET /v1/clusters`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterEntry {
    name: String,
    url: String,
    status: StatusReply,
}

/// The router over `clusters`, guarded by `token`.
pub fn router(clusters: Arc<Clusters>, token: String) -> Router {
    let group = Arc::new(Group { clusters, token });
    Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/clusters", get(clusters_list))
        .route("/", get(page))
        .fallback(|| async { api_error(StatusCode::NOT_FOUND, "no such route") })
        .layer(middleware::from_fn_with_state(group.clone(), require_token))
        .with_state(group)
}

async fn require_token(State(group): State<Arc<Group>>, req: Request, next: Next) -> Response {
    match bearer_refusal(&req, &group.token) {
        Some(refused) => refused,
        None => next.run(req).await,
    }
}

async fn metrics(State(group): State<Arc<Group>>) -> Response {
    let texts: Vec<String> = group
        .clusters
        .all()
        .iter()
        .map(|(_, shared, _)| metrics_text(shared))
        .collect();
    let body = crate::metrics::merge(texts.iter().map(String::as_str));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn status(State(group): State<Arc<Group>>) -> Json<Vec<StatusReply>> {
    Json(
        group
            .clusters
            .all()
            .iter()
            .map(|(_, shared, _)| shared.status())
            .collect(),
    )
}

async fn clusters_list(State(group): State<Arc<Group>>) -> Json<Vec<ClusterEntry>> {
    Json(
        group
            .clusters
            .all()
            .into_iter()
            .map(|(name, shared, url)| ClusterEntry {
                name,
                url,
                status: shared.status(),
            })
            .collect(),
    )
}

/// The page: static, holding no data.
const PAGE: &str = include_str!("group_page.html");

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
