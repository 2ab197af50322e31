//! The backup bucket: versioned, encrypted (SSE-KMS with the given key, or
//! SSE-S3), every public access blocked, optional Object Lock, and a
//! lifecycle rule that ends versions the controller's retention deleted.
//! Objects live under `<ClusterName>/`; members may create and read there
//! (and read a restore source's prefix), only the controller deletes.

use crate::expr::Expr;
use crate::model::*;
use crate::parts::statement;
use crate::parts::tags;

/// A KMS key was given.
pub(crate) const HAS_BACKUP_KEY: &str = "HasBackupKmsKey";
/// Object Lock was asked for.
pub(crate) const HAS_OBJECT_LOCK: &str = "HasBackupObjectLock";
/// A backup to restore a new cluster from was named.
const HAS_RESTORE_SOURCE: &str = "HasRestoreSource";
/// That backup's KMS key was named.
const HAS_RESTORE_SOURCE_KEY: &str = "HasRestoreSourceKmsKey";
/// A key ARN that cannot exist: a statement cannot be left out by a
/// condition, so one about no key names this and grants nothing.
const NO_KEY: &str = "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/00000000-0000-0000-0000-000000000000";

/// The backup parameters.
pub(crate) fn params() -> Vec<(&'static str, Parameter)> {
    let p = Parameter::required;
    vec![
        ("BackupKmsKeyArn", p("String", "A KMS key ARN to encrypt backups with (SSE-KMS); empty for SSE-S3").default("")),
        ("BackupObjectLockDays", p("Number", "Object Lock (governance mode) default retention of backup objects in days; 0 for none (only at bucket creation)").default("0").range(0, 36500)),
        ("BackupNoncurrentDays", p("Number", "Days a backup object the controller's retention deleted stays as a noncurrent version before the lifecycle rule removes it").default("7").range(1, 3650)),
        ("RestoreSourceBucket", p("String", "The bucket of a backup this cluster restores from (spec.bootstrap.restore.from.s3); members may read it. Empty for none").default("")),
        ("RestoreSourcePrefix", p("String", "That backup's prefix, e.g. `prod/`").default("")),
        ("RestoreSourceKmsKeyArn", p("String", "The KMS key that backup is encrypted with, if not BackupKmsKeyArn; members may decrypt with it. Empty for none").default("")),
    ]
}

/// The backup conditions.
pub(crate) fn conditions() -> Vec<(&'static str, Expr)> {
    let equals = |name: &str, v: &str| Expr::Equals(Box::new(Expr::r(name)), Box::new(Expr::s(v)));
    vec![
        (
            HAS_BACKUP_KEY,
            Expr::Not(Box::new(equals("BackupKmsKeyArn", ""))),
        ),
        (
            HAS_OBJECT_LOCK,
            Expr::Not(Box::new(equals("BackupObjectLockDays", "0"))),
        ),
        (
            HAS_RESTORE_SOURCE,
            Expr::Not(Box::new(equals("RestoreSourceBucket", ""))),
        ),
        (
            HAS_RESTORE_SOURCE_KEY,
            Expr::Not(Box::new(equals("RestoreSourceKmsKeyArn", ""))),
        ),
    ]
}

/// The bucket.
pub(crate) fn bucket() -> Resource {
    let sse = Expr::when(
        HAS_BACKUP_KEY,
        Expr::obj([
            ("SSEAlgorithm", Expr::s("aws:kms")),
            ("KMSMasterKeyID", Expr::r("BackupKmsKeyArn")),
        ]),
        Expr::obj([("SSEAlgorithm", Expr::s("AES256"))]),
    );
    Resource::new(Kind::Bucket(Bucket {
        versioning_configuration: Expr::obj([("Status", Expr::s("Enabled"))]),
        bucket_encryption: Expr::obj([(
            "ServerSideEncryptionConfiguration",
            Expr::List(vec![Expr::obj([
                ("ServerSideEncryptionByDefault", sse),
                ("BucketKeyEnabled", Expr::Bool(true)),
            ])]),
        )]),
        public_access_block_configuration: Expr::obj([
            ("BlockPublicAcls", Expr::Bool(true)),
            ("BlockPublicPolicy", Expr::Bool(true)),
            ("IgnorePublicAcls", Expr::Bool(true)),
            ("RestrictPublicBuckets", Expr::Bool(true)),
        ]),
        object_lock_enabled: Expr::when(HAS_OBJECT_LOCK, Expr::Bool(true), Expr::no_value()),
        object_lock_configuration: Expr::when(
            HAS_OBJECT_LOCK,
            Expr::obj([
                ("ObjectLockEnabled", Expr::s("Enabled")),
                (
                    "Rule",
                    Expr::obj([(
                        "DefaultRetention",
                        Expr::obj([
                            ("Mode", Expr::s("GOVERNANCE")),
                            ("Days", Expr::r("BackupObjectLockDays")),
                        ]),
                    )]),
                ),
            ]),
            Expr::no_value(),
        ),
        lifecycle_configuration: Expr::obj([(
            "Rules",
            Expr::List(vec![Expr::obj([
                ("Id", Expr::s("zkop-retention")),
                ("Status", Expr::s("Enabled")),
                ("Prefix", Expr::sub("${ClusterName}/")),
                (
                    "NoncurrentVersionExpiration",
                    Expr::obj([("NoncurrentDays", Expr::r("BackupNoncurrentDays"))]),
                ),
                ("ExpiredObjectDeleteMarker", Expr::Bool(true)),
                (
                    "AbortIncompleteMultipartUpload",
                    Expr::obj([("DaysAfterInitiation", Expr::Int(1))]),
                ),
            ])]),
        )]),
        tags: tags("backups"),
    }))
    .retained()
}

fn objects_arn() -> Expr {
    Expr::sub("arn:${AWS::Partition}:s3:::${BackupBucket}/${ClusterName}/*")
}

fn list_own_prefix() -> Statement {
    let mut list = statement(
        "ListTheClustersBackup",
        &["s3:ListBucket"],
        vec![Expr::sub("arn:${AWS::Partition}:s3:::${BackupBucket}")],
    );
    list.condition = Some(Expr::obj([(
        "StringLike",
        Expr::obj([("s3:prefix", Expr::sub("${ClusterName}/*"))]),
    )]));
    list
}

/// KMS data keys and decryption, for the backup key only. Without one the
/// statement names a key that cannot exist, granting nothing (a statement
/// cannot be left out by a condition).
fn use_the_key() -> Statement {
    statement(
        "EncryptAndDecryptBackups",
        &["kms:GenerateDataKey", "kms:Decrypt"],
        vec![Expr::when(
            HAS_BACKUP_KEY,
            Expr::r("BackupKmsKeyArn"),
            Expr::sub(NO_KEY),
        )],
    )
}

/// Reading (never writing) the backup a new cluster restores from. Without
/// one, the statements name what the member may read anyway.
fn read_the_restore_source() -> Vec<Statement> {
    let source =
        |named: &str, own: &str| Expr::when(HAS_RESTORE_SOURCE, Expr::sub(named), Expr::sub(own));
    let mut list = statement(
        "ListTheRestoreSource",
        &["s3:ListBucket"],
        vec![source(
            "arn:${AWS::Partition}:s3:::${RestoreSourceBucket}",
            "arn:${AWS::Partition}:s3:::${BackupBucket}",
        )],
    );
    list.condition = Some(Expr::obj([(
        "StringLike",
        Expr::obj([(
            "s3:prefix",
            source("${RestoreSourcePrefix}*", "${ClusterName}/*"),
        )]),
    )]));
    vec![
        statement(
            "ReadTheRestoreSource",
            &["s3:GetObject"],
            vec![source(
                "arn:${AWS::Partition}:s3:::${RestoreSourceBucket}/${RestoreSourcePrefix}*",
                "arn:${AWS::Partition}:s3:::${BackupBucket}/${ClusterName}/*",
            )],
        ),
        list,
        statement(
            "DecryptTheRestoreSource",
            &["kms:Decrypt"],
            vec![Expr::when(
                HAS_RESTORE_SOURCE_KEY,
                Expr::r("RestoreSourceKmsKeyArn"),
                Expr::sub(NO_KEY),
            )],
        ),
    ]
}

/// What a member's agent may do: create and read backup objects under the
/// cluster's prefix (shipments, drill records), list it, read a restore
/// source's; never delete.
pub(crate) fn member_statements() -> Vec<Statement> {
    let mut own = vec![
        statement(
            "ShipAndRestoreBackups",
            &["s3:PutObject", "s3:GetObject"],
            vec![objects_arn()],
        ),
        list_own_prefix(),
        use_the_key(),
    ];
    own.extend(read_the_restore_source());
    own
}

/// What the controller may do: read, list, record drills (`zkop backup
/// verify` on its host) and prune.
pub(crate) fn controller_statements() -> Vec<Statement> {
    vec![
        statement(
            "ReadRecordAndPruneBackups",
            &["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            vec![objects_arn()],
        ),
        list_own_prefix(),
        use_the_key(),
    ]
}
