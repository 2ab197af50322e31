//! How the agent watches its own server: four-letter-word probes, as
//! often as the controller's work needs them, and the last zxid on disk
//! while the server does not serve.

use std::time::{Duration, Instant};

use zkop_zk::Endpoint;

use crate::{Agent, node};

/// How often a steady ensemble's server is probed (`probe_due`).
const STEADY_PROBE: Duration = Duration::from_secs(1);

/// How long a steady ensemble's config is taken as read while only writes
/// move the zxid (`zkop_zk::probe::probe_after`): zkop's own reconfigs are
/// probed closely, and a config changed by hand shows within this.
const STEADY_CONF: Duration = Duration::from_secs(5);

impl Agent {
    /// Reads the last zxid from disk while the server does not serve, at most
    /// every few seconds (logs are preallocated to 64 MB).
    pub(crate) fn refresh_disk_zxid(&mut self) {
        let serving = self.probe.as_ref().is_some_and(|p| p.serving);
        if serving {
            self.disk_zxid = None;
            return;
        }
        let stale = self
            .disk_zxid
            .is_none_or(|(_, at)| at.elapsed() >= Duration::from_secs(5));
        if stale && let Some(z) = node::last_zxid_on_disk(&self.layout) {
            self.disk_zxid = Some((z, Instant::now()));
        }
    }

    /// How soon to step again: every 100 ms while its server runs and does
    /// not serve yet (a roll-out waits on its return), else every 200 ms.
    pub(crate) fn probe_every(&self) -> Duration {
        let starting = self.supervisor.running() && !self.probe.as_ref().is_some_and(|p| p.serving);
        Duration::from_millis(if starting { 100 } else { 200 })
    }

    /// Whether this step probes the server: at every step while the
    /// controller is at work or the server is not serving yet or anew (a
    /// restarted JVM), else once every [`STEADY_PROBE`]. Each probe is a
    /// connection the server accepts (with TLS, a handshake it pays for).
    fn probe_due(&self) -> bool {
        self.closely()
            || !self.probe.as_ref().is_some_and(|p| p.serving)
            || self.answered_pid != self.supervisor.pid()
            || self.probed_at.is_none_or(|at| at.elapsed() >= STEADY_PROBE)
    }

    /// Whether the controller is at work on this ensemble (or has not said).
    fn closely(&self) -> bool {
        self.desired.as_ref().is_none_or(|d| d.probe_closely)
    }

    /// Probes the running server when due, else keeps the last probe.
    pub(crate) async fn probe(&mut self, endpoint: &Endpoint) {
        if !self.supervisor.running() {
            self.probe = None;
            return;
        }
        if self.probe_due() {
            // A config learnt from another JVM (a restart under a forced
            // config) is not taken on trust.
            let last = self
                .probe
                .as_ref()
                .filter(|_| self.answered_pid == self.supervisor.pid());
            let steady =
                !self.closely() && self.conf_at.is_some_and(|at| at.elapsed() < STEADY_CONF);
            let probed = zkop_zk::probe::probe_after(endpoint, last, steady).await;
            let now = Instant::now();
            if let Ok((_, true)) = probed {
                self.conf_at = Some(now);
            }
            self.probe = probed.ok().map(|(report, _)| report);
            self.probed_at = Some(now);
        }
    }
}
