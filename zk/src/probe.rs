//! Four-letter-word probes of the local ZooKeeper server.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use zkop_spec::backup::manifest::TreeDigest;
use zkop_spec::fourlw::parse_hash;
use zkop_spec::wire::ProbeReport;
use zkop_spec::zk::{parse_conf, parse_srvr};

const TIMEOUT: Duration = Duration::from_secs(2);

/// Sends one four-letter word and returns the whole reply.
pub async fn four_letter_word(endpoint: &str, word: &str) -> std::io::Result<String> {
    let run = async {
        let mut stream = TcpStream::connect(endpoint).await?;
        stream.write_all(word.as_bytes()).await?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await?;
        Ok(reply)
    };
    tokio::time::timeout(TIMEOUT, run)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no reply",
            ))
        })
}

/// Probes with `srvr` and `conf`; `Err` when the server does not answer at all.
pub async fn probe(endpoint: &str) -> Result<ProbeReport, String> {
    let srvr = four_letter_word(endpoint, "srvr")
        .await
        .map_err(|e| format!("srvr to {endpoint}: {e}"))?;
    let srvr = parse_srvr(&srvr).map_err(|e| format!("srvr reply: {e}"))?;
    // `conf` answers only while serving; a joiner's config is still useful then.
    let config = match four_letter_word(endpoint, "conf").await {
        Ok(text) => parse_conf(&text)
            .ok()
            .map(|c| c.config)
            .filter(|c| !c.servers.is_empty()),
        Err(_) => None,
    };
    Ok(ProbeReport {
        serving: srvr.serving,
        mode: srvr.mode,
        zxid: srvr.zxid,
        config,
        version: srvr.version,
    })
}

/// The tree digests the server published (`hash`), oldest first.
pub async fn tree_digests(endpoint: &str) -> Result<Vec<TreeDigest>, String> {
    let text = four_letter_word(endpoint, "hash")
        .await
        .map_err(|e| format!("hash to {endpoint}: {e}"))?;
    parse_hash(&text).map_err(|e| format!("hash reply: {e}"))
}
