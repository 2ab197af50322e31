//! `zkop run DIR`: a controller group. Every spec in the directory is a
//! cluster on the AWS path with its own reconcile loop, state directory
//! (`STATE/<metadata.name>`) and API (on `--api`'s address at the spec's
//! `fleet.aws.apiPort`, so agents' launch templates can name it). All of them
//! act under ONE leader lease, the DynamoDB item `lease#group#<--group>` in
//! `--lease-table` and `--lease-region` (default: each spec's state table
//! and region, which must then agree: a spec naming another place is
//! refused on its own), so its cost is shared; each cluster still takes its
//! state over under an epoch above its own stored one, which fences off any
//! other controller of it (`controller::fence`). `zkop run FILE` is a group
//! of one under the same lease. The directory is followed as `zkop local up DIR`
//! follows one: a new file starts a cluster, a removed one stops managing it
//! (its instances keep running), a bad file is refused on its own, and one
//! cluster's start-up (AWS calls) never holds up another's. `--api` itself
//! serves the group API over every cluster (`crate::group_api`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tracing::info;

use zkop_spec::cluster::Fleet;

use super::input::{InputError, load_spec};
use super::local_many::{look, refuse, say_removed};
use super::run::{LeaseLocation, RunOptions, check_lease_ttl, holder_name, on_host, prepare};
use super::serve::{self, GroupApi, until_signalled};
use crate::adapters::aws::{DynamoLease, calls, sdk_config};
use crate::controller::{LeaseKeeper, SharedLease};

/// How often the directory is read for new and removed specs.
const SCAN: Duration = Duration::from_secs(1);

/// The group's lease, shared by its clusters' loops.
type GroupLease = Arc<Mutex<LeaseKeeper<DynamoLease>>>;

/// A cluster being started or run, by its spec file.
struct Managed {
    name: String,
    port: u16,
    run: Run,
}

/// A cluster's start-up (its own task) or its running loop and API.
enum Run {
    Starting(JoinHandle<anyhow::Result<serve::Running>>),
    Running(serve::Running),
}

/// The clusters of one directory under one lease.
struct Group {
    opts: RunOptions,
    /// The API over every cluster, on `--api`.
    api: GroupApi,
    root: PathBuf,
    holder: String,
    lease_ttl: Duration,
    lease: Option<(LeaseLocation, GroupLease)>,
    managed: BTreeMap<PathBuf, Managed>,
    /// Files refused, with the text refused: tried again once it changes.
    refused: BTreeMap<PathBuf, String>,
}

/// Runs every cluster of `opts.spec` (a directory) until SIGINT or SIGTERM.
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let lease_ttl = check_lease_ttl(opts.lease_ttl)?;
    let root = opts
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".zkop"));
    std::fs::create_dir_all(&root)?;
    let advertised = opts
        .advertise_url
        .as_deref()
        .and_then(|u| reqwest::Url::parse(u).ok())
        .and_then(|u| u.host_str()?.parse::<std::net::IpAddr>().ok());
    let api = GroupApi::start(opts.api, advertised, &root).await?;
    let mut group = Group {
        api,
        holder: holder_name(),
        opts,
        root,
        lease_ttl,
        lease: None,
        managed: BTreeMap::new(),
        refused: BTreeMap::new(),
    };
    info!(group = %group.opts.group, holder = %group.holder, "zkop run DIR");
    eprintln!(
        "zkop: controller group {} following the specs in {}; every cluster's metrics and status at {}; Ctrl-C stops this controller (the ensembles keep running)",
        group.opts.group,
        group.opts.spec.display(),
        group.api.url
    );
    let stop = until_signalled();
    tokio::pin!(stop);
    loop {
        group.scan().await;
        tokio::select! {
            _ = tokio::time::sleep(SCAN) => {}
            r = &mut stop => { r?; break; }
        }
    }
    eprintln!("zkop: stopping this controller; the ensembles keep running");
    for (_, m) in std::mem::take(&mut group.managed) {
        m.run.stop().await;
    }
    group.api.finish().await;
    Ok(())
}

impl Run {
    /// Stops managing: the loop and the API end, the ensemble keeps running.
    async fn stop(self) {
        match self {
            Run::Starting(task) => task.abort(),
            Run::Running(running) => running.finish().await,
        }
    }
}

/// Refuses a spec whose lease location `at` is not the group's (`held`).
fn agrees(held: &LeaseLocation, at: &LeaseLocation) -> Result<(), InputError> {
    match held == at {
        true => Ok(()),
        false => Err(InputError::Usage(format!(
            "spec.state.table, spec.fleet.aws.region: this spec's controller group lease would live in {at}, but the group's lives in {held}: every spec of a directory must name one place (or give --lease-table and --lease-region)"
        ))),
    }
}

impl Group {
    /// Starts a cluster for each new file, notes the start-ups that ended,
    /// and stops managing the cluster of each removed file.
    async fn scan(&mut self) {
        let (gone, new) = look(&self.opts.spec, &self.managed, &mut self.refused);
        for path in gone {
            if let Some(m) = self.managed.remove(&path) {
                self.api.clusters.remove(&m.name);
                m.run.stop().await;
                say_removed(&path, &m.name);
            }
        }
        self.started().await;
        for (path, text) in new {
            match self.start(&path).await {
                Ok(m) => {
                    self.refused.remove(&path);
                    self.managed.insert(path, m);
                }
                Err(e) => refuse(&mut self.refused, &path, text, &e),
            }
        }
    }

    /// Takes the start-ups that ended: running, or refused until the file changes.
    async fn started(&mut self) {
        let ended: Vec<PathBuf> = self
            .managed
            .iter()
            .filter(|(_, m)| matches!(&m.run, Run::Starting(t) if t.is_finished()))
            .map(|(p, _)| p.clone())
            .collect();
        for path in ended {
            let Some(m) = self.managed.remove(&path) else {
                continue;
            };
            let Run::Starting(task) = m.run else {
                continue;
            };
            let outcome = match task.await {
                Ok(outcome) => outcome,
                Err(e) => Err(anyhow::anyhow!("its start-up task failed: {e}")),
            };
            match outcome {
                Ok(running) => {
                    self.api
                        .clusters
                        .insert(running.shared.clone(), &running.url);
                    self.managed.insert(
                        path,
                        Managed {
                            run: Run::Running(running),
                            ..m
                        },
                    );
                }
                Err(e) => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    refuse(&mut self.refused, &path, text, &e);
                }
            }
        }
    }

    /// The group's lease, made with the first spec started; a spec whose
    /// lease location (`--lease-table`/`--lease-region`, else its state
    /// table and region) differs from the group's is refused on its own.
    async fn lease(&mut self, at: LeaseLocation) -> anyhow::Result<GroupLease> {
        if let Some((held, lease)) = &self.lease {
            agrees(held, &at)?;
            return Ok(lease.clone());
        }
        let sdk = sdk_config(Some(at.region.clone())).await;
        let table = at.table.clone();
        // Followers name each cluster's API on this host.
        let url = self
            .opts
            .advertise_url
            .clone()
            .unwrap_or_else(|| self.api.url.clone());
        info!(group = %self.opts.group, table = %table, "the group's lease: item lease#group#{}", self.opts.group);
        let keeper = LeaseKeeper::new(
            DynamoLease::for_group(
                &sdk,
                &table,
                &self.opts.group,
                &self.holder,
                &url,
                self.lease_ttl,
            ),
            crate::clock::system(),
        );
        let lease = Arc::new(Mutex::new(keeper));
        self.lease = Some((at, lease.clone()));
        Ok(lease)
    }

    /// Checks the spec of `path` against the clusters managed (name, API
    /// port) and starts it in its own task.
    async fn start(&mut self, path: &Path) -> anyhow::Result<Managed> {
        let (spec, text) = load_spec(path)?;
        let (Fleet::Aws(aws), Some(_)) = (&spec.fleet, &spec.state) else {
            bail!(InputError::Usage(
                "spec.fleet: `zkop run` needs fleet.aws (use `zkop local up` for fleet.local)"
                    .into()
            ));
        };
        let Some(port) = aws.api_port else {
            bail!(InputError::Usage(
                "spec.fleet.aws.apiPort: each cluster run from a directory needs its own API port"
                    .into()
            ));
        };
        for (other, m) in &self.managed {
            if m.name == spec.name {
                bail!(InputError::Usage(format!(
                    "metadata.name: `{}` is managed already, from {}",
                    spec.name,
                    other.display()
                )));
            }
            if m.port == port {
                bail!(InputError::Usage(format!(
                    "spec.fleet.aws.apiPort: {port} is cluster {}'s already (from {})",
                    m.name,
                    other.display()
                )));
            }
        }
        let host = self
            .opts
            .advertise_url
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_string));
        let scheme = if spec.tls.is_some() { "https" } else { "http" };
        let opts = RunOptions {
            spec: path.to_path_buf(),
            state_dir: None,
            api: SocketAddr::new(self.opts.api.ip(), port),
            advertise_url: host.map(|h| format!("{scheme}://{h}:{port}")),
            ..self.opts.clone()
        };
        let dir = self.root.join(&spec.name);
        let name = spec.name.clone();
        let at = LeaseLocation::of(&self.opts, &spec).ok_or_else(|| {
            InputError::Usage("spec.state.table: `zkop run` needs a state table".into())
        })?;
        let lease = self.lease(at).await?;
        let loaded = (spec, text);
        let task = tokio::spawn(calls::scoped(&name, async move {
            let prepared = prepare(&opts, loaded, Some(dir), |_, _, _, url, _| {
                let own = url.to_string();
                SharedLease::new(lease, Arc::new(move |leader: &str| on_host(&own, leader)))
            })
            .await?;
            Ok(serve::start(
                prepared.api,
                prepared.shared,
                prepared.controller,
            ))
        }));
        Ok(Managed {
            name,
            port,
            run: Run::Starting(task),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{LeaseLocation, RunOptions, agrees, on_host};

    fn options(table: Option<&str>, region: Option<&str>) -> RunOptions {
        RunOptions {
            spec: "aws-3.yaml".into(),
            state_dir: None,
            api: "127.0.0.1:0".parse().unwrap(),
            advertise_url: None,
            lease_ttl: std::time::Duration::from_secs(45),
            group: "zkop".into(),
            lease_table: table.map(str::to_string),
            lease_region: region.map(str::to_string),
        }
    }

    #[test]
    fn a_group_s_lease_lives_where_the_flags_or_each_spec_say_and_a_spec_naming_another_place_is_refused()
     {
        // Issue 24, finding 1: the lease's place never depends on which
        // spec happened to start first.
        let aws3 = zkop_spec::parse_spec(include_str!("../../../examples/aws-3.yaml")).unwrap();
        let other = zkop_spec::parse_spec(
            &include_str!("../../../examples/aws-3.yaml")
                .replace("table: zkop-aws-3", "table: zkop-other")
                .replace("region: us-east-1", "region: eu-west-1"),
        )
        .unwrap();
        let defaults = options(None, None);
        let here = LeaseLocation::of(&defaults, &aws3).unwrap();
        assert_eq!(
            here,
            LeaseLocation {
                table: "zkop-aws-3".into(),
                region: "us-east-1".into()
            }
        );
        let there = LeaseLocation::of(&defaults, &other).unwrap();
        let refused = agrees(&here, &there).unwrap_err().to_string();
        assert!(
            refused.contains("spec.state.table") && refused.contains("zkop-other in eu-west-1"),
            "{refused}"
        );
        // Given by flags, one place for every spec.
        let flags = options(Some("zkop-leases"), Some("us-west-2"));
        let a = LeaseLocation::of(&flags, &aws3).unwrap();
        assert_eq!(a, LeaseLocation::of(&flags, &other).unwrap());
        assert_eq!(a.to_string(), "table zkop-leases in us-west-2");
        assert!(agrees(&a, &LeaseLocation::of(&flags, &other).unwrap()).is_ok());
    }

    #[test]
    fn a_follower_names_its_cluster_s_api_on_the_lease_holder_s_host() {
        assert_eq!(
            on_host("https://10.0.1.5:7001", "http://10.0.2.9"),
            "https://10.0.2.9:7001"
        );
        assert_eq!(
            on_host("http://127.0.0.1:7002/", "http://10.0.2.9:9999"),
            "http://10.0.2.9:7002"
        );
    }
}
