//! A hub network namespace for a test's fleet of namespaced instances
//! (`zkop local up --netns`): it holds the bridge the instances attach to and
//! the address the controller listens on, and the test's own clients run in
//! it. Nothing is added to the root namespace. Names carry a per-run prefix
//! (`zc` and the test process's PID in hex); leftovers of runs whose process is
//! gone are swept first, and everything with this run's prefix is removed when
//! the hub is dropped, also when the test fails.

use std::os::fd::AsRawFd;
use std::process::Command;

/// Where Debian puts iproute2.
const IP: &str = "/usr/sbin/ip";

/// What every run's prefix starts with.
const FAMILY: &str = "zc";

/// The hub of one run.
pub struct Hub {
    /// The run's prefix (`zc1a2b`): namespaces `PREFIX-*`, links `PREFIX*`.
    pub prefix: String,
    /// The instances' network, e.g. `10.200.0.0/24`.
    pub network: String,
    /// The hub's address in it (the controller's API listens there).
    pub address: String,
}

impl Hub {
    /// Creates `PREFIX-hub` with the bridge `PREFIX-br` holding `10.N.0.1/24`,
    /// and a second bridge `PREFIX-cut` with no address (a partition's far
    /// side: links moved there reach each other but not the hub).
    pub fn create(n: u8) -> Hub {
        assert!(
            std::path::Path::new(IP).exists(),
            "{IP} is missing: install iproute2 (scripts/install-deps does)"
        );
        sweep_leftovers();
        let prefix = format!("{FAMILY}{:x}", std::process::id());
        let hub = Hub {
            network: format!("10.{n}.0.0/24"),
            address: format!("10.{n}.0.1"),
            prefix,
        };
        let ns = hub.namespace();
        let br = hub.bridge();
        let cut = hub.cut_bridge();
        let cidr = format!("{}/24", hub.address);
        ip(&["netns", "add", &ns]);
        for args in [
            vec!["-n", &ns, "link", "set", "lo", "up"],
            vec!["-n", &ns, "link", "add", &br, "type", "bridge"],
            vec!["-n", &ns, "addr", "add", &cidr, "dev", &br],
            vec!["-n", &ns, "link", "set", &br, "up"],
            vec!["-n", &ns, "link", "add", &cut, "type", "bridge"],
            vec!["-n", &ns, "link", "set", &cut, "up"],
        ] {
            ip(&args);
        }
        hub
    }

    /// The hub namespace's name.
    pub fn namespace(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// The bridge instances attach to.
    pub fn bridge(&self) -> String {
        zkop::adapters::local::fleet_support::bridge(&self.prefix)
    }

    /// The bridge of a partition's far side.
    pub fn cut_bridge(&self) -> String {
        format!("{}-cut", self.prefix)
    }

    /// Moves the calling thread into the hub's network namespace: sockets it
    /// opens, threads it starts and processes it spawns from then on live there.
    pub fn enter(&self) {
        let path = format!("/run/netns/{}", self.namespace());
        let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns(2) on a namespace file we hold open; it changes only
        // this thread's network namespace.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
    }

    /// `ip ARGS` inside the hub.
    pub fn ip(&self, args: &[&str]) {
        let ns = self.namespace();
        let mut all = vec!["-n", ns.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Cuts instance `id` off: the hub's end of its veth pair goes down.
    pub fn cut(&self, id: &str) {
        self.ip(&["link", "set", &self.link(id), "down"]);
    }

    /// Moves instance `id` to the far side of a partition (it still reaches
    /// the others moved there).
    pub fn isolate(&self, id: &str) {
        self.ip(&["link", "set", &self.link(id), "master", &self.cut_bridge()]);
    }

    /// Undoes `cut` and `isolate`.
    pub fn heal(&self, id: &str) {
        let link = self.link(id);
        self.ip(&["link", "set", &link, "master", &self.bridge()]);
        self.ip(&["link", "set", &link, "up"]);
    }

    fn link(&self, id: &str) -> String {
        zkop::adapters::local::fleet_support::hub_link(&self.prefix, id)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // The instances' namespaces first (their veth pairs go with them),
        // then the hub with its bridges.
        remove_with_prefix(&self.prefix);
    }
}

/// A new hub on `10.N.0.0/24`, this thread in it, and a runtime whose threads
/// start from this thread, so in the hub too.
pub fn hub_and_runtime(n: u8) -> (Hub, tokio::runtime::Runtime) {
    super::require_zookeeper();
    let hub = Hub::create(n);
    hub.enter();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    (hub, rt)
}

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    let out = Command::new(IP).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The named namespaces.
fn namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes every namespace named `PREFIX-*`, the hub last.
fn remove_with_prefix(prefix: &str) {
    let mut mine: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| n.strip_prefix(prefix).is_some_and(|r| r.starts_with('-')))
        .collect();
    mine.sort_by_key(|n| n.ends_with("-hub"));
    for n in mine {
        let _ = Command::new(IP).args(["netns", "del", &n]).output();
    }
}

/// Removes what earlier runs left behind: namespaces of this family whose
/// run's process is gone.
fn sweep_leftovers() {
    let mut prefixes: Vec<String> = namespaces()
        .into_iter()
        .filter_map(|n| {
            let (prefix, _) = n.split_once('-')?;
            let pid = u32::from_str_radix(prefix.strip_prefix(FAMILY)?, 16).ok()?;
            (!super::alive(pid) || pid == std::process::id()).then(|| prefix.to_string())
        })
        .collect();
    // Each run's namespaces share its prefix: remove them once per run.
    prefixes.sort();
    prefixes.dedup();
    for p in prefixes {
        remove_with_prefix(&p);
    }
}
