//! The cluster as `zkop status`, metrics and the page show it: a pure view of
//! the persisted state, the fresh reports and the last plan.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;
use zkop_spec::backup::BackupPolicy;
use zkop_spec::tls_stage::TlsStage;
use zkop_spec::wire::{
    AgentReport, BackupStatus, DATA_DISK_FULL_BELOW_BYTES, DiskSpace, Event, MemberStatus,
    StatusReply, StatusRole,
};
use zkop_spec::zk::{DynamicConfig, MemberRole, ServerMode};

use super::observe::ReportCache;
use crate::model::{Instance, MemberRecord, Persisted};
use crate::plan::Plan;

/// Reports older than this show a member as down.
pub const STATUS_FRESH: Duration = Duration::from_secs(10);

/// What the status view is computed from.
pub struct StatusInput<'a> {
    /// The cluster's name.
    pub cluster: &'a str,
    /// The persisted state.
    pub persisted: &'a Persisted,
    /// The agents' reports.
    pub reports: &'a ReportCache,
    /// The fleet's instances as last observed.
    pub instances: &'a [Instance],
    /// The last plan, if a pass ran.
    pub plan: Option<&'a Plan>,
    /// Recent events, oldest first.
    pub events: Vec<Event>,
    /// The last reconcile error.
    pub last_error: Option<String>,
    /// Now, on the controller's clock.
    pub now: Instant,
    /// `spec.backup`, if any.
    pub backup: Option<&'a BackupPolicy>,
    /// Now, wall time (ms since the Unix epoch), to age the backup by.
    pub wall_ms: u64,
    /// How far TLS is on in the servers.
    pub tls: TlsStage,
    /// The port clients connect to (the secure one once it is open).
    pub clients_port: u16,
}

/// Backups: the shipper's report against the spec's recovery point.
fn backup_view(input: &StatusInput<'_>) -> Option<BackupStatus> {
    let policy = input.backup?;
    let shipper = input.persisted.shipper;
    let report = shipper
        .and_then(|id| input.persisted.members.get(&id))
        .and_then(|m| input.reports.fresh(&m.instance, STATUS_FRESH, input.now))
        .and_then(|r| r.backup.clone())
        .unwrap_or_default();
    let recovery_point_ms = u64::try_from(policy.recovery_point.as_millis()).unwrap_or(u64::MAX);
    // The lag at the last shipment, while shipments keep coming; once they
    // stop, the time since the last one. (The time since it last caught up
    // would call an idle cluster behind between two shipments.)
    let age_ms = report.tick_ms.and_then(|t| {
        let since = input.wall_ms.saturating_sub(t);
        if since > recovery_point_ms {
            Some(since)
        } else {
            report.lag_ms
        }
    });
    Some(BackupStatus {
        target: policy.target.to_string(),
        shipper,
        point: report.point,
        newest_zxid: report.newest_zxid,
        newest_time_ms: report.newest_time_ms,
        age_ms,
        recovery_point_ms,
        behind: age_ms.is_none_or(|a| a > recovery_point_ms),
        bytes_shipped: report.bytes_shipped,
        log_bytes_read: report.log_bytes_read,
        error: report.error,
        last_good_drill_ms: report.last_good_drill.map(|d| d.at_ms),
        last_drill: report.last_drill,
    })
}

/// A member's role as status shows it: leaving, down, joining (not in the
/// config yet), or its role in ZooKeeper.
pub fn status_role(
    m: &MemberRecord,
    config: Option<&DynamicConfig>,
    report: Option<&AgentReport>,
) -> StatusRole {
    let probe = report.and_then(|r| r.probe.as_ref());
    let config_role = m.role_in(config);
    if m.retiring {
        StatusRole::Leaving
    } else if !probe.is_some_and(|p| p.serving) {
        StatusRole::Down
    } else if config_role.is_none() {
        StatusRole::Joining
    } else {
        match probe.and_then(|p| p.mode) {
            Some(ServerMode::Leader) => StatusRole::Leader,
            Some(ServerMode::Observer) => StatusRole::Observer,
            _ if config_role == Some(MemberRole::Observer) => StatusRole::Observer,
            _ => StatusRole::Follower,
        }
    }
}

/// The members clients may connect to: serving in the committed config
/// (leaving ones aside: their instance goes next).
pub fn serving(members: &[MemberStatus]) -> impl Iterator<Item = &MemberStatus> {
    members.iter().filter(|m| {
        matches!(
            m.role,
            StatusRole::Leader | StatusRole::Follower | StatusRole::Observer
        )
    })
}

/// The connect string of `members`: those serving in the committed config
/// (leaving ones aside: their instance goes next), by server id.
pub fn connect_string(members: &[MemberStatus]) -> String {
    let mut serving: Vec<&MemberStatus> = serving(members).collect();
    serving.sort_by_key(|m| m.id);
    serving
        .iter()
        .map(|m| format!("{}:{}", m.address, m.client_port))
        .collect::<Vec<_>>()
        .join(",")
}

/// What keeps a member from serving, as its agent reports it: a full data
/// directory first (ZooKeeper cannot write its log or snapshots), else how
/// its server last ended while it does not run.
fn member_problem(r: &AgentReport) -> Option<String> {
    if let Some(d) = r.data_disk.filter(DiskSpace::full) {
        return Some(format!(
            "disk full: {} bytes free of {} in ZooKeeper's data directory (below {} MiB ZooKeeper cannot count on writing its transaction log and snapshots); free space or grow the volume, and its agent starts it again",
            d.free_bytes,
            d.total_bytes,
            DATA_DISK_FULL_BELOW_BYTES / (1024 * 1024)
        ));
    }
    if let Some(why) = r.process.data_refused.as_ref() {
        return Some(format!(
            "ZooKeeper refuses its data directory: {why}; zkop replaces the member (a new one syncs from the leader)"
        ));
    }
    // A stop the agent was told to make (a roll-out) is no problem.
    (!r.process.running)
        .then(|| r.process.last_exit.clone())
        .flatten()
        .filter(|e| !e.starts_with("stopped by the agent"))
}

/// The status reply.
pub fn status_view(input: StatusInput<'_>) -> StatusReply {
    let p = input.persisted;
    let config = p.config.as_ref();
    let mut members: Vec<MemberStatus> = p
        .members
        .values()
        .map(|m| {
            let report = input
                .reports
                .fresh(&m.instance, STATUS_FRESH, input.now)
                .filter(|r| r.server_id == Some(m.id));
            let probe = report.and_then(|r| r.probe.as_ref());
            let instance = input.instances.iter().find(|i| i.id == m.instance);
            let version = input.reports.version(&m.instance).map(str::to_string);
            MemberStatus {
                id: m.id,
                instance: m.instance.clone(),
                address: m.server.address.clone(),
                client_port: input.clients_port,
                role: status_role(m, config, report),
                config_role: m.role_in(config),
                zxid: probe.and_then(|p| p.zxid),
                zxid_lag: None,
                healthy: probe.is_some_and(|p| p.serving),
                zone: instance.and_then(|i| i.zone.clone()),
                launch_template: instance.and_then(|i| i.launch_template.clone()),
                zookeeper_version: version.clone(),
                certificate_not_after_ms: report.and_then(|r| {
                    match (
                        r.certificate_not_after_ms,
                        r.served_certificate_not_after_ms,
                    ) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    }
                }),
                serving_for_s: input
                    .reports
                    .serving_for(&m.instance, input.now)
                    .filter(|_| probe.is_some_and(|p| p.serving))
                    .map(|d| d.as_secs()),
                known_issue: version
                    .as_deref()
                    .and_then(zkop_spec::releases::known_data_loss),
                installed_releases: report.and_then(|r| r.installed_releases.clone()),
                data_free_bytes: report.and_then(|r| r.data_disk).map(|d| d.free_bytes),
                problem: report.and_then(member_problem),
            }
        })
        .collect();
    let leader_zxid = members
        .iter()
        .find(|m| m.role == StatusRole::Leader)
        .and_then(|m| m.zxid);
    for m in members.iter_mut().filter(|m| m.healthy) {
        m.zxid_lag = m.zxid.zip(leader_zxid).and_then(|(z, l)| z.lag_behind(l));
    }
    let (phase, reason) = input
        .plan
        .map(|p| (p.phase.as_str().to_string(), p.reason.clone()))
        .unwrap_or_else(|| ("Pending".into(), "starting".into()));
    let backup = backup_view(&input);
    let (failure_tolerance, zone_failure_tolerance) = tolerances(&members);
    StatusReply {
        cluster: input.cluster.to_string(),
        connect_string: connect_string(&members),
        phase,
        reason,
        config_version: config.and_then(|c| c.version),
        members,
        events: input.events,
        last_error: input.last_error,
        backup,
        tls: Some(input.tls).filter(|t| *t != TlsStage::Plaintext),
        failure_tolerance,
        zone_failure_tolerance,
        zookeeper_version: None,
        follows: None,
        canary: None,
    }
}

/// Voters that can stop serving, and whole zones that can be lost, with the
/// quorum kept; none without voters (or, for zones, with a voter's unknown).
fn tolerances(members: &[MemberStatus]) -> (Option<usize>, Option<usize>) {
    let voters: Vec<&MemberStatus> = members
        .iter()
        .filter(|m| m.config_role == Some(MemberRole::Participant))
        .collect();
    if voters.is_empty() {
        return (None, None);
    }
    let serving: Vec<&&MemberStatus> = voters
        .iter()
        .filter(|m| matches!(m.role, StatusRole::Leader | StatusRole::Follower))
        .collect();
    let failure = crate::plan::failure_tolerance(serving.len(), voters.len());
    let mut by_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &serving {
        let Some(zone) = m.zone.as_deref() else {
            return (Some(failure), None);
        };
        *by_zone.entry(zone).or_default() += 1;
    }
    let counts: Vec<usize> = by_zone.into_values().collect();
    let zones = crate::plan::zone_failure_tolerance(&counts, voters.len());
    (Some(failure), Some(zones))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::kit::{cluster, report};
    use zkop_spec::wire::ShippingReport;
    use zkop_spec::zk::ServerId;

    fn backup_status(tick_ms: u64, lag_ms: Option<u64>, wall_ms: u64) -> BackupStatus {
        let mut b = cluster(3);
        b.p.shipper = Some(ServerId(2));
        let spec = zkop_spec::parse_spec(
            "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: t\nspec:\n  replicas: 3\n  backup:\n    dir: /b\n    recoveryPoint: 2s\n",
        )
        .unwrap();
        let now = Instant::now();
        let mut reports = ReportCache::new(now);
        let mut r = report("i-2", Some(2), None);
        r.backup = Some(ShippingReport {
            tick_ms: Some(tick_ms),
            lag_ms,
            bytes_shipped: 10,
            ..ShippingReport::default()
        });
        reports.record(r, now);
        let status = status_view(StatusInput {
            cluster: "t",
            persisted: &b.p,
            reports: &reports,
            instances: &b.obs.instances,
            plan: None,
            events: vec![],
            last_error: None,
            now,
            backup: spec.backup.as_ref(),
            wall_ms,
            tls: TlsStage::Plaintext,
            clients_port: spec.zookeeper.client_port,
        });
        let metrics = crate::metrics::Metrics::default().render(&status)
            + &crate::metrics::leadership("t", true, false);
        // Every metric the shipped alert rules and dashboard use is one zkop renders.
        for (file, text) in [
            (
                "zkop-alerts.yml",
                include_str!("../../../monitoring/zkop-alerts.yml"),
            ),
            (
                "zkop-dashboard.json",
                include_str!("../../../monitoring/zkop-dashboard.json"),
            ),
        ] {
            for name in text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("zkop_"))
            {
                // A summary's parts are rendered under its own TYPE line.
                let family = name
                    .strip_suffix("_sum")
                    .or_else(|| name.strip_suffix("_count"))
                    .unwrap_or(name);
                assert!(
                    metrics.contains(&format!("# TYPE {family} ")),
                    "monitoring/{file} uses {name}, which /metrics does not have"
                );
            }
        }
        let behind = status.backup.as_ref().unwrap().behind;
        assert!(
            metrics.contains(&format!(
                "zkop_backup_behind{{cluster=\"t\"}} {}",
                u8::from(behind)
            )),
            "{metrics}"
        );
        status.backup.unwrap()
    }

    #[test]
    fn the_backup_is_behind_when_its_lag_or_the_time_since_its_last_shipment_passes_the_recovery_point()
     {
        // Caught up at the last shipment, a second ago: an idle cluster is
        // not behind between two shipments.
        let ok = backup_status(10_000, Some(0), 11_000);
        assert_eq!(
            (ok.age_ms, ok.behind, ok.shipper),
            (Some(0), false, Some(ServerId(2)))
        );
        let lagging = backup_status(10_000, Some(2_500), 10_500);
        assert_eq!((lagging.age_ms, lagging.behind), (Some(2_500), true));
        // No shipment for longer than the recovery point.
        let stalled = backup_status(10_000, Some(0), 12_500);
        assert_eq!((stalled.age_ms, stalled.behind), (Some(2_500), true));
        // The last shipment failed: unknown, so behind.
        let failed = backup_status(10_000, None, 10_500);
        assert_eq!((failed.age_ms, failed.behind), (None, true));
    }

    #[test]
    fn a_full_data_disk_is_the_member_s_problem_and_a_told_stop_is_none() {
        let mut r = report("i-2", Some(2), None);
        r.data_disk = Some(DiskSpace {
            free_bytes: 1 << 30,
            total_bytes: 1 << 31,
        });
        assert_eq!(member_problem(&r), None);
        r.data_disk = Some(DiskSpace {
            free_bytes: 65536,
            total_bytes: 1 << 31,
        });
        let p = member_problem(&r).unwrap();
        assert!(
            p.starts_with("disk full: 65536 bytes free of 2147483648"),
            "{p}"
        );
        r.data_disk = None;
        r.process.running = false;
        r.process.last_exit = Some("stopped by the agent".into());
        assert_eq!(member_problem(&r), None);
        r.process.last_exit = Some("ZooKeeper exited (exit status: 2) after 3.0s".into());
        assert_eq!(
            member_problem(&r).as_deref(),
            r.process.last_exit.as_deref()
        );
    }
}
