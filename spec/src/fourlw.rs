//! ZooKeeper's four-letter-word replies zkop reads: `srvr`, `mntr` and
//! `conf`. Pure; no I/O.

use std::collections::BTreeMap;

use crate::zk::{DynamicConfig, ParseError, ServerId, ServerMode, Zxid};

/// What `srvr` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvrReply {
    /// `Mode:` when serving.
    pub mode: Option<ServerMode>,
    /// `Zxid:` when serving.
    pub zxid: Option<Zxid>,
    /// False when the server says it is not currently serving requests.
    pub serving: bool,
    /// `Zookeeper version:` (e.g. `3.8.0`), when serving.
    pub version: Option<String>,
}

/// Parses a `srvr` reply.
pub fn parse_srvr(text: &str) -> Result<SrvrReply, ParseError> {
    if text.contains("not currently serving requests") {
        return Ok(SrvrReply {
            mode: None,
            zxid: None,
            serving: false,
            version: None,
        });
    }
    let mut reply = SrvrReply {
        mode: None,
        zxid: None,
        serving: true,
        version: None,
    };
    for (i, raw) in text.lines().enumerate() {
        let err = |reason: String| ParseError {
            line: i + 1,
            text: raw.to_string(),
            reason,
        };
        if let Some(m) = raw.strip_prefix("Mode:") {
            reply.mode = Some(m.parse().map_err(err)?);
        } else if let Some(z) = raw.strip_prefix("Zxid:") {
            reply.zxid = Some(z.parse().map_err(err)?);
        } else if let Some(v) = raw.strip_prefix("Zookeeper version:") {
            // `3.8.0-5a02a05e..., built on ...`: the release.
            let release = v.trim().split([',', '-', ' ']).next().unwrap_or_default();
            reply.version = (!release.is_empty()).then(|| release.to_string());
        }
    }
    if reply.mode.is_none() {
        return Err(ParseError {
            line: 0,
            text: text.lines().next().unwrap_or_default().to_string(),
            reason: "no `Mode:` line in srvr reply".into(),
        });
    }
    Ok(reply)
}

/// Parses a `mntr` reply into its tab-separated keys and values.
pub fn parse_mntr(text: &str) -> Result<BTreeMap<String, String>, ParseError> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let (k, v) = raw.split_once('\t').ok_or_else(|| ParseError {
            line: i + 1,
            text: raw.to_string(),
            reason: "expected `key<TAB>value`".into(),
        })?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// What `conf` says that zkop uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfReply {
    /// `serverId=`.
    pub server_id: Option<ServerId>,
    /// The membership block and its `version=`.
    pub config: DynamicConfig,
    /// Every `key=value` line before the membership block.
    pub properties: BTreeMap<String, String>,
}

/// Parses a `conf` reply.
pub fn parse_conf(text: &str) -> Result<ConfReply, ParseError> {
    let mut properties = BTreeMap::new();
    let mut membership = String::new();
    let mut in_membership = false;
    for (i, raw) in text.lines().enumerate() {
        if in_membership {
            // Keep line numbers meaningful for errors in the block.
            membership.push_str(raw);
            membership.push('\n');
            continue;
        }
        if raw.trim_start().starts_with("membership:") {
            in_membership = true;
            membership.push_str(&"\n".repeat(i + 1));
            continue;
        }
        if let Some((k, v)) = raw.split_once('=') {
            properties.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let server_id = match properties.get("serverId") {
        Some(v) => Some(ServerId(v.parse().map_err(|_| ParseError {
            line: 0,
            text: v.clone(),
            reason: "serverId is not a number".into(),
        })?)),
        None => None,
    };
    Ok(ConfReply {
        server_id,
        config: DynamicConfig::parse(&membership)?,
        properties,
    })
}

/// Parses a `hash` reply: the tree digests ZooKeeper published, one
/// `<hex zxid>: <decimal digest>` line each (every 128 zxids), oldest first.
pub fn parse_hash(text: &str) -> Result<Vec<crate::backup::manifest::TreeDigest>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let err = |reason: &str| ParseError {
            line: i + 1,
            text: raw.to_string(),
            reason: reason.into(),
        };
        let (zxid, digest) = raw
            .split_once(':')
            .ok_or_else(|| err("expected `<hex zxid>: <digest>`"))?;
        let zxid =
            u64::from_str_radix(zxid.trim(), 16).map_err(|_| err("the zxid is not hexadecimal"))?;
        let digest = digest.trim();
        if digest.parse::<u64>().is_err() {
            return Err(err("the digest is not a number"));
        }
        out.push(crate::backup::manifest::TreeDigest {
            zxid: Zxid::from_u64(zxid),
            digest: digest.to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_reply_lists_each_digest_at_its_zxid() {
        // As ZooKeeper 3.8.0 answered after 300 creates.
        let d = parse_hash("80: 269386918473\n100: 530448316196\n").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].zxid, Zxid::from_u64(0x100));
        assert_eq!(d[1].digest, "530448316196");
        assert!(parse_hash("").unwrap().is_empty());
        let e = parse_hash("80: 1\nzz: 2\n").unwrap_err();
        assert_eq!(
            (e.line, e.reason.as_str()),
            (2, "the zxid is not hexadecimal")
        );
    }
}
