//! `zkop run`: the controller on the AWS path. The fleet is the spec's Auto
//! Scaling group, ids are CloudWatch Logs streams, state and the leader lease
//! live in DynamoDB. Several controllers may run; the lease holder acts, the
//! others answer 503 naming it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use rand::RngCore;
use tracing::info;

use zkop_spec::cluster::{Fleet, Ids};

use super::input::{InputError, load_spec, state_dir_for};
use super::serve::{self, StateDir};
use crate::adapters::aws::{AsgFleet, DynamoLease, DynamoStore, LogStreamLedger, sdk_config};
use crate::controller::{Controller, LeaseKeeper, Shared, SharedLease, Signer, SpecFile};
use crate::model::Persisted;
use zkop_runtime::secrets;

/// How long the leader lease lasts without a renewal, by default. It is
/// renewed every half of that, with one DynamoDB write (2.7 a minute); a
/// dead controller's lease is taken over a little more than this after its
/// last renewal, so well within a minute.
pub const LEASE_TTL: Duration = Duration::from_secs(45);

/// The shortest lease `--lease-ttl` takes: an AWS call started under the
/// lease must end, by the SDK's deadline too, before the lease stops
/// letting its controller act, with a renewal's retry between.
pub const LEASE_TTL_MIN: Duration = Duration::from_secs(15);

const _: () = assert!(
    crate::adapters::aws::CALL_DEADLINE.as_millis() + crate::controller::LEASE_MARGIN.as_millis()
        < LEASE_TTL_MIN.as_millis()
);

/// Checks `--lease-ttl`.
pub fn check_lease_ttl(ttl: Duration) -> Result<Duration, InputError> {
    if ttl < LEASE_TTL_MIN {
        return Err(InputError::Usage(format!(
            "--lease-ttl {}s: must be at least {}s (an AWS call may take {}s, and a controller stops acting {}s before its lease runs out)",
            ttl.as_secs_f64(),
            LEASE_TTL_MIN.as_secs(),
            crate::adapters::aws::CALL_DEADLINE.as_secs(),
            crate::controller::LEASE_MARGIN.as_secs()
        )));
    }
    Ok(ttl)
}

/// Options of `zkop run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The spec file.
    pub spec: PathBuf,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--api`.
    pub api: SocketAddr,
    /// `--advertise-url`: the URL other controllers and agents reach this one at.
    pub advertise_url: Option<String>,
    /// `--lease-ttl`: how long the leader lease lasts without a renewal.
    pub lease_ttl: Duration,
    /// `--group`: the controller group's name (a file is a group of one).
    pub group: String,
    /// `--lease-table`: the table of the group's lease.
    pub lease_table: Option<String>,
    /// `--lease-region`: the region of that table.
    pub lease_region: Option<String>,
}

/// Where a controller group's lease lives: the item `lease#group#<group>`
/// in this table and region. It is the same whether a spec is run on its
/// own or from a directory, so that two controllers of one cluster always
/// meet at one lease, however each was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseLocation {
    /// The DynamoDB table.
    pub table: String,
    /// Its region.
    pub region: String,
}

impl LeaseLocation {
    /// `--lease-table` and `--lease-region`, each defaulting to the spec's
    /// state table and region. None for a spec without fleet.aws.
    pub fn of(opts: &RunOptions, spec: &zkop_spec::ValidatedCluster) -> Option<LeaseLocation> {
        let (Fleet::Aws(aws), Some(state)) = (&spec.fleet, &spec.state) else {
            return None;
        };
        Some(LeaseLocation {
            table: opts.lease_table.clone().unwrap_or(state.table.clone()),
            region: opts.lease_region.clone().unwrap_or(aws.region.clone()),
        })
    }
}

impl std::fmt::Display for LeaseLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "table {} in {}", self.table, self.region)
    }
}

/// The cluster CA, kept beside the secrets in SSM (made by the first
/// controller to need it), as the signer, so that TLS can be switched on
/// live; with an `https://` advertised URL (or none, and TLS on at start),
/// the API's TLS with a certificate for the addresses agents reach this
/// controller at.
async fn aws_tls(
    spec: &zkop_spec::ValidatedCluster,
    sdk: &aws_config::SdkConfig,
    opts: &RunOptions,
    dir: &std::path::Path,
) -> anyhow::Result<(Option<Signer>, Option<serve::ApiTls>)> {
    let Some(secrets) = &spec.secrets_parameter else {
        if opts
            .advertise_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
        {
            bail!(InputError::Usage(
                "an https:// --advertise-url needs spec.secrets.ssmParameter: the cluster CA that signs the API's certificate is kept beside the secrets".into()
            ));
        }
        return Ok((None, None));
    };
    let ssm = crate::adapters::aws::calls::ssm(sdk);
    let ca = zkop_runtime::pki_ssm::ensure_ssm_ca(&ssm, secrets, &spec.name).await?;
    // The API's scheme is the advertised URL's (agents reach it at the URL
    // their launch template names, which a live switch does not change);
    // without one, HTTPS when TLS is on at start.
    let https = match &opts.advertise_url {
        Some(url) => url.starts_with("https://"),
        None => spec.tls.is_some(),
    };
    let api_tls = match https {
        true => {
            let mut addresses = vec![opts.api.ip()];
            let advertised = opts
                .advertise_url
                .as_deref()
                .and_then(|u| reqwest::Url::parse(u).ok())
                .and_then(|u| u.host_str()?.parse::<IpAddr>().ok());
            addresses.extend(advertised);
            addresses.retain(|a| !a.is_unspecified());
            if addresses.is_empty() {
                bail!(InputError::Usage(
                    "with spec.tls on, give --advertise-url with the IP address agents reach this controller at (its certificate names it)".into()
                ));
            }
            let ca_file = dir.join("tls").join("ca.pem");
            zkop_runtime::files::write_atomic(&ca_file, ca.cert_pem().as_bytes(), 0o644)?;
            Some(serve::ApiTls {
                config: crate::api_tls::server_config(&ca, &addresses)
                    .map_err(|e| anyhow::anyhow!("the API's TLS: {e}"))?,
                ca_file,
            })
        }
        false => None,
    };
    // The sandbox's members share loopback and connect from 127.0.0.1; on
    // EC2 each connects from its own private address only.
    let shared_source = match std::env::var_os(crate::adapters::aws::SANDBOX_ADDRESSES) {
        Some(_) => vec![IpAddr::from(std::net::Ipv4Addr::LOCALHOST)],
        None => Vec::new(),
    };
    Ok((Some(Signer { ca, shared_source }), api_tls))
}

/// `own` (a cluster's API URL here) on the host of `leader` (the group
/// lease holder's advertised URL): where that cluster's leader answers.
pub(crate) fn on_host(own: &str, leader: &str) -> String {
    let (Ok(mut url), Ok(leader)) = (reqwest::Url::parse(own), reqwest::Url::parse(leader)) else {
        return leader.to_string();
    };
    if url.set_host(leader.host_str()).is_err() {
        return leader.to_string();
    }
    url.as_str().trim_end_matches('/').to_string()
}

/// A name unique to this controller process, as a lease holder.
pub(crate) fn holder_name() -> String {
    let mut nonce = [0u8; 4];
    rand::rng().fill_bytes(&mut nonce);
    format!(
        "{}-{}-{:02x}{:02x}{:02x}{:02x}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "zkop".into()),
        std::process::id(),
        nonce[0],
        nonce[1],
        nonce[2],
        nonce[3]
    )
}

/// The controller of one cluster on the AWS path.
pub(crate) type AwsController<E> = Controller<AsgFleet, LogStreamLedger, DynamoStore, E>;

/// One cluster on the AWS path with its API bound and its loop built.
pub(crate) struct Prepared<E> {
    /// The API, bound.
    pub api: serve::Api,
    /// What the API and the loop share.
    pub shared: Arc<Shared>,
    /// The reconcile loop.
    pub controller: AwsController<E>,
}

/// Runs the controller of a spec file until SIGINT or SIGTERM (a
/// directory: `run_many::run`).
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let lease_ttl = check_lease_ttl(opts.lease_ttl)?;
    let holder = holder_name();
    let loaded = load_spec(&opts.spec)?;
    let name = loaded.0.name.clone();
    // A file is a group of one: the same lease as a directory holding it.
    let at = LeaseLocation::of(&opts, &loaded.0);
    let lease_sdk = match &at {
        Some(at) => Some(sdk_config(Some(at.region.clone())).await),
        None => None,
    };
    let group = opts.group.clone();
    let prepared = crate::adapters::aws::calls::scoped(
        &name,
        prepare(&opts, loaded, None, |sdk, _, table, url, clock| {
            let (sdk, table) = match (&lease_sdk, &at) {
                (Some(sdk), Some(at)) => (sdk, at.table.as_str()),
                _ => (sdk, table),
            };
            let keeper = LeaseKeeper::new(
                DynamoLease::for_group(sdk, table, &group, &holder, url, lease_ttl),
                clock,
            );
            // The holder of a group of one advertises this cluster's API.
            SharedLease::new(
                Arc::new(tokio::sync::Mutex::new(keeper)),
                Arc::new(|leader: &str| leader.to_string()),
            )
        }),
    )
    .await?;
    info!(cluster = %name, api = %prepared.api.url, holder = %holder, group = %opts.group, lease = ?at, "zkop run");
    serve::serve_until_signalled(
        prepared.api,
        prepared.shared,
        prepared.controller,
        "stopping this controller; the ensemble keeps running",
        async {},
    )
    .await
}

/// Takes `loaded` (the spec of `opts.spec`, fleet.aws, and its text) and
/// its secrets, binds its API in
/// `state_dir` (default: `opts.state_dir` or `.zkop/<name>`), and builds its
/// loop under the leadership `lead` makes from the SDK's configuration, the
/// spec, the state table, the API's URL and the loop's clock.
pub(crate) async fn prepare<E: crate::controller::Leadership>(
    opts: &RunOptions,
    loaded: (zkop_spec::ValidatedCluster, String),
    state_dir: Option<PathBuf>,
    lead: impl FnOnce(
        &aws_config::SdkConfig,
        &zkop_spec::ValidatedCluster,
        &str,
        &str,
        crate::clock::SharedClock,
    ) -> E,
) -> anyhow::Result<Prepared<E>> {
    let (spec, text) = loaded;
    let (Fleet::Aws(aws), Ids::CloudwatchLogs(ids), Some(state)) =
        (&spec.fleet, &spec.ids, &spec.state)
    else {
        bail!(InputError::Usage(format!(
            "{}: spec.fleet: `zkop run` needs fleet.aws (use `zkop local up` for fleet.local)",
            opts.spec.display()
        )));
    };
    let dir = state_dir.unwrap_or_else(|| state_dir_for(opts.state_dir.clone(), &spec.name));
    let state_dir = StateDir::create(&dir)?;
    let dir = state_dir.dir.clone();
    let sdk = sdk_config(Some(aws.region.clone())).await;
    let token_file = state_dir.token_file.clone();
    let token = match &spec.secrets_parameter {
        // Shared by every controller and agent; a 0600 copy serves the CLI here.
        Some(name) => {
            let s = secrets::from_ssm(&crate::adapters::aws::calls::ssm(&sdk), name).await?;
            secrets::write_secret(&token_file, &s.api_token)?;
            secrets::write_secret(&state_dir.password_file, &s.super_password)?;
            s.api_token
        }
        None => state_dir.ensure_secrets()?,
    };

    let (signer, tls) = aws_tls(&spec, &sdk, opts, &dir).await?;
    let api =
        serve::Api::bind(opts.api, opts.advertise_url.clone(), &dir, &token_file, tls).await?;
    let fleet = Arc::new(AsgFleet::new(&sdk, &aws.auto_scaling_group_name));
    let ledger = LogStreamLedger::open(&sdk, &ids.log_group).await?;
    let store = DynamoStore::new(&sdk, &state.table, &spec.name);
    let shared = Shared::new(
        token,
        spec.clone(),
        Persisted {
            cluster: spec.name.clone(),
            ..Persisted::default()
        },
    );
    if let Some(signer) = signer {
        shared.set_signer(signer);
    }
    let leadership = lead(&sdk, &spec, &state.table, &api.url, shared.clock.clone());
    info!(cluster = %spec.name, api = %api.url, group = %aws.auto_scaling_group_name, "cluster ready to run");
    eprintln!(
        "zkop: cluster {} on group {} ({}), API {}, state in {}",
        spec.name,
        aws.auto_scaling_group_name,
        aws.region,
        api.url,
        dir.display()
    );
    let controller = Controller::new(
        shared.clone(),
        fleet,
        ledger,
        store,
        Some(SpecFile::new(opts.spec.clone(), text)),
        leadership,
    )
    .advertising(&api.url);
    Ok(Prepared {
        api,
        shared,
        controller,
    })
}
