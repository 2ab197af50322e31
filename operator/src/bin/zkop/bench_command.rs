//! `zkop bench`'s flags and how each kind of bench is run and printed.

use std::path::PathBuf;

use super::{ControllerArgs, bench};
use zkop::cli::input;
use zkop::cli::local;

/// `zkop bench`'s flags.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Print a JSON list of {operation, voters, zkopSeconds, handSeconds, ratio}.
    #[arg(long)]
    json: bool,
    /// Only 3 voters: bootstrap, adding a member and removing a follower.
    #[arg(long)]
    quick: bool,
    /// Runs every operation this many times; the table shows the medians
    /// and each run. With --load: each side's mixes, the sides taking
    /// turns to go first.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    runs: u32,
    /// Under each row, the controller's steps in the zkop run: when each
    /// began after the user's action and how long it took.
    #[arg(long)]
    explain: bool,
    /// Instead: the AWS API calls per minute of a running controller (the
    /// AWS sandbox's, say), by operation, over --window-seconds.
    #[arg(long)]
    aws_calls: bool,
    /// The window --aws-calls counts over.
    #[arg(long, default_value_t = 60, requires = "aws_calls")]
    window_seconds: u64,
    /// The focused benches, each instead of the rest.
    #[command(flatten)]
    focused: Focused,
    /// The controller --aws-calls asks.
    #[command(flatten)]
    controller: ControllerArgs,
    /// Loopback range for the zkop-run cluster.
    #[arg(long, default_value = "127.0.60.0/24")]
    network: String,
    /// Loopback range for the plain servers run by hand.
    #[arg(long, default_value = "127.0.61.0/24")]
    hand_network: String,
    /// The zkop-agent binary (default: beside zkop, or $ZKOP_AGENT_BIN).
    #[arg(long)]
    agent_bin: Option<PathBuf>,
    /// Java and ZooKeeper for the plain servers.
    #[command(flatten)]
    java: zkop_zk::jvm::JavaArgs,
}

/// The focused benches on one cluster by zkop, each instead of the rest.
#[derive(Debug, clap::Args)]
struct Focused {
    /// Instead: write latency over TLS next to plaintext, on two 3-voter
    /// clusters run by zkop (--tls-writes creates each).
    #[arg(long, conflicts_with = "aws_calls")]
    tls: bool,
    /// Creates --tls times on each cluster.
    #[arg(long, default_value_t = 2000, requires = "tls")]
    tls_writes: usize,
    /// Voter redundancy restored after a voter's ZooKeeper hangs, with one
    /// standby voter and without (about 2 minutes).
    #[arg(long, conflicts_with_all = ["aws_calls", "tls"])]
    standby: bool,
    /// The controller's memory and CPU with this many one-voter clusters
    /// under one `zkop local up DIR` (at most 32).
    #[arg(long, conflicts_with_all = ["aws_calls", "tls", "standby"])]
    clusters: Option<usize>,
    /// Instead: a 3-voter rolling upgrade of ZooKeeper (the installed 3.8
    /// release to the default) by zkop, next to the same done by hand, with
    /// the longest write stall and sessions expired (about 2 minutes).
    #[arg(long, conflicts_with_all = ["aws_calls", "tls", "standby", "clusters"])]
    upgrade: bool,
    /// Instead: what the consistency canary costs a 3-voter ensemble run by
    /// zkop (requests a second, off and on, next to its capacity; about 2
    /// minutes).
    #[arg(long, conflicts_with_all = ["aws_calls", "tls", "standby", "clusters", "upgrade"])]
    canary: bool,
    /// Instead: whether continuous backup keeps up with heavy writes on a
    /// 3-voter cluster by zkop (recoveryPoint 5s): the recovery point kept,
    /// the shipper's CPU and bytes, at each --writes-per-second.
    #[arg(long, conflicts_with_all = ["aws_calls", "tls", "standby", "clusters", "upgrade", "canary"])]
    backup_load: bool,
    /// The write rates --backup-load runs, one after the other.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,5000",
        requires = "backup_load"
    )]
    writes_per_second: Vec<u32>,
    /// How long --backup-load writes at each rate, seconds.
    #[arg(long, default_value_t = 300, requires = "backup_load")]
    load_seconds: u64,
    /// Instead: ZooKeeper's throughput and latency on a 3-voter cluster by
    /// zkop (agents, shipper, canary) next to the same servers by hand, at
    /// each --reads-percent.
    #[arg(long, conflicts_with_all = ["aws_calls", "tls", "standby", "clusters", "upgrade", "canary", "backup_load"])]
    load: bool,
    /// The read/write mixes --load runs: reads in every hundred requests.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "90,50",
        requires = "load"
    )]
    reads_percent: Vec<u32>,
    /// How long --load measures each mix, seconds.
    #[arg(long, default_value_t = 60, requires = "load")]
    mix_seconds: u64,
    /// The client transports --load runs over, one after the other.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "plaintext,tls",
        requires = "load"
    )]
    transports: Vec<Transport>,
}

/// A client transport of `--load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Transport {
    /// The plaintext client port.
    Plaintext,
    /// The secure client port, with a client certificate from zkop.
    Tls,
}

impl Focused {
    /// Runs the one asked for (`--upgrade` aside); false when none was.
    async fn run(&self, opts: &bench::BenchOptions, json: bool, runs: u32) -> anyhow::Result<bool> {
        let (text, _) = bench::spec()?;
        let seconds = |s: u64| std::time::Duration::from_secs(s.max(1));
        if self.load {
            if let Some(bad) = self.reads_percent.iter().find(|p| **p > 100) {
                return Err(input::InputError::Usage(format!(
                    "--reads-percent {bad}: a share of every hundred requests, 0 to 100"
                ))
                .into());
            }
            let each = seconds(self.mix_seconds);
            let tls: Vec<bool> = self
                .transports
                .iter()
                .map(|t| *t == Transport::Tls)
                .collect();
            let rows = bench::load::run(opts, &text, &self.reads_percent, each, &tls, runs).await?;
            print_out(json, &rows, |r| bench::load::render(r))?;
        } else if self.backup_load {
            let each = seconds(self.load_seconds);
            let rows = bench::backup_load::run(opts, &text, &self.writes_per_second, each).await?;
            print_out(json, &rows, |r| bench::backup_load::render(r))?;
        } else if self.canary {
            let cost = bench::canary::run(opts, &text).await?;
            print_out(json, &cost, bench::canary::render)?;
        } else if let Some(n) = self.clusters {
            let row = bench::clusters::run(opts, &text, n).await?;
            print_out(json, &row, bench::clusters::render)?;
        } else if self.standby {
            let rows = bench::standby::run(opts, &text).await?;
            print_out(json, &rows, |r| bench::standby::render(r))?;
        } else if self.tls {
            let rows = bench::tls::run(opts, &text, self.tls_writes).await?;
            print_out(json, &rows, |r| bench::tls::render(r))?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }
}

/// Prints `value` as JSON, or as the table `render` makes.
fn print_out<T: serde::Serialize>(
    json: bool,
    value: &T,
    render: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", render(value));
    }
    Ok(())
}

/// `zkop bench`: the AWS call rates of a running controller, one of the
/// focused benches, or every operation timed against the same done by hand.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        json,
        quick,
        runs,
        explain,
        aws_calls,
        window_seconds,
        focused,
        controller,
        network,
        hand_network,
        agent_bin,
        java,
    } = args;
    if aws_calls {
        // Every cluster under a directory holding several, unless --cluster.
        let apis = controller
            .resolve_all()?
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let window = std::time::Duration::from_secs(window_seconds.max(1));
        let rates = bench::aws_call_rates(&apis, window).await?;
        print_out(json, &rates, |r| bench::render_rates(r, window))?;
        return Ok(());
    }
    if let Some(missing) = java.missing_zookeeper() {
        return Err(input::InputError::Usage(missing).into());
    }
    for n in [&network, &hand_network] {
        local::parse_network(n)
            .map_err(|e| input::InputError::Usage(format!("--network {n}: {e}")))?;
    }
    let opts = bench::BenchOptions {
        zkop_network: network,
        hand_network,
        agent_bin: Some(input::agent_binary(agent_bin)?),
        classpath: java.classpath(None).map_err(input::InputError::Usage)?,
        java: java.java.clone(),
        quick,
    };
    if focused.upgrade {
        let on = |version: &str| {
            java.classpath(Some(version))
                .map(|classpath| bench::BenchOptions {
                    classpath,
                    ..opts.clone()
                })
                .map_err(input::InputError::Usage)
        };
        let (from, to) = (on(bench::upgrade::FROM)?, on(bench::upgrade::TO)?);
        let (text, _) = bench::spec()?;
        let rows = bench::upgrade::run(&from, &to, &text).await?;
        print_out(json, &rows, |r| bench::upgrade::render(r))?;
        return Ok(());
    }
    if focused.run(&opts, json, runs).await? {
        return Ok(());
    }
    let mut all = Vec::new();
    for run in 1..=runs {
        if runs > 1 {
            eprintln!("zkop bench: run {run} of {runs}");
        }
        all.push(bench::run(&opts).await?);
    }
    let figures = match runs {
        1 => all.into_iter().flatten().collect(),
        _ => bench::explain::medians(all),
    };
    print_out(json, &figures, |r| bench::render(r, explain))?;
    Ok(())
}
