//! Validation of `spec.backup` and `spec.bootstrap`, with field paths.

use super::{
    BackupPolicy, BackupSource, BackupSpec, BackupTarget, BootstrapSpec, RestoreFrom, RestorePoint,
    S3Location,
};
use crate::validate::{Problems, check_duration};
use crate::zk::Zxid;

/// Points kept when neither `keep` nor `keepFor` is set.
const DEFAULT_KEEP: u32 = 3;

fn check_s3(p: &mut Problems, path: &str, s3: &S3Location) {
    let bucket_ok = (3..=63).contains(&s3.bucket.len())
        && s3
            .bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !bucket_ok {
        p.add(
            &format!("{path}.bucket"),
            format!(
                "must be an S3 bucket name (3 to 63 lower-case letters, digits, `-` or `.`), got `{}`",
                s3.bucket
            ),
        );
    }
    if s3.prefix.starts_with('/') {
        p.add(
            &format!("{path}.prefix"),
            format!("must not start with `/`, got `{}`", s3.prefix),
        );
    }
    if s3.kms_key_id.as_ref().is_some_and(|k| k.trim().is_empty()) {
        p.add(&format!("{path}.kmsKeyId"), "must not be empty when set");
    }
}

fn check_target(
    p: &mut Problems,
    path: &str,
    dir: &Option<String>,
    s3: &Option<S3Location>,
) -> Option<BackupTarget> {
    match (dir, s3) {
        (Some(d), None) => {
            if !d.starts_with('/') {
                p.add(
                    &format!("{path}.dir"),
                    format!("must be an absolute path, got `{d}`"),
                );
                return None;
            }
            Some(BackupTarget::Dir { path: d.clone() })
        }
        (None, Some(s)) => {
            check_s3(p, &format!("{path}.s3"), s);
            Some(BackupTarget::S3(s.clone()))
        }
        _ => {
            p.add(path, "must set exactly one of `dir` or `s3`");
            None
        }
    }
}

/// `spec.backup`; `Some(None)` when there is none.
pub(crate) fn check_backup(
    p: &mut Problems,
    b: &Option<BackupSpec>,
) -> Option<Option<BackupPolicy>> {
    let Some(b) = b else {
        return Some(None);
    };
    let target = check_target(p, "spec.backup", &b.dir, &b.s3);
    let day = 86_400;
    let recovery_point = check_duration(
        p,
        "spec.backup.recoveryPoint",
        &b.recovery_point,
        (1, 3600),
        "1h",
    );
    let snapshot_every = check_duration(
        p,
        "spec.backup.snapshotEvery",
        &b.snapshot_every,
        (1, 7 * day),
        "7d",
    );
    let verify_every = check_duration(
        p,
        "spec.backup.verifyEvery",
        &b.verify_every,
        (1, 30 * day),
        "30d",
    );
    let keep_for = match &b.keep_for {
        Some(t) => Some(check_duration(
            p,
            "spec.backup.keepFor",
            t,
            (60, 3650 * day),
            "3650d",
        )?),
        None => None,
    };
    if let Some(k) = b.keep {
        p.range("spec.backup.keep", k, 1, 10_000);
    }
    let keep = b
        .keep
        .unwrap_or(if keep_for.is_some() { 1 } else { DEFAULT_KEEP });
    Some(Some(BackupPolicy {
        target: target?,
        recovery_point: recovery_point?,
        snapshot_every: snapshot_every?,
        keep,
        keep_for,
        verify_every: verify_every?,
    }))
}

/// An RFC 3339 time as milliseconds since the Unix epoch.
pub fn parse_time(text: &str) -> Result<u64, String> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!("`{text}` is not an RFC 3339 time ({e}), e.g. `2026-12-02T15:04:05Z`")
        })?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("`{text}` is before 1970"))
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC, to the millisecond.
pub fn format_time(unix_ms: u64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => format!("{unix_ms} ms"),
    }
}

fn check_source(p: &mut Problems, s: &BackupSource) -> Option<BackupTarget> {
    check_target(p, "spec.bootstrap.restore.from", &s.dir, &s.s3)
}

/// `spec.bootstrap`; `Some(None)` when it restores nothing.
pub(crate) fn check_bootstrap(
    p: &mut Problems,
    b: &Option<BootstrapSpec>,
) -> Option<Option<RestoreFrom>> {
    let Some(r) = b.as_ref().and_then(|b| b.restore.as_ref()) else {
        return Some(None);
    };
    let target = check_source(p, &r.from);
    let to = match (&r.to_zxid, &r.to_time) {
        (Some(_), Some(_)) => {
            p.add(
                "spec.bootstrap.restore",
                "set at most one of `toZxid` or `toTime`",
            );
            None
        }
        (Some(z), None) => match z.parse::<Zxid>() {
            Ok(zxid) if z.trim().starts_with("0x") && zxid.is_transaction() => {
                Some(RestorePoint::Zxid { zxid })
            }
            _ => {
                p.add(
                    "spec.bootstrap.restore.toZxid",
                    format!("must be a transaction's zxid in hex as status prints it (e.g. `0x100000123`), got `{z}`"),
                );
                None
            }
        },
        (None, Some(t)) => match parse_time(t) {
            Ok(unix_ms) => Some(RestorePoint::Time { unix_ms }),
            Err(e) => {
                p.add("spec.bootstrap.restore.toTime", e);
                None
            }
        },
        (None, None) => Some(RestorePoint::Newest),
    };
    Some(Some(RestoreFrom {
        target: target?,
        to: to?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_spec;

    fn secs(s: u64) -> std::time::Duration {
        std::time::Duration::from_secs(s)
    }

    const HEAD: &str = "apiVersion: zkop/v1alpha1\nkind: ZookeeperCluster\nmetadata:\n  name: demo\nspec:\n  replicas: 3\n";

    fn problems(extra: &str) -> Vec<String> {
        match parse_spec(&format!("{HEAD}{extra}")) {
            Ok(_) => vec![],
            Err(e) => e.lines(),
        }
    }

    #[test]
    fn a_backup_to_a_directory_gets_the_documented_defaults() {
        let c = parse_spec(&format!("{HEAD}  backup:\n    dir: /var/backups/zk\n")).unwrap();
        let b = c.backup.unwrap();
        assert_eq!(
            b.target,
            BackupTarget::Dir {
                path: "/var/backups/zk".into()
            }
        );
        assert_eq!(b.recovery_point, secs(5));
        assert_eq!(b.snapshot_every, secs(3600));
        assert_eq!(b.verify_every, secs(86_400));
        assert_eq!((b.keep, b.keep_for), (3, None));
    }

    #[test]
    fn bad_backup_fields_are_named_by_their_paths() {
        let got = problems("  backup:\n    dir: backups\n    recoveryPoint: 2h\n    keepFor: 7x\n");
        assert!(
            got.iter()
                .any(|l| l.starts_with("spec.backup.dir: must be an absolute path")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|l| l.starts_with("spec.backup.recoveryPoint: must be between 1s and 1h")),
            "{got:?}"
        );
        assert!(
            got.iter().any(|l| l.starts_with("spec.backup.keepFor:")),
            "{got:?}"
        );
        let both = problems("  backup:\n    dir: /b\n    s3:\n      bucket: my-bucket\n");
        assert_eq!(
            both,
            vec!["spec.backup: must set exactly one of `dir` or `s3`"]
        );
        let bucket = problems("  backup:\n    s3:\n      bucket: My_Bucket\n");
        assert!(
            bucket[0].starts_with("spec.backup.s3.bucket: must be an S3 bucket name"),
            "{bucket:?}"
        );
    }

    #[test]
    fn a_restore_point_is_a_hex_zxid_or_an_rfc3339_time_not_both() {
        let base = "  bootstrap:\n    restore:\n      from:\n        dir: /b\n";
        let c = parse_spec(&format!("{HEAD}{base}      toZxid: \"0x100000123\"\n")).unwrap();
        assert_eq!(
            c.restore.unwrap().to,
            RestorePoint::Zxid {
                zxid: Zxid::from_u64(0x1_0000_0123)
            }
        );
        let c = parse_spec(&format!(
            "{HEAD}{base}      toTime: \"2026-12-02T15:04:05.250+01:00\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.restore.unwrap().to,
            RestorePoint::Time {
                unix_ms: 1_796_220_245_250
            }
        );
        let c = parse_spec(&format!("{HEAD}{base}")).unwrap();
        assert_eq!(c.restore.unwrap().to, RestorePoint::Newest);
        let got = problems(&format!("{base}      toZxid: \"123\"\n"));
        assert!(
            got[0].starts_with("spec.bootstrap.restore.toZxid: must be a transaction's zxid"),
            "{got:?}"
        );
        let got = problems(&format!("{base}      toTime: yesterday\n"));
        assert!(
            got[0]
                .starts_with("spec.bootstrap.restore.toTime: `yesterday` is not an RFC 3339 time"),
            "{got:?}"
        );
        let got = problems(&format!(
            "{base}      toTime: \"2026-12-02T15:04:05Z\"\n      toZxid: \"0x1\"\n"
        ));
        assert_eq!(
            got,
            vec!["spec.bootstrap.restore: set at most one of `toZxid` or `toTime`"]
        );
    }

    #[test]
    fn on_total_loss_restore_needs_a_backup() {
        let got = problems("  healing:\n    onTotalLoss: restore\n");
        assert_eq!(
            got,
            vec![
                "spec.healing.onTotalLoss: `restore` needs spec.backup: a total loss restores the cluster's own newest backup point"
            ]
        );
        assert!(
            problems("  healing:\n    onTotalLoss: restore\n  backup:\n    dir: /b\n").is_empty()
        );
    }

    #[test]
    fn times_print_as_rfc3339_and_parse_back() {
        let text = format_time(1_796_220_245_250);
        assert_eq!(text, "2026-12-02T14:04:05.250Z");
        assert_eq!(parse_time(&text), Ok(1_796_220_245_250));
    }

    #[test]
    fn backup_targets_parse_as_the_cli_writes_them() {
        assert_eq!(
            "dir:/b/c".parse::<BackupTarget>(),
            Ok(BackupTarget::Dir {
                path: "/b/c".into()
            })
        );
        let s3: BackupTarget = "s3://bucket/zk/prod".parse().unwrap();
        assert_eq!(s3.to_string(), "s3://bucket/zk/prod");
        assert!("/b".parse::<BackupTarget>().is_err());
    }
}
