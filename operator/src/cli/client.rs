//! `zkop status`: asks a controller's API and prints the cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use zkop_spec::backup::format_time;
use zkop_spec::wire::StatusReply;

/// `api.json` in a state directory: where the controller listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiFile {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The bearer token's file.
    pub token_file: PathBuf,
    /// With TLS on: the cluster CA's certificate, which the API's is checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// Why status could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `api.json` does not parse.
    #[error("{path}: not an api.json: {reason}")]
    BadApiFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The controller did not answer.
    #[error("controller at {url} unreachable: {reason} (is `zkop local up` running?)")]
    Unreachable {
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The controller answered with an error.
    #[error("controller at {url} answered {status}: {body}")]
    Refused {
        /// Its URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The body.
        body: String,
    },
}

/// Reads `DIR/api.json`.
pub fn read_api_file(state_dir: &Path) -> Result<ApiFile, StatusError> {
    let path = state_dir.join("api.json");
    let text = std::fs::read_to_string(&path).map_err(|source| StatusError::Read {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| StatusError::BadApiFile {
        path,
        reason: e.to_string(),
    })
}

/// Sends one API request with the token; the JSON body of a 2xx answer.
async fn call<T: serde::de::DeserializeOwned>(
    api: &ApiFile,
    method: reqwest::Method,
    path: &str,
) -> Result<T, StatusError> {
    let body = send(api, method, path, None).await?;
    parse_answer(&api.url, path, &body)
}

fn parse_answer<T: serde::de::DeserializeOwned>(
    url: &str,
    path: &str,
    body: &str,
) -> Result<T, StatusError> {
    serde_json::from_str(body).map_err(|e| StatusError::Unreachable {
        url: url.to_string(),
        reason: format!("the answer to {path} is not the JSON expected: {e}"),
    })
}

/// The controller's Prometheus text (`GET /metrics`).
pub async fn metrics(api: &ApiFile) -> Result<String, StatusError> {
    send(api, reqwest::Method::GET, "/metrics", None).await
}

/// POSTs `body` as JSON; the JSON answer of a 2xx.
pub async fn post_json<T: serde::de::DeserializeOwned>(
    api: &ApiFile,
    path: &str,
    body: &impl Serialize,
) -> Result<T, StatusError> {
    let body = serde_json::to_value(body).map_err(|e| StatusError::Unreachable {
        url: api.url.clone(),
        reason: e.to_string(),
    })?;
    let answer = send(api, reqwest::Method::POST, path, Some(body)).await?;
    parse_answer(&api.url, path, &answer)
}

/// An HTTP client for `api`: with its CA file, HTTPS trusting that CA only.
pub fn http_client(api: &ApiFile) -> Result<reqwest::Client, StatusError> {
    zkop_zk::endpoint::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy();
    if let Some(ca_file) = &api.ca_file {
        let pem = std::fs::read_to_string(ca_file).map_err(|source| StatusError::Read {
            path: ca_file.clone(),
            source,
        })?;
        let tls = zkop_zk::endpoint::client_config(&pem, None).map_err(|reason| {
            StatusError::BadApiFile {
                path: ca_file.clone(),
                reason,
            }
        })?;
        builder = builder.use_preconfigured_tls(tls);
    }
    builder.build().map_err(|e| StatusError::Unreachable {
        url: api.url.clone(),
        reason: e.to_string(),
    })
}

/// Sends one API request with the token; the body of a 2xx answer.
async fn send(
    api: &ApiFile,
    method: reqwest::Method,
    path: &str,
    json: Option<serde_json::Value>,
) -> Result<String, StatusError> {
    let (url, token_file) = (api.url.as_str(), api.token_file.as_path());
    let token = std::fs::read_to_string(token_file).map_err(|source| StatusError::Read {
        path: token_file.to_path_buf(),
        source,
    })?;
    let unreachable = |reason: String| StatusError::Unreachable {
        url: url.to_string(),
        reason,
    };
    let client = http_client(api)?;
    let mut req = client
        .request(method, format!("{}{path}", url.trim_end_matches('/')))
        .bearer_auth(token.trim());
    if let Some(json) = json {
        req = req.json(&json);
    }
    let resp = req.send().await.map_err(|e| unreachable(e.to_string()))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let body = resp.text().await.unwrap_or_default();
        return Err(StatusError::Refused {
            url: url.to_string(),
            status,
            body,
        });
    }
    resp.text().await.map_err(|e| unreachable(e.to_string()))
}

/// Fetches `/v1/status`.
pub async fn fetch(api: &ApiFile) -> Result<StatusReply, StatusError> {
    call(api, reqwest::Method::GET, "/v1/status").await
}

/// Asks for a rolling restart of every member (`POST /v1/roll`); what the
/// controller answered.
pub async fn request_roll(api: &ApiFile) -> Result<String, StatusError> {
    let body: serde_json::Value = call(api, reqwest::Method::POST, "/v1/roll").await?;
    Ok(format!(
        "rolling restart requested: {}",
        body["accepted"].as_str().unwrap_or("accepted")
    ))
}

/// Asks for the member on `instance` to be replaced
/// (`POST /v1/replace/{instance}`); what the controller answered.
pub async fn request_replace(api: &ApiFile, instance: &str) -> Result<String, StatusError> {
    let path = format!("/v1/replace/{instance}");
    let body: serde_json::Value = call(api, reqwest::Method::POST, &path).await?;
    Ok(body["accepted"].as_str().unwrap_or("accepted").to_string())
}

/// The backup's lines under the members.
fn backup_line(b: &zkop_spec::wire::BackupStatus) -> String {
    let age = b
        .age_ms
        .map(|a| format!("{:.1}s", a as f64 / 1000.0))
        .unwrap_or_else(|| "unknown".into());
    let mut line = format!(
        "backup {}: shipper {}, newest {}, recovery point {age} (want <= {:.1}s){}\n",
        b.target,
        b.shipper
            .map(|s| format!("member {s}"))
            .unwrap_or_else(|| "none".into()),
        b.newest_zxid
            .map(|z| z.to_string())
            .unwrap_or_else(|| "-".into()),
        b.recovery_point_ms as f64 / 1000.0,
        if b.behind { ", BEHIND" } else { "" }
    );
    if let Some(e) = &b.error {
        line.push_str(&format!("backup problem: {e}\n"));
    }
    if let Some(d) = &b.last_drill {
        let good = match b.last_good_drill_ms {
            Some(ms) if !d.ok => format!(" (last passed at {})", format_time(ms)),
            None if !d.ok => " (none passed yet)".into(),
            _ => String::new(),
        };
        line.push_str(&format!(
            "restore drill at {}: {}{good}\n",
            format_time(d.at_ms),
            if d.ok { "passed" } else { "FAILED" },
        ));
    }
    line
}

/// What a controller that does not lead says above its (stale) view.
fn follows_line(s: &StatusReply) -> String {
    match s.follows.as_deref() {
        None => String::new(),
        Some(leader) => format!(
            "this controller does not lead the cluster (the leader: {}): what follows is as it last saw it\n",
            if leader.is_empty() { "unknown" } else { leader }
        ),
    }
}

/// The human-readable table.
pub fn render_table(s: &StatusReply) -> String {
    let mut out = format!(
        "cluster {}  phase {}  config version {}\n{}\n",
        s.cluster,
        s.phase,
        s.config_version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into()),
        s.reason
    );
    out.push_str(&follows_line(s));
    out.push_str(&format!(
        "connect string: {}\n",
        if s.connect_string.is_empty() {
            "(no member serves)"
        } else {
            &s.connect_string
        }
    ));
    if let Some(t) = s.tls {
        out.push_str(&format!("tls: {} ({})\n", t.as_ref(), t.describe()));
    }
    if let Some(f) = s.failure_tolerance {
        let zones = s
            .zone_failure_tolerance
            .map(|z| format!(", {z} zone(s)"))
            .unwrap_or_default();
        out.push_str(&format!(
            "failure tolerance: {f} voter(s){zones} can be lost with the quorum kept\n"
        ));
    }
    if let Some(e) = &s.last_error {
        out.push_str(&format!("last error: {e}\n"));
    }
    out.push_str(&format!(
        "{:<4} {:<20} {:<16} {:<7} {:<9} {:<14} {:<5} {:<7} {}\n",
        "ID", "INSTANCE", "ADDRESS", "CLIENT", "ROLE", "ZXID", "LAG", "HEALTHY", "VERSION"
    ));
    for m in &s.members {
        out.push_str(&format!(
            "{:<4} {:<20} {:<16} {:<7} {:<9} {:<14} {:<5} {:<7} {}\n",
            m.id.to_string(),
            m.instance,
            m.address,
            m.client_port,
            m.role.as_str(),
            m.zxid.map(|z| z.to_string()).unwrap_or_else(|| "-".into()),
            m.zxid_lag
                .map(|l| l.to_string())
                .unwrap_or_else(|| "-".into()),
            if m.healthy { "yes" } else { "no" },
            m.zookeeper_version.as_deref().unwrap_or("-")
        ));
    }
    if let Some(b) = &s.backup {
        out.push_str(&backup_line(b));
    }
    if let Some((at, m)) = s
        .members
        .iter()
        .filter_map(|m| Some((m.certificate_not_after_ms?, m.id)))
        .min()
    {
        out.push_str(&format!(
            "certificates: member {m}'s expires first, at {} (renewed when a third of its lifetime is left)\n",
            format_time(at)
        ));
    }
    out.push_str(&member_warnings(s));
    if let Some(c) = &s.canary {
        out.push_str(&canary_lines(c));
    }
    out
}

/// The consistency canary's lines under the members.
fn canary_lines(c: &zkop_spec::canary::CanaryStatus) -> String {
    let found: Vec<String> = c
        .violations
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let mut out = format!(
        "canary: every {}s, {} rounds, counter {}, last good round {}, violations: {}\n",
        c.every_s,
        c.rounds,
        c.counter,
        c.last_good_round_ms
            .map_or_else(|| "never".into(), |ms| format!("at {}", format_time(ms))),
        if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        }
    );
    if let Some(v) = &c.last_violation {
        out.push_str(&format!("canary: last violation: {v}\n"));
    }
    if let Some(e) = &c.write_error {
        out.push_str(&format!("canary cannot write: {e}\n"));
    }
    for r in &c.members {
        if let Some(e) = &r.error {
            out.push_str(&format!("canary: member {}: {e}\n", r.id));
        } else if r.read_only {
            out.push_str(&format!(
                "canary: member {} answers read-only (cut off from the quorum), counter {}\n",
                r.id,
                r.counter.unwrap_or(0)
            ));
        }
    }
    out
}

/// A line per member on a release with a known issue, and per member with
/// a problem (a full disk, how its server last exited).
fn member_warnings(s: &StatusReply) -> String {
    let mut out = String::new();
    for m in s.members.iter().filter(|m| m.known_issue.is_some()) {
        out.push_str(&format!(
            "warning: member {} runs ZooKeeper {}: {}\n",
            m.id,
            m.zookeeper_version.as_deref().unwrap_or("?"),
            m.known_issue.as_deref().unwrap_or_default()
        ));
    }
    for m in &s.members {
        if let Some(p) = &m.problem {
            out.push_str(&format!("member {}: {p}\n", m.id));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkop_spec::wire::{MemberStatus, StatusRole};
    use zkop_spec::zk::ServerId;

    #[test]
    fn the_table_lines_up_its_columns() {
        let member = |id: u64, role: StatusRole| MemberStatus {
            id: ServerId(id),
            instance: format!("i-{id:04}").into(),
            address: format!("127.0.10.{id}"),
            client_port: 2181,
            role,
            config_role: None,
            zxid: None,
            zxid_lag: None,
            healthy: true,
            zone: None,
            launch_template: None,
            zookeeper_version: Some("3.8.4".into()),
            known_issue: None,
            installed_releases: None,
            certificate_not_after_ms: None,
            serving_for_s: None,
            data_free_bytes: None,
            problem: None,
        };
        let s = StatusReply {
            cluster: "c".into(),
            connect_string: "127.0.0.1:2181,127.0.0.12:2181".into(),
            phase: "Running".into(),
            reason: "ok".into(),
            config_version: None,
            members: vec![
                member(1, StatusRole::Leader),
                member(12, StatusRole::Follower),
            ],
            events: vec![],
            last_error: None,
            backup: None,
            tls: None,
            failure_tolerance: Some(1),
            zone_failure_tolerance: None,
            zookeeper_version: None,
            follows: None,
            canary: None,
        };
        // Only members serving in the config are in a connect string.
        let all = [
            member(3, StatusRole::Observer),
            member(1, StatusRole::Leader),
            member(2, StatusRole::Follower),
            member(4, StatusRole::Joining),
            member(5, StatusRole::Leaving),
            member(6, StatusRole::Down),
        ];
        assert_eq!(
            crate::controller::connect_string(&all),
            "127.0.10.1:2181,127.0.10.2:2181,127.0.10.3:2181"
        );
        let table = render_table(&s);
        assert_eq!(
            table.lines().nth(2),
            Some("connect string: 127.0.0.1:2181,127.0.0.12:2181"),
            "{table}"
        );
        assert_eq!(
            table.lines().nth(3),
            Some("failure tolerance: 1 voter(s) can be lost with the quorum kept"),
            "{table}"
        );
        let rows: Vec<&str> = table.lines().skip(4).collect();
        let column = |row: &str| row.find("i-").unwrap();
        assert_eq!(rows.len(), 3, "{table}");
        assert!(
            rows.iter().skip(1).all(|r| column(r) == column(rows[1])),
            "{table}"
        );
        assert_eq!(rows[0].find("INSTANCE"), Some(column(rows[1])), "{table}");
    }
}
