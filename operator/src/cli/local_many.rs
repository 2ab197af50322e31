//! `zkop local up DIR`: every spec in a directory is a cluster, each with its
//! own reconcile loop, API, state directory (`STATE/<metadata.name>`) and
//! network (`fleet.local.network`). The directory is followed while it runs:
//! a new file starts a cluster, a removed one stops managing its cluster and
//! leaves its instances running, an edit is the cluster's own (applied or
//! refused by its loop, as with one file). A bad file is refused on its own
//! and never holds up another cluster. `--api` itself serves the group API
//! over every cluster (`crate::group_api`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use tracing::{info, warn};

use zkop_spec::cluster::Fleet;
use zkop_spec::network::{overlaps, parse_cidr};

use super::input::{InputError, load_spec};
use super::local::{LocalRun, UpOptions, start};
use super::serve::{GroupApi, until_signalled};

/// How often the directory is read for new and removed specs.
const SCAN: Duration = Duration::from_secs(1);

/// A managed cluster and the network it holds.
struct Managed {
    run: LocalRun,
    network: (Ipv4Addr, u8),
}

/// The clusters of one directory.
struct Clusters {
    opts: UpOptions,
    /// The API over every cluster.
    group: GroupApi,
    root: PathBuf,
    managed: BTreeMap<PathBuf, Managed>,
    /// Files refused, with the text refused: tried again once it changes.
    refused: BTreeMap<PathBuf, String>,
}

/// Runs every cluster of `opts.spec` (a directory) until SIGINT or SIGTERM.
pub async fn up(opts: UpOptions) -> anyhow::Result<()> {
    if opts.netns.is_some() {
        bail!(InputError::Usage(format!(
            "{}: --netns takes one spec file, not a directory",
            opts.spec.display()
        )));
    }
    let root = opts
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".zkop"));
    std::fs::create_dir_all(&root)?;
    let group = GroupApi::start(opts.api, None, &root).await?;
    let mut clusters = Clusters {
        group,
        opts,
        root,
        managed: BTreeMap::new(),
        refused: BTreeMap::new(),
    };
    eprintln!(
        "zkop: following the specs in {}; every cluster's metrics and status at {} (token in {}); Ctrl-C stops every cluster",
        clusters.opts.spec.display(),
        clusters.group.url,
        clusters.root.join("token").display()
    );
    let stop = until_signalled();
    tokio::pin!(stop);
    loop {
        clusters.scan().await;
        tokio::select! {
            _ = tokio::time::sleep(SCAN) => {}
            r = &mut stop => { r?; break; }
        }
    }
    eprintln!("zkop: stopping every cluster (a stop, not a scale-in)");
    for (_, m) in std::mem::take(&mut clusters.managed) {
        m.run.stop(true).await;
    }
    clusters.group.finish().await;
    eprintln!("zkop: stopped");
    Ok(())
}

/// The spec files of `dir` (`*.yaml`, `*.yml`), sorted.
fn spec_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// One look at a followed directory: the managed files gone from it, and
/// the files to start (new, or refused and changed since) with their text.
pub(crate) fn look<V>(
    dir: &Path,
    managed: &BTreeMap<PathBuf, V>,
    refused: &mut BTreeMap<PathBuf, String>,
) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let files = spec_files(dir);
    let gone = managed
        .keys()
        .filter(|p| !files.contains(p))
        .cloned()
        .collect();
    refused.retain(|p, _| files.contains(p));
    let new = files
        .into_iter()
        // A managed cluster's own loop follows its edits.
        .filter(|p| !managed.contains_key(p))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            (refused.get(&p) != Some(&text)).then_some((p, text))
        })
        .collect();
    (gone, new)
}

/// Says that the cluster `name` of the removed file `path` is no longer managed.
pub(crate) fn say_removed(path: &Path, name: &str) {
    info!(cluster = %name, file = %path.display(), "spec removed: no longer managed");
    eprintln!(
        "zkop: {} removed: cluster {name} is no longer managed; its instances keep running",
        path.display()
    );
}

/// Refuses `path` (with the `text` refused) until it changes.
pub(crate) fn refuse(
    refused: &mut BTreeMap<PathBuf, String>,
    path: &Path,
    text: String,
    e: &anyhow::Error,
) {
    warn!(file = %path.display(), error = %e, "spec refused");
    eprintln!("zkop: refused {}: {e:#}", path.display());
    refused.insert(path.to_path_buf(), text);
}

impl Clusters {
    /// Starts a cluster for each new file and stops managing the cluster of
    /// each removed one.
    async fn scan(&mut self) {
        let (gone, new) = look(&self.opts.spec, &self.managed, &mut self.refused);
        for path in gone {
            if let Some(m) = self.managed.remove(&path) {
                let name = m.run.name.clone();
                self.group.clusters.remove(&name);
                m.run.stop(false).await;
                say_removed(&path, &name);
            }
        }
        for (path, text) in new {
            match self.start(&path).await {
                Ok(m) => {
                    self.group.clusters.insert(m.run.shared(), &m.run.url);
                    self.refused.remove(&path);
                    self.managed.insert(path, m);
                }
                Err(e) => refuse(&mut self.refused, &path, text, &e),
            }
        }
    }

    /// Starts the cluster of `path`, once it is known not to clash with a
    /// managed one (name, network).
    async fn start(&self, path: &Path) -> anyhow::Result<Managed> {
        let (spec, _) = load_spec(path)?;
        let Fleet::Local(local) = &spec.fleet else {
            bail!(InputError::Usage(
                "spec.fleet: `zkop local up` needs fleet.local".into()
            ));
        };
        let Some(cidr) = &local.network else {
            bail!(InputError::Usage(
                "spec.fleet.local.network: each cluster run from a directory needs its own network"
                    .into()
            ));
        };
        let network = parse_cidr(cidr).map_err(InputError::Usage)?;
        for (other, m) in &self.managed {
            if m.run.name == spec.name {
                bail!(InputError::Usage(format!(
                    "metadata.name: `{}` is managed already, from {}",
                    spec.name,
                    other.display()
                )));
            }
            if overlaps(network, m.network) {
                bail!(InputError::Usage(format!(
                    "spec.fleet.local.network: {cidr} overlaps cluster {}'s {}/{} (from {})",
                    m.run.name,
                    m.network.0,
                    m.network.1,
                    other.display()
                )));
            }
        }
        let opts = UpOptions {
            spec: path.to_path_buf(),
            state_dir: Some(self.root.join(&spec.name)),
            // Each cluster its own API on a free port of the flag's address.
            api: SocketAddr::new(self.opts.api.ip(), 0),
            network: cidr.clone(),
            agent_bin: self.opts.agent_bin.clone(),
            netns: None,
        };
        let run = start(&opts).await?;
        Ok(Managed { run, network })
    }
}
