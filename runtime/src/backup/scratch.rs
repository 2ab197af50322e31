//! A scratch ZooKeeper server on a restored copy of a backup: what a restore
//! drill checks and what makes an offline snapshot (ZooKeeper 3.8 cannot be
//! told to take one, but a server writes `snapshot.<last zxid>` as it starts
//! serving). It runs beside the member's own server, on a port of its own,
//! and is killed when dropped.
//!
//! It serves a whole restored tree with ACLs as the backup holds them, so it
//! listens on loopback only (never the member's routable address: anyone
//! reaching it could read every znode), and its super user, which nothing
//! here needs, gets a random secret per server that is never written down.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zkop_spec::backup::RestorePoint;
use zkop_spec::backup::manifest::TreeDigest;
use zkop_spec::zk::Zxid;
use zkop_zk::jvm::{JavaArgs, JvmCommand};

use super::Store;
use super::restore::restore_into;

/// Where the agent's scratch servers listen: loopback, never a routable address.
pub const SCRATCH_ADDRESS: &str = "127.0.0.1";

/// How long a scratch server may take to load a restored point.
const LOAD_LIMIT: Duration = Duration::from_secs(300);

/// A running scratch server, serving exactly at the zxid it was restored to.
pub struct ScratchServer {
    dir: tempfile::TempDir,
    child: tokio::process::Child,
    endpoint: String,
    /// How long it took to start serving.
    pub took: Duration,
}

impl ScratchServer {
    /// Restores `zxid` from `store` into a temporary directory, starts a
    /// server on it listening on `address` (a loopback address; any other
    /// is refused), and waits until it serves at exactly that zxid.
    pub async fn restore(
        store: &Store,
        zxid: Zxid,
        java: &JavaArgs,
        address: &str,
    ) -> Result<ScratchServer, String> {
        if !address
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
        {
            return Err(format!(
                "a scratch server listens on a loopback address only, not `{address}`: it serves a whole restored tree"
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| format!("a scratch directory: {e}"))?;
        let data = dir.path().join("data");
        restore_into(store, RestorePoint::Zxid { zxid }, &data)
            .await
            .map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind((address, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port on {address}: {e}"))?
            .port();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress={address}\nstandaloneEnabled=true\nadmin.enableServer=false\n4lw.commands.whitelist=srvr,hash\n",
                data.display()
            ),
        )
        .map_err(|e| format!("{}: {e}", cfg.display()))?;
        let jvm = JvmCommand {
            java: java.java.clone(),
            classpath: java.classpath(None)?,
            heap_mb: 512,
            jvm_flags: vec!["-XX:+UseSerialGC".into()],
            super_digest: zkop_zk::super_digest(&random_secret()),
        };
        let out = dir.path().join("zookeeper.out");
        let log = std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let child = jvm
            .command(&cfg, dir.path(), log)
            .and_then(|mut c| c.spawn())
            .map_err(|e| format!("cannot start a scratch ZooKeeper: {e}"))?;
        let mut server = ScratchServer {
            endpoint: format!("{address}:{port}"),
            dir,
            child,
            took: Duration::ZERO,
        };
        server.wait_serving(zxid).await?;
        Ok(server)
    }

    async fn wait_serving(&mut self, zxid: Zxid) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(p) = zkop_zk::probe::probe(&self.endpoint).await
                && p.serving
            {
                self.took = started.elapsed();
                return match p.zxid {
                    Some(z) if z == zxid => Ok(()),
                    other => Err(format!(
                        "the scratch server loaded to {}, not {zxid}",
                        other.map_or("nothing".into(), |z| z.to_string())
                    )),
                };
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the scratch server exited ({status}) loading the restored point: {}",
                    tail(&self.dir.path().join("zookeeper.out"))
                ));
            }
            if started.elapsed() > LOAD_LIMIT {
                return Err(format!(
                    "the scratch server did not serve within {LOAD_LIMIT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Its client endpoint (`address:port`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The tree digests it published while replaying the restored logs.
    pub async fn digests(&self) -> Result<Vec<TreeDigest>, String> {
        zkop_zk::probe::tree_digests(&self.endpoint).await
    }

    /// The snapshot it wrote as it started serving at `zxid`.
    pub fn snapshot(&self, zxid: Zxid) -> Result<Vec<u8>, String> {
        let path = self
            .version2()
            .join(format!("snapshot.{:x}", zxid.as_u64()));
        std::fs::read(&path).map_err(|e| {
            format!(
                "the scratch server wrote no {}: {e}",
                path.file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned())
            )
        })
    }

    fn version2(&self) -> PathBuf {
        self.dir.path().join("data").join("version-2")
    }

    /// Stops it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A secret nobody knows: the scratch server's super user is never used.
fn random_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}
