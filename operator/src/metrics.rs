//! Prometheus text for `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use zkop_spec::wire::{StatusReply, StatusRole};

use crate::plan::{Phase, Step};

#[derive(Debug, Default)]
struct Counters {
    passes: u64,
    status_views: u64,
    errors: BTreeMap<&'static str, u64>,
    steps: BTreeMap<&'static str, (f64, u64)>,
}

/// The controller's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Counters) -> T) -> T {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut c)
    }

    /// Counts a reconcile pass.
    pub fn pass(&self) {
        self.with(|c| c.passes += 1);
    }

    /// Reconcile passes run so far.
    pub fn passes(&self) -> u64 {
        self.with(|c| c.passes)
    }

    /// Counts a status view built.
    pub fn status_view_built(&self) {
        self.with(|c| c.status_views += 1);
    }

    /// Status views built so far.
    pub fn status_views(&self) -> u64 {
        self.with(|c| c.status_views)
    }

    /// Failed passes of `category` so far.
    pub fn errors(&self, category: &str) -> u64 {
        self.with(|c| c.errors.get(category).copied().unwrap_or(0))
    }

    /// Counts a failed pass by category.
    pub fn error(&self, category: &'static str) {
        self.with(|c| *c.errors.entry(category).or_default() += 1);
    }

    /// Records how long a step took.
    pub fn step(&self, kind: &'static str, took: Duration) {
        self.with(|c| {
            let e = c.steps.entry(kind).or_default();
            e.0 += took.as_secs_f64();
            e.1 += 1;
        });
    }

    /// Renders every metric, with member gauges from `status`.
    pub fn render(&self, status: &StatusReply) -> String {
        let mut out = String::new();
        let cluster = &status.cluster;
        let _ = writeln!(out, "# HELP zkop_members Members by role and health.");
        let _ = writeln!(out, "# TYPE zkop_members gauge");
        let mut by: BTreeMap<(&str, bool), u64> = BTreeMap::new();
        for role in <StatusRole as strum::VariantArray>::VARIANTS {
            for healthy in [true, false] {
                by.insert((role.as_str(), healthy), 0);
            }
        }
        for m in &status.members {
            *by.entry((m.role.as_str(), m.healthy)).or_default() += 1;
        }
        for ((role, healthy), n) in by {
            let _ = writeln!(
                out,
                "zkop_members{{cluster=\"{cluster}\",role=\"{role}\",healthy=\"{healthy}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP zkop_cluster_phase 1 for the cluster's current phase."
        );
        let _ = writeln!(out, "# TYPE zkop_cluster_phase gauge");
        for phase in <Phase as strum::VariantArray>::VARIANTS.iter().copied() {
            let v = u8::from(phase.as_str() == status.phase);
            let _ = writeln!(
                out,
                "zkop_cluster_phase{{cluster=\"{cluster}\",phase=\"{}\"}} {v}",
                phase.as_str()
            );
        }
        render_tolerances(&mut out, status);
        render_versions(&mut out, status);
        render_upgrade(&mut out, status);
        render_backup(&mut out, status);
        render_canary(&mut out, status);
        self.with(|c| {
            let _ = writeln!(out, "# HELP zkop_reconcile_passes_total Reconcile passes run.");
            let _ = writeln!(out, "# TYPE zkop_reconcile_passes_total counter");
            let _ = writeln!(out, "zkop_reconcile_passes_total{{cluster=\"{cluster}\"}} {}", c.passes);
            let _ = writeln!(out, "# HELP zkop_status_views_built_total Status views built (at most one per pass while nothing changes).");
            let _ = writeln!(out, "# TYPE zkop_status_views_built_total counter");
            let _ = writeln!(out, "zkop_status_views_built_total{{cluster=\"{cluster}\"}} {}", c.status_views);
            let _ = writeln!(out, "# HELP zkop_reconcile_errors_total Failed reconcile passes by category.");
            let _ = writeln!(out, "# TYPE zkop_reconcile_errors_total counter");
            for cat in ["fleet", "ledger", "store", "stale", "lease"] {
                let n = c.errors.get(cat).copied().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "zkop_reconcile_errors_total{{cluster=\"{cluster}\",category=\"{cat}\"}} {n}"
                );
            }
            let _ = writeln!(out, "# HELP zkop_step_duration_seconds Time spent carrying out steps, by kind.");
            let _ = writeln!(out, "# TYPE zkop_step_duration_seconds summary");
            for kind in <Step as strum::VariantNames>::VARIANTS.iter().copied() {
                let (sum, count) = c.steps.get(kind).copied().unwrap_or((0.0, 0));
                let _ = writeln!(
                    out,
                    "zkop_step_duration_seconds_sum{{cluster=\"{cluster}\",step=\"{kind}\"}} {sum}"
                );
                let _ = writeln!(
                    out,
                    "zkop_step_duration_seconds_count{{cluster=\"{cluster}\",step=\"{kind}\"}} {count}"
                );
            }
        });
        let _ = writeln!(
            out,
            "# HELP zkop_aws_calls_total AWS API calls made, by service and operation."
        );
        let _ = writeln!(out, "# TYPE zkop_aws_calls_total counter");
        for ((service, operation), n) in crate::adapters::aws::calls::calls(cluster) {
            let _ = writeln!(
                out,
                "zkop_aws_calls_total{{cluster=\"{cluster}\",service=\"{service}\",operation=\"{operation}\"}} {n}"
            );
        }
        out
    }
}

/// `zkop_controller_leader`: whether this controller acts for `cluster`
/// (every controller of a group serves `/metrics`; one should say 1), and
/// `zkop_controller_fenced`: whether another controller's takeover, found
/// in the cluster's state record, keeps this one off it.
pub fn leadership(cluster: &str, leading: bool, fenced: bool) -> String {
    format!(
        "# HELP zkop_controller_leader 1 while this controller leads the cluster (holds its lease).\n# TYPE zkop_controller_leader gauge\nzkop_controller_leader{{cluster=\"{cluster}\"}} {}\n# HELP zkop_controller_fenced 1 while another controller's takeover of the cluster keeps this one off it.\n# TYPE zkop_controller_fenced gauge\nzkop_controller_fenced{{cluster=\"{cluster}\"}} {}\n",
        u8::from(leading),
        u8::from(fenced)
    )
}

/// The failure tolerances, each member's zone, and a halted roll-out.
fn render_tolerances(out: &mut String, status: &StatusReply) {
    let cluster = &status.cluster;
    let _ = writeln!(
        out,
        "# HELP zkop_rollout_halted 1 while a roll-out is halted (a restarted member did not serve again within rollout.timeout)."
    );
    let _ = writeln!(out, "# TYPE zkop_rollout_halted gauge");
    let halted = status.reason.starts_with(crate::plan::ROLLOUT_HALTED);
    let _ = writeln!(
        out,
        "zkop_rollout_halted{{cluster=\"{cluster}\"}} {}",
        u8::from(halted)
    );
    for (name, help, value) in [
        (
            "zkop_cluster_failure_tolerance",
            "Voters that can stop serving with the quorum kept.",
            status.failure_tolerance,
        ),
        (
            "zkop_cluster_zone_failure_tolerance",
            "Whole zones that can be lost (the most crowded first) with the quorum kept.",
            status.zone_failure_tolerance,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        if let Some(v) = value {
            let _ = writeln!(out, "{name}{{cluster=\"{cluster}\"}} {v}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP zkop_member_zone_info The zone each member's instance is in."
    );
    let _ = writeln!(out, "# TYPE zkop_member_zone_info gauge");
    for m in &status.members {
        if let Some(zone) = &m.zone {
            let _ = writeln!(
                out,
                "zkop_member_zone_info{{cluster=\"{cluster}\",member=\"{}\",zone=\"{zone}\"}} 1",
                m.id
            );
        }
    }
}

/// Where a change of ZooKeeper release stands: the release the spec names,
/// the members not on it yet (0 once done), and whether it halted.
fn render_upgrade(out: &mut String, status: &StatusReply) {
    let cluster = &status.cluster;
    let target = status.zookeeper_version.as_deref();
    let behind = target.map_or(0, |t| {
        status
            .members
            .iter()
            .filter(|m| m.zookeeper_version.as_deref() != Some(t))
            .count()
    });
    let halted = behind > 0 && status.reason.starts_with(crate::plan::ROLLOUT_HALTED);
    let _ = writeln!(
        out,
        "# HELP zkop_upgrade_target_info The ZooKeeper release the spec names (spec.zookeeper.version).\n# TYPE zkop_upgrade_target_info gauge"
    );
    if let Some(target) = target {
        let _ = writeln!(
            out,
            "zkop_upgrade_target_info{{cluster=\"{cluster}\",version=\"{target}\"}} 1"
        );
    }
    let _ = writeln!(
        out,
        "# HELP zkop_upgrade_members_behind Members not yet serving on the spec's ZooKeeper release (0 when no upgrade or rollback is under way).\n# TYPE zkop_upgrade_members_behind gauge\nzkop_upgrade_members_behind{{cluster=\"{cluster}\"}} {behind}"
    );
    let _ = writeln!(
        out,
        "# HELP zkop_upgrade_halted 1 while a change of ZooKeeper release is halted (a member did not serve on the new release within rollout.timeout).\n# TYPE zkop_upgrade_halted gauge\nzkop_upgrade_halted{{cluster=\"{cluster}\"}} {}",
        u8::from(halted)
    );
}

/// One `zkop_member_zookeeper_info` line per member whose release is known.
fn render_versions(out: &mut String, status: &StatusReply) {
    let cluster = &status.cluster;
    let _ = writeln!(
        out,
        "# HELP zkop_member_data_free_bytes Free bytes on the filesystem of each member's data directory, as its agent reports it."
    );
    let _ = writeln!(out, "# TYPE zkop_member_data_free_bytes gauge");
    for m in &status.members {
        if let Some(free) = m.data_free_bytes {
            let _ = writeln!(
                out,
                "zkop_member_data_free_bytes{{cluster=\"{cluster}\",member=\"{}\"}} {free}",
                m.id
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP zkop_member_certificate_expiry_timestamp_seconds With TLS on: when each member's earlier certificate (client port or quorum) expires."
    );
    let _ = writeln!(
        out,
        "# TYPE zkop_member_certificate_expiry_timestamp_seconds gauge"
    );
    for m in &status.members {
        if let Some(at) = m.certificate_not_after_ms {
            let _ = writeln!(
                out,
                "zkop_member_certificate_expiry_timestamp_seconds{{cluster=\"{cluster}\",member=\"{}\"}} {}",
                m.id,
                at / 1000
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP zkop_member_zookeeper_info The ZooKeeper release each member runs, with its known data-loss bug (if any)."
    );
    let _ = writeln!(out, "# TYPE zkop_member_zookeeper_info gauge");
    for m in &status.members {
        let Some(version) = &m.zookeeper_version else {
            continue;
        };
        let bug = m
            .known_issue
            .as_deref()
            .and_then(|i| i.split([' ', ':']).next())
            .unwrap_or("");
        let _ = writeln!(
            out,
            "zkop_member_zookeeper_info{{cluster=\"{cluster}\",member=\"{}\",version=\"{version}\",known_issue=\"{bug}\"}} 1",
            m.id
        );
    }
}

/// The consistency canary's families (their help and type lines always, so
/// that rules and dashboards find them; samples while it runs).
fn render_canary(out: &mut String, status: &StatusReply) {
    let cluster = &status.cluster;
    let c = status.canary.as_ref();
    canary_head(
        out,
        "zkop_canary_rounds_total",
        "counter",
        "Rounds the consistency canary ran.",
    );
    if let Some(c) = c {
        let _ = writeln!(
            out,
            "zkop_canary_rounds_total{{cluster=\"{cluster}\"}} {}",
            c.rounds
        );
    }
    canary_head(
        out,
        "zkop_canary_write_seconds",
        "histogram",
        "How long the canary's compare-and-set of its counter took.",
    );
    if let Some(c) = c {
        let h = &c.write_seconds;
        for (i, bound) in zkop_spec::canary::WRITE_BUCKETS.iter().enumerate() {
            let n = h.buckets.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "zkop_canary_write_seconds_bucket{{cluster=\"{cluster}\",le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "zkop_canary_write_seconds_bucket{{cluster=\"{cluster}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "zkop_canary_write_seconds_sum{{cluster=\"{cluster}\"}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "zkop_canary_write_seconds_count{{cluster=\"{cluster}\"}} {}",
            h.count
        );
    }
    render_canary_reads(out, status);
}

/// The canary's reads through each member, what it found, its last good round.
fn render_canary_reads(out: &mut String, status: &StatusReply) {
    let cluster = &status.cluster;
    let c = status.canary.as_ref();
    canary_head(
        out,
        "zkop_canary_read_seconds",
        "gauge",
        "How long the canary's last sync and read of its counter through each member took.",
    );
    canary_head(
        out,
        "zkop_canary_member_up",
        "gauge",
        "1 when the canary's last read through the member was answered.",
    );
    for r in c.map(|c| c.members.as_slice()).unwrap_or_default() {
        if let Some(secs) = r.read_seconds {
            let _ = writeln!(
                out,
                "zkop_canary_read_seconds{{cluster=\"{cluster}\",member=\"{}\"}} {secs}",
                r.id
            );
        }
        let _ = writeln!(
            out,
            "zkop_canary_member_up{{cluster=\"{cluster}\",member=\"{}\"}} {}",
            r.id,
            u8::from(r.error.is_none())
        );
    }
    canary_head(
        out,
        "zkop_canary_violations_total",
        "counter",
        "What the canary found that ZooKeeper does not allow, by kind.",
    );
    for (kind, n) in c.map(|c| &c.violations).into_iter().flatten() {
        let _ = writeln!(
            out,
            "zkop_canary_violations_total{{cluster=\"{cluster}\",kind=\"{kind}\"}} {n}"
        );
    }
    canary_head(
        out,
        "zkop_canary_last_good_round_timestamp_seconds",
        "gauge",
        "When the last canary round that wrote and found nothing wrong ended (0: none yet).",
    );
    if let Some(c) = c {
        let _ = writeln!(
            out,
            "zkop_canary_last_good_round_timestamp_seconds{{cluster=\"{cluster}\"}} {}",
            c.last_good_round_ms.unwrap_or(0) as f64 / 1000.0
        );
    }
}

/// A family's help and type lines.
fn canary_head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One gauge of the cluster, with its help and type lines.
fn gauge(out: &mut String, cluster: &str, name: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name}{{cluster=\"{cluster}\"}} {value}");
}

/// The backup's gauges, when the spec asks for backups.
fn render_backup(out: &mut String, status: &StatusReply) {
    let Some(b) = &status.backup else {
        return;
    };
    let c = &status.cluster;
    let seconds = |ms: u64| ms as f64 / 1000.0;
    gauge(
        out,
        c,
        "zkop_backup_recovery_point_seconds",
        "The measured recovery point: at the last shipment, the age of the oldest transaction the shipping server had processed and the backup lacked (0: none), or the time since the last shipment once they stop; NaN when unknown.",
        b.age_ms.map_or(f64::NAN, seconds),
    );
    gauge(
        out,
        c,
        "zkop_backup_recovery_point_target_seconds",
        "The recovery point the spec asks for.",
        seconds(b.recovery_point_ms),
    );
    gauge(
        out,
        c,
        "zkop_backup_behind",
        "1 while the backup is behind its recovery point.",
        f64::from(u8::from(b.behind)),
    );
    gauge(
        out,
        c,
        "zkop_backup_shipped_bytes",
        "Bytes the current shipper has shipped since its agent started.",
        b.bytes_shipped as f64,
    );
    gauge(
        out,
        c,
        "zkop_backup_newest_zxid",
        "The newest transaction the backup holds.",
        b.newest_zxid.map_or(f64::NAN, |z| z.as_u64() as f64),
    );
    gauge(
        out,
        c,
        "zkop_backup_last_drill_ok",
        "1 when the newest restore drill proved the backup restorable, 0 when it failed; NaN before the first.",
        b.last_drill
            .as_ref()
            .map_or(f64::NAN, |d| f64::from(u8::from(d.ok))),
    );
    gauge(
        out,
        c,
        "zkop_backup_last_good_drill_timestamp_seconds",
        "When a restore drill last proved the backup restorable (Unix time); NaN before the first.",
        b.last_good_drill_ms.map_or(f64::NAN, seconds),
    );
}

/// Several clusters' Prometheus texts as one: each metric family once, its
/// `# HELP` and `# TYPE` first and then every cluster's samples, as the
/// text format requires (a family's lines together, never repeated).
pub fn merge<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    // Family name -> (HELP and TYPE lines, samples), in first-seen order.
    let mut order: Vec<String> = Vec::new();
    let mut families: std::collections::HashMap<String, (Vec<String>, Vec<String>)> =
        std::collections::HashMap::new();
    for text in texts {
        let mut current = String::new();
        for line in text.lines() {
            let header = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "));
            if let Some(rest) = header {
                current = rest.split(' ').next().unwrap_or_default().to_string();
            }
            let family = families.entry(current.clone()).or_insert_with(|| {
                order.push(current.clone());
                (Vec::new(), Vec::new())
            });
            match header {
                Some(_) if !family.0.iter().any(|h| h == line) => family.0.push(line.to_string()),
                Some(_) => {}
                None if line.trim().is_empty() => {}
                None => family.1.push(line.to_string()),
            }
        }
    }
    let mut out = String::new();
    for name in order {
        if let Some((headers, samples)) = families.get(&name) {
            for line in headers.iter().chain(samples) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod merge_tests {
    #[test]
    fn every_family_is_written_once_with_every_cluster_s_samples() {
        let a = "# HELP zkop_x X.\n# TYPE zkop_x gauge\nzkop_x{cluster=\"a\"} 1\n# HELP zkop_y Y.\n# TYPE zkop_y counter\nzkop_y_total{cluster=\"a\"} 2\n";
        let b = "# HELP zkop_x X.\n# TYPE zkop_x gauge\nzkop_x{cluster=\"b\"} 3\n";
        assert_eq!(
            super::merge([a, b]),
            "# HELP zkop_x X.\n# TYPE zkop_x gauge\nzkop_x{cluster=\"a\"} 1\nzkop_x{cluster=\"b\"} 3\n# HELP zkop_y Y.\n# TYPE zkop_y counter\nzkop_y_total{cluster=\"a\"} 2\n"
        );
    }
}
