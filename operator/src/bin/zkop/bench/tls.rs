//! `zkop bench --tls`: write latency over TLS next to plaintext, in one run:
//! two three-voter clusters run by zkop, one with `spec.tls`, each written
//! to by one client, one create at a time, through one member.

use std::time::{Duration, Instant};

use serde::Serialize;
use zkop_zk::{ClientTls, Endpoint};
use zookeeper_client::{Acls, CreateMode};

use super::operated::Session;
use super::{BenchError, BenchOptions, io};

/// Write latencies of one transport.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    /// `plaintext` or `tls`.
    pub transport: String,
    /// Creates timed.
    pub writes: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Creates per second, one at a time.
    pub per_second: f64,
}

/// Times `writes` creates on each cluster.
pub async fn run(
    opts: &BenchOptions,
    spec_text: &str,
    writes: usize,
) -> Result<Vec<Latency>, BenchError> {
    let work = tempfile::Builder::new()
        .prefix("zkop-bench-tls-")
        .tempdir()
        .map_err(io("creating a work directory"))?;
    let mut out = Vec::new();
    for tls in [false, true] {
        let text = if tls {
            format!("{}\n  tls:\n    enabled: true\n", spec_text.trim_end())
        } else {
            spec_text.to_string()
        };
        let dir = work.path().join(if tls { "tls" } else { "plaintext" });
        let (session, _) = Session::start(opts, &text, 3, &dir).await?;
        let result = measure(&session, tls, writes, &dir).await;
        session.stop().await;
        out.push(result?);
    }
    Ok(out)
}

async fn measure(
    session: &Session,
    tls: bool,
    writes: usize,
    dir: &std::path::Path,
) -> Result<Latency, BenchError> {
    let status = zkop::cli::client::fetch(session.api()).await?;
    let first = status
        .connect_string
        .split(',')
        .next()
        .unwrap_or_default()
        .to_string();
    let client_tls = match tls {
        true => Some(client_identity(session, dir).await?),
        false => None,
    };
    let endpoint = Endpoint {
        host_port: first,
        tls: client_tls,
    };
    let client = endpoint
        .session(Duration::from_secs(10))
        .await
        .map_err(BenchError::ZooKeeper)?;
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let mut times = Vec::with_capacity(writes);
    let all = Instant::now();
    for i in 0..writes {
        let started = Instant::now();
        client
            .create(&format!("/bench-{i}"), b"x", &options)
            .await
            .map_err(|e| BenchError::ZooKeeper(format!("create: {e}")))?;
        times.push(started.elapsed());
    }
    let total = all.elapsed();
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(Latency {
        transport: if tls { "tls" } else { "plaintext" }.into(),
        writes,
        p50_ms: (at(0.5) * 100.0).round() / 100.0,
        p99_ms: (at(0.99) * 100.0).round() / 100.0,
        per_second: (writes as f64 / total.as_secs_f64()).round(),
    })
}

/// A client certificate from the cluster's CA (`zkop client-cert`), kept
/// under `dir/client`, as a client identity.
pub(super) async fn client_identity(
    session: &Session,
    dir: &std::path::Path,
) -> Result<ClientTls, BenchError> {
    let certs = dir.join("client");
    zkop::cli::client_cert::issue(session.api(), "bench", &certs)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let read = |f: &str| std::fs::read_to_string(certs.join(f)).map_err(io(format!("reading {f}")));
    ClientTls::from_pem(&read("ca.pem")?, &read("cert.pem")?, &read("key.pem")?)
        .map_err(BenchError::Setup)
}

/// The two rows as a table.
pub fn render(rows: &[Latency]) -> String {
    let mut out = format!(
        "{:<10} {:>7} {:>8} {:>8} {:>8}\n",
        "transport", "writes", "p50 ms", "p99 ms", "per s"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<10} {:>7} {:>8.2} {:>8.2} {:>8.0}\n",
            r.transport, r.writes, r.p50_ms, r.p99_ms, r.per_second
        ));
    }
    out.push_str("one client, one create at a time, through one member of a 3-voter cluster run by zkop; TLS: quorum TLS and the secure client port with a certificate from zkop client-cert. See docs/performance.md.\n");
    out
}
