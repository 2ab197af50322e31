//! The agent's backup jobs: seeding an empty data directory from a backup
//! before the first start, and shipping when it is the shipper.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::info;
use zkop_runtime::backup::Store;
use zkop_runtime::backup::restore::restore_into;
use zkop_spec::wire::{DesiredNodeState, MemberAssignment};

use crate::Agent;
use crate::shipper::{ShipContext, Shipper};

/// How long after a failed restore the next try waits.
const RESTORE_RETRY: Duration = Duration::from_secs(5);

/// Wall-clock now, ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Agent {
    /// Whether the server may start: no restore asked for, the data
    /// directory already holds data (a restore never writes over it), or the
    /// restore succeeded now.
    pub(crate) async fn seeded(&mut self, m: &MemberAssignment) -> bool {
        let Some(r) = &m.restore else {
            return true;
        };
        let data = self.layout.data_dir();
        if data.join("version-2").exists() {
            return true;
        }
        if self
            .restore_tried
            .is_some_and(|t| t.elapsed() < RESTORE_RETRY)
        {
            return false;
        }
        self.restore_tried = Some(Instant::now());
        let result = match Store::open(&r.target).await {
            Ok(store) => restore_into(&store, r.to, &data).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(done) => {
                info!(instance = %self.instance, member = %m.server_id, point = %done.point, zxid = %done.zxid, files = ?done.files, "restored the data directory from the backup");
                true
            }
            Err(e) => {
                self.error(format!("restore from {}: {e}", r.target));
                false
            }
        }
    }

    /// Ships to the backup when this member is the shipper and its server
    /// serves.
    pub(crate) async fn ship(&mut self, d: &DesiredNodeState, m: &MemberAssignment) {
        let Some(order) = &m.backup else {
            self.shipper = None;
            return;
        };
        if self.shipper.as_ref().map(Shipper::order) != Some(order) {
            match Shipper::new(order.clone(), self.args.java.clone()).await {
                Ok(s) => {
                    info!(instance = %self.instance, member = %m.server_id, target = %order.target, "shipping the backup");
                    self.shipper = Some(s);
                }
                Err(e) => {
                    self.error(format!("backup {}: {e}", order.target));
                    return;
                }
            }
        }
        let processed = self
            .probe
            .as_ref()
            .filter(|p| p.serving)
            .and_then(|p| p.zxid);
        let version2 = self.layout.data_dir().join("version-2");
        let endpoint = self.endpoint(m);
        let (Some(shipper), Some(processed)) = (self.shipper.as_mut(), processed) else {
            return;
        };
        if !shipper.due() {
            return;
        }
        let c = ShipContext {
            cluster: &d.cluster,
            epoch: d.epoch,
            instance: &self.instance,
            server_id: m.server_id,
            endpoint: &endpoint,
            processed,
            version2,
            now_ms: now_ms(),
            history_fork: shipper.order().history_fork,
        };
        shipper.tick(&c).await;
    }
}
