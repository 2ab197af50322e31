//! One node's files: `myid`, `zoo.cfg` and the dynamic config.
//!
//! ZooKeeper owns `zoo.cfg`'s `dynamicConfigFile=` line and every
//! `zoo.cfg.dynamic.<version>` after its first start. The agent writes the initial
//! dynamic file only when the config that `zoo.cfg` points at does not list this
//! server: at first start, and for a joiner restarted before it was added (which
//! adopted the last committed config, where it is absent).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zkop_spec::tls;
use zkop_spec::txnlog::last_zxid_of_log;
use zkop_spec::wire::MemberAssignment;
use zkop_spec::zk::{ConfigVersion, DYNAMIC_CONFIG_FILE, DynamicConfig, ServerId, ZooCfg, Zxid};

/// The name of the initial dynamic file the agent writes (unversioned).
const INITIAL_DYNAMIC: &str = "zoo.cfg.dynamic";

/// Why a node's files could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Reading or writing a file failed (disk full, permissions).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The data directory belongs to another server id; refusing to reuse it.
    #[error("{path} says server {found}, but this node was assigned server {assigned}")]
    IdMismatch {
        /// The `myid` file.
        path: PathBuf,
        /// What it holds.
        found: String,
        /// What the controller assigned.
        assigned: ServerId,
    },
    /// The initial config the controller sent does not list this server.
    #[error("the initial config does not list server {0}")]
    NotInInitialConfig(ServerId),
    /// A forced config must carry the version to write it under.
    #[error("a recovery config without a version")]
    UnversionedRecovery,
}

/// Paths under an agent's `--data-dir`.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// The directory holding `zoo.cfg` and the dynamic files.
    pub fn conf_dir(&self) -> PathBuf {
        self.root.join("conf")
    }
    /// `zoo.cfg`.
    pub fn zoo_cfg(&self) -> PathBuf {
        self.conf_dir().join("zoo.cfg")
    }
    /// ZooKeeper's `dataDir`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }
    /// `myid`.
    pub fn myid(&self) -> PathBuf {
        self.data_dir().join("myid")
    }
    /// Where the JVM's output goes.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// The node's TLS key, certificate and the CA (`tls/`).
    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }
    /// The running JVM's PID, for `zkop local kill` and test guards.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("zookeeper.pid")
    }
    /// The highest controller epoch seen, kept across agent restarts.
    pub fn epoch_file(&self) -> PathBuf {
        self.root.join("epoch")
    }
    /// The last recovery generation applied.
    pub fn recovery_file(&self) -> PathBuf {
        self.root.join("recovery-generation")
    }
    /// This agent's own key for the controller API (0600, made once).
    pub fn agent_key_file(&self) -> PathBuf {
        self.root.join("agent-key")
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `text` to `path` atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, text: &str) -> Result<(), NodeError> {
    zkop_runtime::files::write_atomic(path, text.as_bytes(), 0o644).map_err(io(path))
}

/// The server id in `myid`, if the file exists and holds a number.
pub fn read_myid(layout: &Layout) -> Option<ServerId> {
    std::fs::read_to_string(layout.myid())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map(ServerId)
}

/// The config `zoo.cfg` currently points at, if both exist and parse.
pub fn current_dynamic_config(layout: &Layout) -> Option<DynamicConfig> {
    let cfg = ZooCfg::parse(&std::fs::read_to_string(layout.zoo_cfg()).ok()?).ok()?;
    let file = cfg.dynamic_config_file()?;
    let text = std::fs::read_to_string(file).ok()?;
    let mut config = DynamicConfig::parse(&text).ok()?;
    // ZooKeeper names its files by version: zoo.cfg.dynamic.<hex>.
    if config.version.is_none() {
        config.version = file
            .rsplit_once(".dynamic.")
            .and_then(|(_, v)| v.parse().ok());
    }
    Some(config)
}

/// Makes the node's files ready to start server `m.server_id`: `myid`, the static
/// `zoo.cfg` keys, and the initial dynamic file when needed. Called before every start.
pub fn prepare(layout: &Layout, m: &MemberAssignment) -> Result<(), NodeError> {
    let id = m.server_id;
    let myid = layout.myid();
    std::fs::create_dir_all(layout.data_dir()).map_err(io(&layout.data_dir()))?;
    match std::fs::read_to_string(&myid) {
        Ok(found) if found.trim() == id.to_string() => {}
        Ok(found) => {
            return Err(NodeError::IdMismatch {
                path: myid,
                found: found.trim().to_string(),
                assigned: id,
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_atomic(&myid, &format!("{id}\n"))?;
        }
        Err(e) => return Err(io(&myid)(e)),
    }

    let listed = current_dynamic_config(layout).is_some_and(|c| c.servers.contains_key(&id));
    let previous = std::fs::read_to_string(layout.zoo_cfg())
        .ok()
        .and_then(|t| ZooCfg::parse(&t).ok());
    let dynamic_file = match (
        listed,
        previous.as_ref().and_then(|c| c.dynamic_config_file()),
    ) {
        (true, Some(f)) => f.to_string(),
        _ => {
            if !m.initial_config.servers.contains_key(&id) {
                return Err(NodeError::NotInInitialConfig(id));
            }
            let path = layout.conf_dir().join(INITIAL_DYNAMIC);
            write_atomic(&path, &m.initial_config.render_servers())?;
            path.display().to_string()
        }
    };
    write_zoo_cfg(layout, m, dynamic_file)
}

/// Writes `zoo.cfg`: the controller's static keys and the node's own
/// (`dataDir`, the dynamic file; with TLS the stores' paths and the address
/// the secure client port binds, this member's).
fn write_zoo_cfg(
    layout: &Layout,
    m: &MemberAssignment,
    dynamic_file: String,
) -> Result<(), NodeError> {
    let mut keys: BTreeMap<String, String> = m.static_config.clone();
    keys.insert("dataDir".into(), layout.data_dir().display().to_string());
    keys.insert(DYNAMIC_CONFIG_FILE.into(), dynamic_file);
    if m.tls() {
        let store = layout.tls_dir().join(tls::NODE_KEY_STORE);
        let trust = layout.tls_dir().join(tls::TRUST_STORE);
        for key in tls::AGENT_KEYS {
            let path = if key.contains("keyStore") {
                &store
            } else {
                &trust
            };
            keys.insert(key.to_string(), path.display().to_string());
        }
        if let Some(me) = m.initial_config.servers.get(&m.server_id)
            && m.secure_client_port().is_some()
        {
            keys.insert("secureClientPortAddress".into(), me.address.clone());
        }
    }
    write_atomic(&layout.zoo_cfg(), &ZooCfg(keys).render())
}

/// The highest version among the node's own `zoo.cfg.dynamic.<version>` files.
pub fn last_config_version(layout: &Layout) -> Option<ConfigVersion> {
    std::fs::read_dir(layout.conf_dir())
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("zoo.cfg.dynamic.")?.parse().ok()
        })
        .max()
}

/// Points the node at a forced config after a quorum loss: writes
/// `zoo.cfg.dynamic.<version>`, drops a stale `zoo.cfg.dynamic.next` and
/// rewrites `zoo.cfg` to use it. The server must be stopped.
pub fn force_config(
    layout: &Layout,
    m: &MemberAssignment,
    config: &DynamicConfig,
) -> Result<(), NodeError> {
    let version = config.version.ok_or(NodeError::UnversionedRecovery)?;
    if !config.servers.contains_key(&m.server_id) {
        return Err(NodeError::NotInInitialConfig(m.server_id));
    }
    let path = layout.conf_dir().join(format!("zoo.cfg.dynamic.{version}"));
    write_atomic(&path, &config.render_servers())?;
    let next = layout.conf_dir().join("zoo.cfg.dynamic.next");
    match std::fs::remove_file(&next) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&next)(e)),
    }
    write_zoo_cfg(layout, m, path.display().to_string())
}

/// The last zxid the data directory holds: the newest transaction log's last
/// complete record, or a newer snapshot's zxid. `None` for an empty directory.
pub fn last_zxid_on_disk(layout: &Layout) -> Option<Zxid> {
    let (snapshots, logs) = crate::history::files(&layout.data_dir().join("version-2"));
    let snapshots = snapshots.last().map(|(z, _)| *z);
    // The newest log holding a record has the last zxid logged.
    let logged = logs.iter().rev().find_map(|(_, path)| {
        let bytes = std::fs::read(path).ok()?;
        last_zxid_of_log(&bytes).ok().flatten()
    });
    logged.max(snapshots)
}

/// Space on the filesystem of ZooKeeper's data directory (statvfs(3)), for
/// the report: a full disk stops ZooKeeper, and status says so.
pub fn data_disk(layout: &Layout) -> Option<zkop_spec::wire::DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(layout.data_dir().as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs(3) fills the zeroed struct it is given; the path is a
    // valid NUL-terminated string that outlives the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = st.f_frsize;
    Some(zkop_spec::wire::DiskSpace {
        free_bytes: st.f_bavail.saturating_mul(unit),
        total_bytes: st.f_blocks.saturating_mul(unit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zkop_spec::zk::{MemberRole, Server};

    fn server(id: u64, role: MemberRole) -> Server {
        Server {
            id: ServerId(id),
            address: format!("127.0.9.{id}"),
            quorum_port: 2888,
            election_port: 3888,
            role,
            client_address: format!("127.0.9.{id}"),
            client_port: 2181,
        }
    }

    fn assignment(id: u64, initial: DynamicConfig) -> MemberAssignment {
        let mut static_config = BTreeMap::new();
        static_config.insert("tickTime".to_string(), "500".to_string());
        MemberAssignment {
            server_id: ServerId(id),
            initial_config: initial,
            static_config,
            heap_mb: 128,
            jvm_flags: vec![],
            reconfig: None,
            recovery: None,
            roll: 0,
            zookeeper_version: None,
            restore: None,
            backup: None,
        }
    }

    #[test]
    fn first_start_writes_myid_zoo_cfg_and_the_initial_config() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let initial = DynamicConfig::of([
            server(1, MemberRole::Participant),
            server(2, MemberRole::Participant),
        ]);
        prepare(&layout, &assignment(1, initial.clone())).unwrap();
        assert_eq!(read_myid(&layout), Some(ServerId(1)));
        let cfg = ZooCfg::parse(&std::fs::read_to_string(layout.zoo_cfg()).unwrap()).unwrap();
        assert_eq!(cfg.0["tickTime"], "500");
        assert_eq!(cfg.0["dataDir"], layout.data_dir().display().to_string());
        assert_eq!(current_dynamic_config(&layout).unwrap(), initial);
    }

    #[test]
    fn zookeepers_own_dynamic_file_is_kept_while_it_lists_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let initial = DynamicConfig::of([server(1, MemberRole::Participant)]);
        prepare(&layout, &assignment(1, initial.clone())).unwrap();
        // ZooKeeper rewrites zoo.cfg to point at its versioned file.
        let own = layout.conf_dir().join("zoo.cfg.dynamic.100000000");
        let committed = DynamicConfig::of([
            server(1, MemberRole::Participant),
            server(2, MemberRole::Participant),
        ]);
        std::fs::write(&own, committed.render_servers()).unwrap();
        let mut cfg = ZooCfg::parse(&std::fs::read_to_string(layout.zoo_cfg()).unwrap()).unwrap();
        cfg.0
            .insert(DYNAMIC_CONFIG_FILE.into(), own.display().to_string());
        std::fs::write(layout.zoo_cfg(), cfg.render()).unwrap();

        prepare(&layout, &assignment(1, initial)).unwrap();
        let now = current_dynamic_config(&layout).unwrap();
        assert_eq!(now.servers, committed.servers);
        assert_eq!(now.version.map(|v| v.0), Some(0x1_0000_0000));
    }

    #[test]
    fn a_joiner_absent_from_the_adopted_config_gets_its_initial_config_again() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let joiner = DynamicConfig::of([
            server(1, MemberRole::Participant),
            server(4, MemberRole::Observer),
        ]);
        prepare(&layout, &assignment(4, joiner.clone())).unwrap();
        let own = layout.conf_dir().join("zoo.cfg.dynamic.100000000");
        std::fs::write(
            &own,
            DynamicConfig::of([server(1, MemberRole::Participant)]).render_servers(),
        )
        .unwrap();
        let mut cfg = ZooCfg::parse(&std::fs::read_to_string(layout.zoo_cfg()).unwrap()).unwrap();
        cfg.0
            .insert(DYNAMIC_CONFIG_FILE.into(), own.display().to_string());
        std::fs::write(layout.zoo_cfg(), cfg.render()).unwrap();

        prepare(&layout, &assignment(4, joiner.clone())).unwrap();
        assert_eq!(current_dynamic_config(&layout).unwrap(), joiner);
    }

    #[test]
    fn the_last_zxid_is_read_from_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        assert_eq!(last_zxid_on_disk(&layout), None);
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../spec/tests/fixtures/zk-3.8-data/version-2");
        let v2 = layout.data_dir().join("version-2");
        std::fs::create_dir_all(&v2).unwrap();
        for f in ["log.100000001", "snapshot.0"] {
            std::fs::copy(fixture.join(f), v2.join(f)).unwrap();
        }
        // A newer, still empty (preallocated) log does not hide the older one.
        std::fs::write(v2.join("log.10000002a"), vec![0u8; 1024]).unwrap();
        assert_eq!(
            last_zxid_on_disk(&layout),
            Some("0x100000029".parse().unwrap())
        );
        // A snapshot newer than every logged transaction wins.
        std::fs::write(v2.join("snapshot.200000000"), b"").unwrap();
        assert_eq!(
            last_zxid_on_disk(&layout),
            Some("0x200000000".parse().unwrap())
        );
    }

    #[test]
    fn a_forced_config_replaces_zookeepers_own_and_survives_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let all = DynamicConfig::of((1..=3).map(|i| server(i, MemberRole::Participant)));
        prepare(&layout, &assignment(1, all.clone())).unwrap();
        // ZooKeeper's own files: the committed config and a reconfig left half done.
        let own = layout.conf_dir().join("zoo.cfg.dynamic.100000003");
        std::fs::write(&own, all.render_servers()).unwrap();
        std::fs::write(
            layout.conf_dir().join("zoo.cfg.dynamic.next"),
            "server.9=x:1:2\n",
        )
        .unwrap();
        let mut cfg = ZooCfg::parse(&std::fs::read_to_string(layout.zoo_cfg()).unwrap()).unwrap();
        cfg.0
            .insert(DYNAMIC_CONFIG_FILE.into(), own.display().to_string());
        std::fs::write(layout.zoo_cfg(), cfg.render()).unwrap();
        assert_eq!(
            last_config_version(&layout),
            Some(ConfigVersion(0x1_0000_0003))
        );

        let survivor = DynamicConfig {
            version: Some(ConfigVersion(0x1_0000_0004)),
            ..DynamicConfig::of([server(1, MemberRole::Participant)])
        };
        force_config(&layout, &assignment(1, all.clone()), &survivor).unwrap();
        assert_eq!(current_dynamic_config(&layout).unwrap(), survivor);
        assert!(!layout.conf_dir().join("zoo.cfg.dynamic.next").exists());
        assert_eq!(
            last_config_version(&layout),
            Some(ConfigVersion(0x1_0000_0004))
        );
        // The next start keeps it: it lists the server.
        prepare(&layout, &assignment(1, all)).unwrap();
        assert_eq!(current_dynamic_config(&layout).unwrap(), survivor);
        // A config that leaves the server out, or has no version, is refused.
        let unversioned = DynamicConfig::of([server(1, MemberRole::Participant)]);
        assert!(force_config(&layout, &assignment(1, unversioned.clone()), &unversioned).is_err());
    }

    #[test]
    fn a_data_dir_of_another_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let c = DynamicConfig::of([
            server(1, MemberRole::Participant),
            server(2, MemberRole::Participant),
        ]);
        prepare(&layout, &assignment(1, c.clone())).unwrap();
        let err = prepare(&layout, &assignment(2, c)).unwrap_err();
        assert!(matches!(err, NodeError::IdMismatch { .. }), "{err}");
        assert_eq!(read_myid(&layout), Some(ServerId(1)));
    }
}
