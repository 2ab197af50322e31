//! Four-letter-word probes of the local ZooKeeper server.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::endpoint::Endpoint;
use zkop_spec::backup::manifest::TreeDigest;
use zkop_spec::fourlw::{SrvrReply, parse_hash};
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
    Ok(probe_after(endpoint, None, false).await?.0)
}

/// Probes again: `srvr`, and `conf` only when `config_holds` says `last`'s
/// config may no longer hold (a new config is a transaction: it moves the zxid).
/// Each word is a connection of its own, with TLS a handshake the server
/// pays for on the threads that serve its clients. The report, and whether
/// `conf` was asked.
pub async fn probe_after(
    endpoint: impl Into<Endpoint>,
    last: Option<&ProbeReport>,
    zxid_may_move: bool,
) -> Result<(ProbeReport, bool), String> {
    let endpoint: Endpoint = endpoint.into();
    let srvr = four_letter_word(&endpoint, "srvr")
        .await
        .map_err(|e| format!("srvr to {endpoint}: {e}"))?;
    let srvr = parse_srvr(&srvr).map_err(|e| format!("srvr reply: {e}"))?;
    let kept = last.filter(|l| config_holds(l, &srvr, zxid_may_move));
    let (config, asked) = match kept {
        Some(l) => (l.config.clone(), false),
        // `conf` answers only while serving; a joiner's config is still useful then.
        None => match four_letter_word(&endpoint, "conf").await {
            Ok(text) => (
                parse_conf(&text)
                    .ok()
                    .map(|c| c.config)
                    .filter(|c| !c.servers.is_empty()),
                true,
            ),
            Err(_) => (None, true),
        },
    };
    let report = ProbeReport {
        serving: srvr.serving,
        mode: srvr.mode,
        zxid: srvr.zxid,
        config,
        version: srvr.version,
    };
    Ok((report, asked))
}

/// Whether `last`'s config still holds after `srvr`: the server shows the
/// same state, mode and release, and the same zxid. With `zxid_may_move`
/// (a steady ensemble whose config was read lately) a zxid that moved
/// within the same epoch is allowed too: under a write load it moves at
/// every probe, and `conf` each time would double the handshakes.
fn config_holds(last: &ProbeReport, srvr: &SrvrReply, zxid_may_move: bool) -> bool {
    let (Some(was), Some(now)) = (last.zxid, srvr.zxid) else {
        return false;
    };
    let zxid_ok = was == now || (zxid_may_move && was.epoch == now.epoch);
    last.config.is_some()
        && zxid_ok
        && (last.serving, last.mode, last.version.as_deref())
            == (srvr.serving, srvr.mode, srvr.version.as_deref())
}

/// The tree digests the server published (`hash`), oldest first.
pub async fn tree_digests(endpoint: impl Into<Endpoint>) -> Result<Vec<TreeDigest>, String> {
    let endpoint: Endpoint = endpoint.into();
    let text = four_letter_word(&endpoint, "hash")
        .await
        .map_err(|e| format!("hash to {endpoint}: {e}"))?;
    parse_hash(&text).map_err(|e| format!("hash reply: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkop_spec::zk::{DynamicConfig, ServerMode, Zxid};

    fn last(zxid: u64) -> ProbeReport {
        ProbeReport {
            serving: true,
            mode: Some(ServerMode::Follower),
            zxid: Some(Zxid::from_u64(zxid)),
            config: Some(DynamicConfig::default()),
            version: Some("3.9.5".into()),
        }
    }

    fn srvr(zxid: u64, mode: ServerMode) -> SrvrReply {
        SrvrReply {
            mode: Some(mode),
            zxid: Some(Zxid::from_u64(zxid)),
            serving: true,
            version: Some("3.9.5".into()),
        }
    }

    #[test]
    fn a_write_load_keeps_the_config_of_a_steady_ensemble_but_an_election_or_a_close_look_does_not()
    {
        let follower = ServerMode::Follower;
        let (was, later, next_epoch) = (0x5_0000_0010, 0x5_0000_0400, 0x6_0000_0000);
        // Nothing moved: kept, steady or not.
        assert!(config_holds(&last(was), &srvr(was, follower), false));
        // Writes moved the zxid: kept only in a steady ensemble.
        assert!(config_holds(&last(was), &srvr(later, follower), true));
        assert!(!config_holds(&last(was), &srvr(later, follower), false));
        // A new epoch (an election, a recovery) or a new mode: read again.
        assert!(!config_holds(&last(was), &srvr(next_epoch, follower), true));
        assert!(!config_holds(
            &last(was),
            &srvr(was, ServerMode::Leader),
            true
        ));
        // No config yet: read it.
        let mut none = last(was);
        none.config = None;
        assert!(!config_holds(&none, &srvr(was, follower), true));
    }
}
