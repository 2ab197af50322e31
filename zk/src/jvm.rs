//! The command line of a ZooKeeper server JVM, and children that die with
//! their parent.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// Where Java and ZooKeeper are: the flags of every command that starts servers.
#[derive(Debug, Clone, clap::Args)]
pub struct JavaArgs {
    /// The `java` binary.
    #[arg(long, default_value = "java")]
    pub java: PathBuf,
    /// ZooKeeper's classpath (Debian's package by default).
    #[arg(
        long,
        default_value = "/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:/etc/zookeeper/conf"
    )]
    pub zookeeper_classpath: String,
}

impl JavaArgs {
    /// What is missing of ZooKeeper, in words, when a `.jar` on the classpath
    /// does not exist (a server would fail to start, later and less clearly).
    pub fn missing_zookeeper(&self) -> Option<String> {
        let missing: Vec<&str> = self
            .zookeeper_classpath
            .split(':')
            .filter(|e| e.ends_with(".jar") && !Path::new(e).exists())
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "--zookeeper-classpath: {} does not exist; install Debian's zookeeper package (scripts/install-deps does) or point the flag at ZooKeeper's jars",
                missing.join(", ")
            )
        })
    }
}

/// How to launch a ZooKeeper server's JVM.
#[derive(Debug, Clone)]
pub struct JvmCommand {
    /// The `java` binary.
    pub java: PathBuf,
    /// ZooKeeper's classpath.
    pub classpath: String,
    /// Heap in MiB.
    pub heap_mb: u32,
    /// Extra JVM flags.
    pub jvm_flags: Vec<String>,
    /// `super:<base64 sha1>` for `superDigest`.
    pub super_digest: String,
}

impl JvmCommand {
    /// `java ... QuorumPeerMain <zoo_cfg>`, logging to `log` (its stdout and
    /// stderr), killed on drop and when its parent dies: a server nobody
    /// supervises must not go on voting.
    pub fn command(
        &self,
        zoo_cfg: &Path,
        log_dir: &Path,
        log: std::fs::File,
    ) -> std::io::Result<Command> {
        let err = log.try_clone()?;
        let mut command = Command::new(&self.java);
        command
            .arg(format!("-Xmx{}m", self.heap_mb))
            .args(&self.jvm_flags)
            .arg(format!(
                "-Dzookeeper.DigestAuthenticationProvider.superDigest={}",
                self.super_digest
            ))
            .arg(format!("-Dzookeeper.log.dir={}", log_dir.display()))
            .arg("-Dzookeeper.root.logger=INFO,CONSOLE")
            .arg("-cp")
            .arg(&self.classpath)
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(zoo_cfg)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true);
        die_with_parent(&mut command, libc::SIGKILL);
        Ok(command)
    }
}

/// Makes the child get `signal` when the process that started it dies.
pub fn die_with_parent(command: &mut Command, signal: libc::c_int) {
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
