//! What the backup suites share: a spec that ships to a directory, waiting
//! for the backup to hold a transaction, trees of znodes to restore, and
//! `zkop backup verify` on a directory.

use std::time::Duration;

use zkop_runtime::backup::Store;
use zkop_spec::backup::{BackupTarget, manifest};
use zkop_spec::zk::Zxid;
use zookeeper_client::{Acls, Client, CreateMode};

use super::{example_spec, wait_until, zkop_bin};

/// `example_spec(replicas)` with a backup to `dir` and `extra` healing.
pub fn spec_with_backup(dir: &std::path::Path, recovery_point: &str) -> String {
    format!(
        "{}  backup:\n    dir: {}\n    recoveryPoint: {recovery_point}\n",
        example_spec(3)
            .replace("detectAfter: 10s", "detectAfter: 3s")
            .replace("onTotalLoss: wait", "onTotalLoss: restore"),
        dir.display()
    )
}

/// The newest zxid the backup in `dir` restores exactly to.
pub async fn backed_up(dir: &std::path::Path) -> Option<Zxid> {
    let store = Store::open(&BackupTarget::Dir {
        path: dir.display().to_string(),
    })
    .await
    .ok()?;
    manifest::newest(&store.points().await.ok()?)
}

/// Creates `path` through `client` and waits until the backup in `dir`
/// holds its transaction.
pub async fn write_and_wait_backed_up(client: &Client, path: &str, dir: &std::path::Path) {
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let (stat, _) = client.create(path, b"", &options).await.unwrap();
    wait_backed_up(dir, Zxid::from_u64(stat.czxid as u64)).await;
}

pub async fn wait_backed_up(dir: &std::path::Path, zxid: Zxid) {
    wait_until(
        &format!("the backup to hold {zxid}"),
        Duration::from_secs(60),
        || async { backed_up(dir).await.filter(|z| *z >= zxid) },
    )
    .await;
}

/// Creates `parent` and `n` children; the last child's stat.
pub async fn create_tree(client: &Client, parent: &str, n: usize) -> zookeeper_client::Stat {
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let (mut last, _) = client.create(parent, b"v", &options).await.unwrap();
    for i in 0..n {
        last = client
            .create(&format!("{parent}/c{i}"), b"v", &options)
            .await
            .unwrap()
            .0;
    }
    last
}

pub async fn children(client: &Client, path: &str) -> Option<usize> {
    client.list_children(path).await.ok().map(|c| c.len())
}

/// `zkop backup verify --from dir:DIR`, with its scratch server on `address`.
pub fn verify(dir: &std::path::Path, address: &str) -> std::process::Output {
    std::process::Command::new(zkop_bin())
        .args(["backup", "verify", "--address", address, "--from"])
        .arg(format!("dir:{}", dir.display()))
        .output()
        .unwrap()
}

/// Copies a backup directory.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The backup in `dir`.
pub async fn dir_store(dir: &std::path::Path) -> Store {
    Store::open(&BackupTarget::Dir {
        path: dir.display().to_string(),
    })
    .await
    .unwrap()
}

/// `zkop backup list --from dir:DIR`'s table; it must succeed.
pub fn list_table(dir: &std::path::Path) -> String {
    let out = std::process::Command::new(zkop_bin())
        .args(["backup", "list", "--from"])
        .arg(format!("dir:{}", dir.display()))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    table
}
