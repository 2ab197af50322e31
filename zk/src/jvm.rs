//! The command line of a ZooKeeper server JVM, and children that die with
//! their parent.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// Where ZooKeeper releases are installed by default: one directory each,
/// `lib/` (the server's classpath) and `conf/` (its logging).
pub const RELEASES_DIR: &str = "/opt/zookeeper";

/// Where Java and ZooKeeper are: the flags of every command that starts servers.
#[derive(Debug, Clone, clap::Args)]
pub struct JavaArgs {
    /// The `java` binary.
    #[arg(long, default_value = "java")]
    pub java: PathBuf,
    /// Where ZooKeeper releases are installed, one directory each
    /// (`DIR/3.9.5/lib`, `DIR/3.9.5/conf`), as scripts/install-deps and the
    /// AMI put them.
    #[arg(long, env = "ZKOP_ZOOKEEPER_RELEASES", default_value = RELEASES_DIR)]
    pub zookeeper_releases: PathBuf,
    /// The release to run where no spec names one (scratch servers,
    /// benchmarks).
    #[arg(long, default_value = zkop_spec::releases::DEFAULT_VERSION)]
    pub zookeeper_version: String,
    /// A classpath of your own (a custom build): run it whatever release a
    /// spec names, instead of the installed releases.
    #[arg(long)]
    pub zookeeper_classpath: Option<String>,
}

impl JavaArgs {
    /// The installed releases and this root, for tests and tools: `java`
    /// from the PATH, no classpath of its own.
    pub fn installed_at(releases: &Path) -> JavaArgs {
        JavaArgs {
            java: PathBuf::from("java"),
            zookeeper_releases: releases.to_path_buf(),
            zookeeper_version: zkop_spec::releases::DEFAULT_VERSION.to_string(),
            zookeeper_classpath: None,
        }
    }

    /// The classpath of release `version` (`--zookeeper-version` when none
    /// is named), or the classpath of one's own; an error naming what is
    /// missing when that release is not installed here.
    pub fn classpath(&self, version: Option<&str>) -> Result<String, String> {
        if let Some(own) = &self.zookeeper_classpath {
            return Ok(own.clone());
        }
        let version = version.unwrap_or(&self.zookeeper_version);
        let dir = self.zookeeper_releases.join(version);
        if !dir
            .join("lib")
            .join(format!("zookeeper-{version}.jar"))
            .is_file()
        {
            return Err(format!(
                "ZooKeeper {version} is not installed here ({} has no lib/zookeeper-{version}.jar; installed: {}); scripts/install-deps installs the releases zkop knows",
                dir.display(),
                self.installed()
                    .filter(|v| !v.is_empty())
                    .map_or("none".into(), |v| v.join(", "))
            ));
        }
        Ok(format!(
            "{}:{}",
            dir.join("lib").join("*").display(),
            dir.join("conf").display()
        ))
    }

    /// The releases installed here, oldest first; none with a classpath of
    /// one's own (what it runs is not a release zkop can name).
    pub fn installed(&self) -> Option<Vec<String>> {
        if self.zookeeper_classpath.is_some() {
            return None;
        }
        let mut found: Vec<(zkop_spec::releases::Release, String)> =
            std::fs::read_dir(&self.zookeeper_releases)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let release = zkop_spec::releases::Release::parse(&name)?;
                    let jar = e.path().join("lib").join(format!("zookeeper-{name}.jar"));
                    jar.is_file().then_some((release, name))
                })
                .collect();
        found.sort();
        Some(found.into_iter().map(|(_, name)| name).collect())
    }

    /// What is missing of ZooKeeper, in words, when the default release is
    /// not installed (or a `.jar` of one's own classpath does not exist): a
    /// server would fail to start, later and less clearly.
    pub fn missing_zookeeper(&self) -> Option<String> {
        let Some(own) = &self.zookeeper_classpath else {
            return self.classpath(None).err();
        };
        let missing: Vec<&str> = own
            .split(':')
            .filter(|e| e.ends_with(".jar") && !Path::new(e).exists())
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "--zookeeper-classpath: {} does not exist; point the flag at ZooKeeper's jars, or leave it out to run the installed releases (scripts/install-deps)",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A releases directory holding `versions`, each with its jar.
    fn releases(versions: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for v in versions {
            let lib = dir.path().join(v).join("lib");
            std::fs::create_dir_all(&lib).unwrap();
            std::fs::write(lib.join(format!("zookeeper-{v}.jar")), b"").unwrap();
        }
        // Not releases: a stray file and a directory without its jar.
        std::fs::write(dir.path().join("README"), b"").unwrap();
        std::fs::create_dir_all(dir.path().join("3.7.2").join("lib")).unwrap();
        dir
    }

    #[test]
    fn the_installed_releases_are_listed_oldest_first_and_run_by_version() {
        let dir = releases(&["3.9.5", "3.8.6", "3.10.0"]);
        let java = JavaArgs::installed_at(dir.path());
        assert_eq!(
            java.installed(),
            Some(vec!["3.8.6".into(), "3.9.5".into(), "3.10.0".into()])
        );
        let root = dir.path().display();
        assert_eq!(
            java.classpath(Some("3.8.6")),
            Ok(format!("{root}/3.8.6/lib/*:{root}/3.8.6/conf"))
        );
        assert_eq!(
            java.classpath(None),
            Ok(format!("{root}/3.9.5/lib/*:{root}/3.9.5/conf")),
            "the default release"
        );
        assert_eq!(java.missing_zookeeper(), None);
        let missing = java.classpath(Some("3.9.4")).unwrap_err();
        assert!(
            missing.contains("ZooKeeper 3.9.4 is not installed here")
                && missing.contains("installed: 3.8.6, 3.9.5, 3.10.0"),
            "{missing}"
        );
    }

    #[test]
    fn a_classpath_of_ones_own_runs_whatever_the_spec_names_and_lists_no_release() {
        let dir = releases(&["3.9.5"]);
        let java = JavaArgs {
            zookeeper_classpath: Some("/build/zookeeper.jar".into()),
            ..JavaArgs::installed_at(dir.path())
        };
        assert_eq!(
            java.classpath(Some("3.8.6")),
            Ok("/build/zookeeper.jar".into())
        );
        assert_eq!(java.installed(), None);
        assert!(
            java.missing_zookeeper()
                .is_some_and(|m| m.contains("/build/zookeeper.jar does not exist"))
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(
            JavaArgs::installed_at(empty.path())
                .missing_zookeeper()
                .is_some_and(|m| m.contains("installed: none"))
        );
    }
}
