//! Four-letter-word probes of the local ZooKeeper server.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::endpoint::Endpoint;
use zkop_spec::backup::manifest::TreeDigest;
use zkop_spec::fourlw::parse_hash;
use zkop_spec::wire::ProbeReport;
use zkop_spec::zk::{parse_conf, parse_srvr};

const TIMEOUT: Duration = Duration::from_secs(2);

/// Sends one four-letter word and returns the whole reply.
pub async fn four_letter_word(
    endpoint: impl Into<Endpoint>,
    word: &str,
) -> std::io::Result<String> {
    let endpoint: Endpoint = endpoint.into();
    let run = async {
        let tcp = TcpStream::connect(&endpoint.host_port).await?;
        let mut reply = Vec::new();
        match &endpoint.tls {
            None => exchange(tcp, word, &mut reply).await?,
            Some(tls) => {
                let stream = endpoint.tls_stream(tcp, tls).await?;
                // ZooKeeper closes after the reply without a TLS close_notify:
                // rustls calls that an unexpected EOF, and the reply is whole.
                match exchange(stream, word, &mut reply).await {
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
                    other => other?,
                }
            }
        }
        Ok(String::from_utf8_lossy(&reply).into_owned())
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

async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    word: &str,
    reply: &mut Vec<u8>,
) -> std::io::Result<()> {
    stream.write_all(word.as_bytes()).await?;
    stream.flush().await?;
    stream.read_to_end(reply).await?;
    Ok(())
}

/// Probes with `srvr` and `conf`; `Err` when the server does not answer at all.
pub async fn probe(endpoint: impl Into<Endpoint>) -> Result<ProbeReport, String> {
    probe_after(endpoint, None).await
}

/// Probes again: `srvr`, and `conf` only when `srvr` shows a change since
/// `last` (a new config is a transaction: it moves the zxid). Each word is a
/// connection of its own, with TLS a handshake the server pays for.
pub async fn probe_after(
    endpoint: impl Into<Endpoint>,
    last: Option<&ProbeReport>,
) -> Result<ProbeReport, String> {
    let endpoint: Endpoint = endpoint.into();
    let srvr = four_letter_word(&endpoint, "srvr")
        .await
        .map_err(|e| format!("srvr to {endpoint}: {e}"))?;
    let srvr = parse_srvr(&srvr).map_err(|e| format!("srvr reply: {e}"))?;
    let unchanged = last.filter(|l| {
        l.config.is_some()
            && srvr.zxid.is_some()
            && (l.serving, l.mode, l.zxid, l.version.as_deref())
                == (srvr.serving, srvr.mode, srvr.zxid, srvr.version.as_deref())
    });
    let config = match unchanged {
        Some(l) => l.config.clone(),
        // `conf` answers only while serving; a joiner's config is still useful then.
        None => match four_letter_word(&endpoint, "conf").await {
            Ok(text) => parse_conf(&text)
                .ok()
                .map(|c| c.config)
                .filter(|c| !c.servers.is_empty()),
            Err(_) => None,
        },
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
pub async fn tree_digests(endpoint: impl Into<Endpoint>) -> Result<Vec<TreeDigest>, String> {
    let endpoint: Endpoint = endpoint.into();
    let text = four_letter_word(&endpoint, "hash")
        .await
        .map_err(|e| format!("hash to {endpoint}: {e}"))?;
    parse_hash(&text).map_err(|e| format!("hash reply: {e}"))
}
