//! `zkop`: the controller and its CLI.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod bench_command;
mod sandbox;

use sandbox::SimulatorOptions;
use zkop::cli::client as status;
use zkop::cli::input::{self, InputError};
use zkop::cli::local::{self, UpOptions};
use zkop::cli::run::RunOptions;

#[derive(Debug, Parser)]
#[command(
    name = "zkop",
    version,
    about = "Runs Apache ZooKeeper ensembles: the controller and its CLI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a spec file: exit 0 with a summary, or 2 with every problem.
    Validate {
        /// The spec (YAML).
        file: PathBuf,
    },
    /// Print the spec's JSON Schema.
    Schema,
    /// Run a cluster on this machine.
    #[command(subcommand)]
    Local(LocalCommand),
    /// Run the controller of a cluster on an EC2 Auto Scaling group.
    Run {
        /// The spec (YAML) with fleet.aws, or a directory of them: every
        /// spec in it is a cluster, each with its own loop and API (on its
        /// fleet.aws.apiPort), all under one leader lease.
        file: PathBuf,
        /// Where this controller keeps api.json and its secrets (default
        /// .zkop/<metadata.name>; with a directory, one per cluster under it,
        /// default .zkop).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// The API's listen address (a free loopback port by default).
        #[arg(long, default_value = "127.0.0.1:0")]
        api: SocketAddr,
        /// The URL agents and other controllers reach this one at (default: the bound address).
        #[arg(long)]
        advertise_url: Option<String>,
        /// How long the leader lease lasts unrenewed (at least 15s). It is
        /// renewed every third of it; a dead controller's lease is taken
        /// over a little after it runs out. Longer: fewer DynamoDB writes,
        /// slower takeover (docs/operations.md).
        #[arg(long, default_value = "45s", value_parser = parse_duration)]
        lease_ttl: std::time::Duration,
        /// The controller group's name; its one lease is the item
        /// `lease#group#NAME` (a file is a group of one: the same lease as a
        /// directory holding it). Controllers that run different clusters
        /// independently take different names.
        #[arg(long, default_value = "zkop")]
        group: String,
        /// The DynamoDB table holding the group's lease (default: each
        /// spec's state table; a spec of a directory that names another is
        /// refused).
        #[arg(long)]
        lease_table: Option<String>,
        /// The region of that table (default: each spec's fleet.aws.region).
        #[arg(long)]
        lease_region: Option<String>,
    },
    /// Tools for the AWS sandbox (a moto server standing in for AWS).
    #[command(subcommand, hide = true)]
    Sandbox(SandboxCommand),
    /// The CloudFormation template that puts zkop on AWS.
    #[command(subcommand)]
    Cf(CfCommand),
    /// Time zkop's automatic operations against the same done by hand, on
    /// this machine with real ZooKeeper servers (takes a few minutes).
    Bench(Box<bench_command::BenchArgs>),
    /// Show a running cluster's members.
    Status {
        #[command(flatten)]
        controller: ControllerArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the connect string clients use: every serving voter and
    /// observer, `address:port`, comma-separated (also in the state
    /// directory's `connect-string` file). Exit 1 while no member serves.
    ConnectString {
        #[command(flatten)]
        controller: ControllerArgs,
    },
    /// Issue a client certificate from the cluster CA (TLS on): writes
    /// `ca.pem`, `cert.pem` and `key.pem` (PKCS#8, 0600, made here) in DIR.
    /// ZooKeeper knows the client as `x509:CN=NAME` in ACLs.
    ClientCert {
        /// The certificate's common name.
        name: String,
        /// Where to write the three files (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        controller: ControllerArgs,
    },
    /// Restart every member once, one at a time (observers, followers, the
    /// leader last), without a spec change: after an OS patch, say.
    Roll {
        #[command(flatten)]
        controller: ControllerArgs,
    },
    /// Replace one member's instance: a new instance joins and takes its
    /// place in the config, then the old one leaves and is terminated.
    Replace {
        /// The instance id (`zkop status` lists them).
        instance: String,
        #[command(flatten)]
        controller: ControllerArgs,
    },
    /// Read a cluster's backup.
    #[command(subcommand)]
    Backup(BackupCommand),
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// The backup's points: when, which zxids each restores exactly to, size.
    List {
        /// `dir:PATH` or `s3://BUCKET/PREFIX`.
        #[arg(long)]
        from: zkop_spec::backup::BackupTarget,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A restore drill: read back and check every object, then restore the
    /// newest point into a scratch ZooKeeper server, which must load exactly
    /// to it. Exit 1 naming what failed. The outcome is recorded in the backup.
    Verify {
        /// `dir:PATH` or `s3://BUCKET/PREFIX`.
        #[arg(long)]
        from: zkop_spec::backup::BackupTarget,
        /// The loopback address the scratch server listens on.
        #[arg(long, default_value = "127.0.0.1")]
        address: String,
        #[command(flatten)]
        java: zkop_zk::jvm::JavaArgs,
    },
}

/// Which controller to ask.
#[derive(Debug, clap::Args)]
struct ControllerArgs {
    /// The cluster's state directory (reads its api.json), or a directory
    /// holding several clusters' (with --cluster, or every one for `status`).
    #[arg(long, conflicts_with_all = ["api", "token_file"])]
    state_dir: Option<PathBuf>,
    /// The cluster, by metadata.name, under a directory holding several.
    #[arg(long, conflicts_with_all = ["api", "token_file"])]
    cluster: Option<String>,
    /// The controller's URL (with --token-file).
    #[arg(long, requires = "token_file")]
    api: Option<String>,
    /// The API token's file (with --api).
    #[arg(long, requires = "api")]
    token_file: Option<PathBuf>,
    /// With TLS on: the cluster CA's certificate to check an https --api
    /// against (the state directory's api.json names it).
    #[arg(long, requires = "api")]
    ca_file: Option<PathBuf>,
}

impl ControllerArgs {
    /// The controller's URL, token file and CA.
    fn resolve(self) -> anyhow::Result<status::ApiFile> {
        Ok(match (self.api, self.token_file) {
            (Some(url), Some(token_file)) => status::ApiFile {
                url,
                token_file,
                ca_file: self.ca_file,
            },
            _ => {
                let dir = input::find_state_dir(self.state_dir, self.cluster.as_deref())?;
                status::read_api_file(&dir)?
            }
        })
    }

    /// Every controller named: with a directory holding several clusters and
    /// no --cluster, each cluster's.
    fn resolve_all(self) -> anyhow::Result<Vec<Result<status::ApiFile, status::StatusError>>> {
        if self.api.is_some() {
            return Ok(vec![Ok(self.resolve()?)]);
        }
        Ok(
            input::cluster_state_dirs(self.state_dir, self.cluster.as_deref())?
                .iter()
                .map(|d| status::read_api_file(d))
                .collect(),
        )
    }
}

#[derive(Debug, Subcommand)]
enum CfCommand {
    /// Print the template (cf/zookeeper.template.json is this, checked in).
    Render {
        /// json or yaml.
        #[arg(long, value_enum, default_value = "json")]
        format: CfFormat,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CfFormat {
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
enum SandboxCommand {
    /// Run an agent on a loopback address for every running instance of the group.
    Fleet {
        /// The spec (YAML) with fleet.aws.
        file: PathBuf,
        /// The controller's state directory (its api.json).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// The loopback range for the agents.
        #[arg(long, default_value = "127.0.20.0/24")]
        network: String,
        /// The zkop-agent binary (default: beside zkop).
        #[arg(long)]
        agent_bin: Option<PathBuf>,
        /// A controller URL for the agents; repeat for each (default: api.json's).
        #[arg(long = "controller")]
        controllers: Vec<String>,
        /// Zones to spread new instances over (moto puts every instance in
        /// one); the controller reads them from $ZKOP_SANDBOX_ZONES.
        #[arg(long, value_delimiter = ',')]
        zones: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum LocalCommand {
    /// Run the controller and one agent per instance, in the foreground.
    Up {
        /// The spec (YAML) with fleet.local; or a directory of specs, each a
        /// cluster with its own fleet.local.network, followed while it runs.
        file: PathBuf,
        /// Where everything of the cluster lives (default .zkop/<metadata.name>);
        /// with a directory of specs, each cluster's is DIR/<metadata.name>
        /// (default .zkop).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// The API's listen address (a free port by default; written to api.json).
        #[arg(long, default_value = "127.0.0.1:0")]
        api: SocketAddr,
        /// The range the agents' servers use: loopback, or with --netns a
        /// private range whose first address the hub holds.
        #[arg(long, default_value = local::DEFAULT_NETWORK)]
        network: String,
        /// The zkop-agent binary (default: beside zkop, or $ZKOP_AGENT_BIN).
        #[arg(long)]
        agent_bin: Option<PathBuf>,
        /// Run each instance in its own network namespace PREFIX-<instance>,
        /// wired to the bridge PREFIX-br of the namespace zkop runs in (for
        /// real partitions in tests; see docs/reliability.md).
        #[arg(long, value_name = "PREFIX")]
        netns: Option<String>,
    },
    /// SIGKILL an instance's agent and ZooKeeper server, to try a failure.
    Kill {
        /// The cluster's state directory.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// The instance id, e.g. i-0002.
        instance: String,
    },
}

/// A duration flag: `45s`, `2m`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    zkop_spec::duration::DurationSpec::parse(s)
        .map(|d| d.get())
        .map_err(|e| e.to_string())
}

fn init_logs() {
    zkop_runtime::logging::init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Validate { file } => {
            let (spec, _) = input::load_spec(&file)?;
            println!("{}: valid: {}", file.display(), spec.summary());
        }
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&zkop_spec::json_schema())?
            );
        }
        Command::Local(LocalCommand::Up {
            file,
            state_dir,
            api,
            network,
            agent_bin,
            netns,
        }) => {
            init_logs();
            let opts = UpOptions {
                spec: file,
                state_dir,
                api,
                network,
                agent_bin,
                netns,
            };
            // A directory of specs is many clusters, each followed as one.
            match opts.spec.is_dir() {
                true => zkop::cli::local_many::up(opts).await?,
                false => local::up(opts).await?,
            }
        }
        Command::Run {
            file,
            state_dir,
            api,
            advertise_url,
            lease_ttl,
            group,
            lease_table,
            lease_region,
        } => {
            init_logs();
            let opts = RunOptions {
                spec: file,
                state_dir,
                api,
                advertise_url,
                lease_ttl,
                group,
                lease_table,
                lease_region,
            };
            // A file is a group of one, under the same lease as a directory.
            match opts.spec.is_dir() {
                true => zkop::cli::run_many::run(opts).await?,
                false => zkop::cli::run::run(opts).await?,
            }
        }
        Command::Sandbox(command) => sandbox_command(command).await?,
        Command::Local(LocalCommand::Kill {
            state_dir,
            instance,
        }) => {
            let dir = input::find_state_dir(state_dir, None)?;
            println!("{}", local::kill(&dir, &instance)?);
        }
        Command::Cf(CfCommand::Render { format }) => print!("{}", render_cf(format)?),
        Command::Bench(args) => bench_command::run(*args).await?,
        Command::Backup(command) => backup_command(command).await?,
        other => client_command(other).await?,
    }
    Ok(())
}

/// `zkop sandbox`: the AWS sandbox's tools.
async fn sandbox_command(command: SandboxCommand) -> anyhow::Result<()> {
    match command {
        SandboxCommand::Fleet {
            file,
            state_dir,
            network,
            agent_bin,
            controllers,
            zones,
        } => {
            init_logs();
            sandbox::simulate(SimulatorOptions {
                spec: file,
                state_dir,
                network,
                agent_bin: input::agent_binary(agent_bin)?,
                controllers,
                zones,
            })
            .await?;
        }
    }
    Ok(())
}

/// `zkop cf render`: the CloudFormation template.
fn render_cf(format: CfFormat) -> anyhow::Result<String> {
    let format = match format {
        CfFormat::Json => zkop_cf::Format::Json,
        CfFormat::Yaml => zkop_cf::Format::Yaml,
    };
    Ok(zkop_cf::render(format)?)
}

/// The commands that ask a running controller: `roll`, `replace`, `status`.
async fn client_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Roll { controller } => {
            let api = controller.resolve()?;
            let answer = status::request_roll(&api).await?;
            println!("{answer}");
        }
        Command::Replace {
            instance,
            controller,
        } => {
            let api = controller.resolve()?;
            let answer = status::request_replace(&api, &instance).await?;
            println!("{answer}");
        }
        Command::ClientCert {
            name,
            out,
            controller,
        } => {
            let api = controller.resolve()?;
            let signed = zkop::cli::client_cert::issue(&api, &name, &out).await?;
            println!(
                "client certificate CN={name} in {} (ca.pem, cert.pem, key.pem), valid until {}; ZooKeeper ACLs know it as x509:CN={name}",
                out.display(),
                zkop_spec::backup::format_time(signed.not_after_ms)
            );
        }
        Command::ConnectString { controller } => {
            let api = controller.resolve()?;
            let s = status::fetch(&api).await?;
            if s.connect_string.is_empty() {
                anyhow::bail!("no member of cluster {} serves", s.cluster);
            }
            println!("{}", s.connect_string);
        }
        Command::Status { controller, json } => {
            let apis = controller.resolve_all()?;
            let several = apis.len() > 1;
            let mut all = Vec::new();
            let mut failed = Vec::new();
            for api in apis {
                let answer = match api {
                    Ok(api) => status::fetch(&api).await,
                    Err(e) => Err(e),
                };
                match answer {
                    Ok(s) => all.push(s),
                    // One cluster's controller being away hides no other's status.
                    Err(e) if several => failed.push(e.to_string()),
                    Err(e) => return Err(e.into()),
                }
            }
            for e in &failed {
                eprintln!("zkop: {e}");
            }
            match (json, all.as_slice()) {
                (true, [one]) if !several => println!("{}", serde_json::to_string_pretty(one)?),
                // Several clusters: a JSON array, one status each.
                (true, _) => println!("{}", serde_json::to_string_pretty(&all)?),
                (false, _) => {
                    let tables: Vec<String> = all.iter().map(status::render_table).collect();
                    print!("{}", tables.join("\n"));
                }
            }
            if !failed.is_empty() {
                anyhow::bail!("{} of the clusters did not answer", failed.len());
            }
        }
        _ => {}
    }
    Ok(())
}

/// `zkop backup`: list a backup's points, or verify it with a drill.
async fn backup_command(command: BackupCommand) -> anyhow::Result<()> {
    match command {
        BackupCommand::List { from, json } => {
            let rows = zkop::cli::backup::list(&from).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", zkop::cli::backup::table(&rows));
            }
        }
        BackupCommand::Verify {
            from,
            address,
            java,
        } => {
            if let Some(missing) = java.missing_zookeeper() {
                anyhow::bail!(missing);
            }
            let store = zkop_runtime::backup::Store::open(&from).await?;
            let at_ms = zkop::clock::Clock::wall_ms(&zkop::clock::SystemClock);
            let record =
                zkop_runtime::backup::drill::verify(&store, &java, &address, at_ms).await?;
            if !record.ok {
                anyhow::bail!("backup {from} FAILED its drill: {}", record.detail);
            }
            println!("backup {from} verified: {}", record.detail);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: every child process is spawned from the main thread, so the
    // children's parent-death signal fires only when zkop itself exits.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zkop: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(input) = e.downcast_ref::<InputError>() {
                eprintln!("zkop: {input}");
                return ExitCode::from(2);
            }
            eprintln!("zkop: {e:#}");
            ExitCode::FAILURE
        }
    }
}
