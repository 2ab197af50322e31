//! The one start-up path of `zkop local up` and `zkop run`: the state
//! directory and its secrets, the API listener and `api.json`, the HTTP server
//! and the reconcile loop as tasks, and an orderly stop on SIGINT or SIGTERM.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::adapters::{Fleet, IdLedger, StateStore};
use crate::cli::client::ApiFile;
use crate::controller::{Controller, Leadership, Shared};

/// The API's listener, bound, and its URL written to `DIR/api.json`.
pub struct Api {
    listener: TcpListener,
    /// The URL agents and the CLI use.
    pub url: String,
    api_file: PathBuf,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// The API over HTTPS: its TLS, and the CA's certificate file clients trust.
pub struct ApiTls {
    /// The server's TLS.
    pub config: Arc<rustls::ServerConfig>,
    /// The cluster CA's certificate (written to `api.json` for the CLI).
    pub ca_file: PathBuf,
}

impl Api {
    /// Binds `addr` and writes `state_dir/api.json` naming `advertise` (or the
    /// bound address) and the token file.
    pub async fn bind(
        addr: SocketAddr,
        advertise: Option<String>,
        state_dir: &Path,
        token_file: &Path,
        tls: Option<ApiTls>,
    ) -> anyhow::Result<Api> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the API on {addr}"))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = advertise.unwrap_or(format!("{scheme}://{}", listener.local_addr()?));
        let api_file = state_dir.join("api.json");
        let f = ApiFile {
            url: url.clone(),
            token_file: token_file.to_path_buf(),
            ca_file: tls.as_ref().map(|t| t.ca_file.clone()),
        };
        zkop_runtime::files::write_atomic(&api_file, &serde_json::to_vec_pretty(&f)?, 0o644)?;
        Ok(Api {
            listener,
            url,
            api_file,
            tls: tls.map(|t| t.config),
        })
    }
}

/// The server and the loop, running.
pub struct Running {
    /// What the API and the loop share (the group API reads it).
    pub shared: Arc<Shared>,
    /// The API's URL.
    pub url: String,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    looping: Option<JoinHandle<()>>,
    retention: JoinHandle<()>,
    discovery: Option<JoinHandle<()>>,
    canary: Option<JoinHandle<()>>,
    api_file: PathBuf,
}

/// Starts serving `shared` on `api` and running `controller`.
pub fn start<F, L, S, E>(
    api: Api,
    shared: Arc<Shared>,
    controller: Controller<F, L, S, E>,
) -> Running
where
    F: Fleet + 'static,
    L: IdLedger + 'static,
    S: StateStore + 'static,
    E: Leadership + 'static,
{
    let (stop, stop_rx) = watch::channel(false);
    // AWS calls count for the cluster whose loop made them.
    let cluster = shared.spec().name;
    let retention = tokio::spawn(crate::adapters::aws::calls::scoped(
        &cluster,
        super::retention::run(shared.clone(), stop_rx.clone()),
    ));
    let discovery = api.api_file.parent().map(|dir| {
        tokio::spawn(super::discovery::run(
            shared.clone(),
            dir.join(super::discovery::FILE),
            stop_rx.clone(),
        ))
    });
    let canary = api.api_file.parent().map(|dir| {
        tokio::spawn(crate::canary::run(
            shared.clone(),
            dir.join("super-password"),
            stop_rx.clone(),
        ))
    });
    let router = crate::api::router(shared.clone());
    let url = api.url.clone();
    let mut server_stop = stop_rx.clone();
    let server = match api.tls {
        Some(config) => tokio::spawn(crate::api_tls::serve(
            api.listener,
            config,
            router,
            server_stop,
        )),
        None => tokio::spawn(async move {
            // The connection's address: an agent's first contact must come
            // from its own instance's address.
            axum::serve(
                api.listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = server_stop.changed().await;
            })
            .await
        }),
    };
    let looping = tokio::spawn(crate::adapters::aws::calls::scoped(
        &cluster,
        controller.run(stop_rx),
    ));
    Running {
        shared,
        url,
        stop,
        server,
        looping: Some(looping),
        retention,
        discovery,
        canary,
        api_file: api.api_file,
    }
}

/// Waits for SIGINT or SIGTERM.
pub async fn until_signalled() -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = sigterm.recv() => {}
        _ = sigint.recv() => {}
    }
    Ok(())
}

impl Running {
    /// Stops the loop (the API keeps answering until [`Running::finish`]).
    pub async fn stop_loop(&mut self) {
        let _ = self.stop.send(true);
        self.retention.abort();
        if let Some(d) = &self.discovery {
            d.abort();
        }
        if let Some(c) = &self.canary {
            c.abort();
        }
        if let Some(looping) = self.looping.take() {
            let _ = looping.await;
        }
    }

    /// Stops the server and removes `api.json`.
    pub async fn finish(mut self) {
        self.stop_loop().await;
        let _ = self.server.await;
        let _ = std::fs::remove_file(&self.api_file);
    }
}

/// The state directory (created, absolute) and the paths of its secrets.
#[derive(Debug, Clone)]
pub struct StateDir {
    /// The directory.
    pub dir: PathBuf,
    /// The API token's file (0600).
    pub token_file: PathBuf,
    /// ZooKeeper's super-user password's file (0600).
    pub password_file: PathBuf,
}

impl StateDir {
    /// Creates `dir` (private: it holds secrets and, locally, every instance's data).
    pub fn create(dir: &Path) -> anyhow::Result<StateDir> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        Ok(StateDir {
            token_file: dir.join("token"),
            password_file: dir.join("super-password"),
            dir,
        })
    }

    /// The API token, with both secrets made (random, 0600) where missing.
    pub fn ensure_secrets(&self) -> anyhow::Result<String> {
        use zkop_runtime::secrets::ensure_secret;
        ensure_secret(&self.password_file)
            .with_context(|| self.password_file.display().to_string())?;
        ensure_secret(&self.token_file).with_context(|| self.token_file.display().to_string())
    }
}

/// Serves `shared` on `api` and runs `controller` until SIGINT or SIGTERM;
/// then stops the loop, runs `after_loop` (local mode stops its processes
/// there) while the API still answers, and stops the server.
pub async fn serve_until_signalled<F, L, S, E>(
    api: Api,
    shared: Arc<Shared>,
    controller: Controller<F, L, S, E>,
    stopping: &str,
    after_loop: impl Future<Output = ()>,
) -> anyhow::Result<()>
where
    F: Fleet + 'static,
    L: IdLedger + 'static,
    S: StateStore + 'static,
    E: Leadership + 'static,
{
    let mut running = start(api, shared, controller);
    until_signalled().await?;
    eprintln!("zkop: {stopping}");
    running.stop_loop().await;
    after_loop.await;
    running.finish().await;
    Ok(())
}

/// The group API of a controller running a directory of specs
/// (`crate::group_api`): bound on `--api` and served over HTTPS with the
/// group's own CA (`ROOT/group-tls/ca.pem`), its URL, token file and CA file in
/// `ROOT/group.json`, its token in `ROOT/token`.
pub struct GroupApi {
    /// The clusters it covers; add each as it starts.
    pub clusters: Arc<crate::group_api::Clusters>,
    /// Its URL.
    pub url: String,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    file: PathBuf,
}

/// The group API's file in the state root.
pub const GROUP_FILE: &str = "group.json";

impl GroupApi {
    /// Binds `addr` and serves the group API of the clusters under `root`
    /// over HTTPS: it carries every cluster's status and metrics, so it is
    /// never plain text on a routable address. Its certificate names the
    /// bound address (loopback when unspecified) and `advertised`.
    pub async fn start(
        addr: SocketAddr,
        advertised: Option<IpAddr>,
        root: &Path,
    ) -> anyhow::Result<GroupApi> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the group API on {addr}"))?;
        let bound = listener.local_addr()?;
        // A wildcard bind is reached on loopback here, and at `advertised`
        // from elsewhere.
        let host = match bound.ip().is_unspecified() {
            true => IpAddr::from(std::net::Ipv4Addr::LOCALHOST),
            false => bound.ip(),
        };
        let url = format!("https://{}", SocketAddr::new(host, bound.port()));
        let mut addresses = vec![host];
        addresses.extend(advertised.filter(|a| !a.is_unspecified() && *a != host));
        let tls_dir = root.join("group-tls");
        let ca = zkop_runtime::pki::ensure_local_ca(&tls_dir, "zkop-group")
            .context("the group API's CA")?;
        let config = crate::api_tls::server_config(&ca, &addresses)
            .map_err(|e| anyhow::anyhow!("the group API's TLS: {e}"))?;
        let token_file = root.join("token");
        let token = zkop_runtime::secrets::ensure_secret(&token_file)
            .with_context(|| token_file.display().to_string())?;
        let file = root.join(GROUP_FILE);
        let f = ApiFile {
            url: url.clone(),
            token_file,
            ca_file: Some(tls_dir.join("ca.pem")),
        };
        zkop_runtime::files::write_atomic(&file, &serde_json::to_vec_pretty(&f)?, 0o644)?;
        let clusters = Arc::new(crate::group_api::Clusters::default());
        let router = crate::group_api::router(clusters.clone(), token);
        let (stop, stop_rx) = watch::channel(false);
        let server = tokio::spawn(crate::api_tls::serve(listener, config, router, stop_rx));
        Ok(GroupApi {
            clusters,
            url,
            stop,
            server,
            file,
        })
    }

    /// Stops serving and removes `group.json`.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = std::fs::remove_file(&self.file);
    }
}
