//! Local `zkop-agent` processes, one per instance, each on its own loopback
//! address with its own directory under `instances/<id>/`. Used by the local
//! fleet and by the AWS sandbox's fleet simulator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use super::netns::Namespaces;

/// How to start an agent.
#[derive(Debug, Clone)]
pub struct AgentCommand {
    /// The `zkop-agent` binary.
    pub binary: PathBuf,
    /// The controllers' URLs.
    pub controller_urls: Vec<String>,
    /// Where the agent gets its secrets.
    pub secrets: AgentSecrets,
    /// Each instance in its own network namespace, or all on loopback (`None`).
    pub namespaces: Option<Namespaces>,
    /// With TLS on: the cluster CA's certificate, to check the controller's against.
    pub controller_ca: Option<PathBuf>,
}

/// Where an agent reads the API token and super-user password.
#[derive(Debug, Clone)]
pub enum AgentSecrets {
    /// Files (local mode, and the sandbox without an SSM parameter).
    Files {
        /// The API token file.
        token_file: PathBuf,
        /// The super-user password file.
        password_file: PathBuf,
    },
    /// One SSM SecureString parameter.
    Ssm(String),
}

/// The running agents, by instance id.
#[derive(Debug)]
pub struct AgentProcesses {
    state_dir: PathBuf,
    command: AgentCommand,
    children: BTreeMap<String, Child>,
}

impl AgentProcesses {
    /// No agents yet; instance directories go under `state_dir/instances/`.
    pub fn new(state_dir: &Path, command: AgentCommand) -> Self {
        Self {
            state_dir: state_dir.to_path_buf(),
            command,
            children: BTreeMap::new(),
        }
    }

    /// An instance's directory.
    pub fn instance_dir(state_dir: &Path, id: &str) -> PathBuf {
        state_dir.join("instances").join(id)
    }

    /// Whether an agent runs for `id`.
    pub fn runs(&self, id: &str) -> bool {
        self.children.contains_key(id)
    }

    /// The instances with an agent.
    pub fn ids(&self) -> Vec<String> {
        self.children.keys().cloned().collect()
    }

    /// Starts the agent of instance `id` on `address`; returns its PID.
    pub fn spawn(&mut self, id: &str, address: &str) -> std::io::Result<Option<u32>> {
        let dir = Self::instance_dir(&self.state_dir, id);
        // Private: the server's data, configs and logs.
        zkop_runtime::files::create_private_dir(&dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"))?;
        let mut cmd = match &self.command.namespaces {
            Some(ns) => {
                ns.attach(id, address)?;
                ns.command(id, &self.command.binary)
            }
            None => Command::new(&self.command.binary),
        };
        cmd.arg("--instance")
            .arg(id)
            .arg("--address")
            .arg(address)
            .arg("--data-dir")
            .arg(&dir);
        for url in &self.command.controller_urls {
            cmd.arg("--controller").arg(url);
        }
        if let Some(ca) = &self.command.controller_ca {
            cmd.arg("--controller-ca").arg(ca);
        }
        match &self.command.secrets {
            AgentSecrets::Files {
                token_file,
                password_file,
            } => {
                cmd.arg("--token-file")
                    .arg(token_file)
                    .arg("--super-password-file")
                    .arg(password_file);
            }
            AgentSecrets::Ssm(name) => {
                cmd.arg("--secrets-ssm-parameter").arg(name);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C at the terminal reaches zkop, which
            // stops the agents in order.
            .process_group(0);
        // If zkop dies, its agents stop (and stop their servers) instead of
        // running on unsupervised.
        zkop_zk::jvm::die_with_parent(&mut cmd, libc::SIGTERM);
        let child = cmd.spawn()?;
        let pid = child.id();
        self.children.insert(id.to_string(), child);
        Ok(pid)
    }

    /// Agents that exited on their own since the last call (their servers are
    /// killed too).
    pub fn reap(&mut self) -> Vec<(String, ExitStatus)> {
        let mut gone = Vec::new();
        for (id, child) in self.children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                gone.push((id.clone(), status));
            }
        }
        for (id, _) in &gone {
            self.children.remove(id);
            kill_server_of(&Self::instance_dir(&self.state_dir, id));
            self.detach(id);
        }
        gone
    }

    /// Removes instance `id`'s network namespace, if instances have them.
    fn detach(&self, id: &str) {
        if let Some(ns) = &self.command.namespaces {
            ns.detach(id);
        }
    }

    /// Stops one agent: SIGTERM (it stops its server), SIGKILL after `grace`.
    pub async fn stop(&mut self, id: &str, grace: Duration) {
        if let Some(mut child) = self.children.remove(id) {
            signal(&child, libc::SIGTERM);
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
        kill_server_of(&Self::instance_dir(&self.state_dir, id));
        self.detach(id);
    }

    /// Kills one agent and its server at once (an instance lost abruptly).
    pub async fn kill(&mut self, id: &str) {
        kill_server_of(&Self::instance_dir(&self.state_dir, id));
        if let Some(mut child) = self.children.remove(id) {
            let _ = child.kill().await;
        }
        self.detach(id);
    }

    /// Stops every agent in parallel; returns their instance ids.
    pub async fn stop_all(&mut self, grace: Duration) -> Vec<String> {
        let children: Vec<(String, Child)> =
            std::mem::take(&mut self.children).into_iter().collect();
        for (_, child) in &children {
            signal(child, libc::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + grace;
        let mut ids = Vec::new();
        for (id, mut child) in children {
            if tokio::time::timeout_at(deadline, child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
            kill_server_of(&Self::instance_dir(&self.state_dir, &id));
            self.detach(&id);
            ids.push(id);
        }
        ids
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on our own unreaped child.
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }
}

/// Kills the ZooKeeper server an agent left behind (normally it dies with its
/// agent), checking the PID still is a ZooKeeper server first.
pub fn kill_server_of(instance_dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(instance_dir.join("zookeeper.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if !process_is(pid, "QuorumPeerMain") {
        return None;
    }
    // SAFETY: kill(2) on a PID we checked runs ZooKeeper.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    Some(pid)
}

/// Whether `pid` runs a command line containing `needle` (guards against PID reuse).
pub fn process_is(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(needle))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn an_instance_directory_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut agents = AgentProcesses::new(
            dir.path(),
            AgentCommand {
                binary: PathBuf::from("/bin/true"),
                controller_urls: vec![],
                secrets: AgentSecrets::Ssm("unused".into()),
                namespaces: None,
                controller_ca: None,
            },
        );
        agents.spawn("i-0001", "127.0.0.1").unwrap();
        let instance = AgentProcesses::instance_dir(dir.path(), "i-0001");
        let mode = std::fs::metadata(&instance).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", instance.display());
        agents.stop_all(std::time::Duration::from_secs(5)).await;
    }
}
