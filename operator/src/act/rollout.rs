//! Steps that record a roll-out: a member restarted, a roll-out finished or
//! requested, a TLS stage, a replacement asked for.

use zkop_spec::ValidatedCluster;
use zkop_spec::tls_stage::TlsStage;

use super::{ActError, not_a};
use crate::desired::spec_settings;
use crate::model::{Persisted, RolloutStep};
use crate::plan::Step;

/// Steps of rolling restarts and replacements.
pub(super) fn record_rollout(
    step: &Step,
    s: &mut Persisted,
    spec: &ValidatedCluster,
    now_ms: u64,
) -> Result<String, ActError> {
    let message = match step {
        Step::RestartMember {
            id,
            leader_zxid,
            role,
            left,
        } => {
            let settings = spec_settings(spec, s);
            let m = s
                .members
                .get_mut(id)
                .ok_or_else(|| ActError::Stale(format!("no member {id}")))?;
            m.settings = Some(settings);
            let instance = m.instance.clone();
            s.rollout = Some(RolloutStep {
                member: *id,
                at_ms: now_ms,
                leader_zxid: *leader_zxid,
            });
            format!(
                "rolling restart: member {id} ({role}) on {instance} restarts with the new settings; {left} more after it"
            )
        }
        Step::FinishRollout => {
            s.rollout = None;
            "rolling restart done: every member runs the spec's settings".to_string()
        }
        Step::AdvanceTlsStage { from, to } => {
            if crate::desired::tls_stage(spec, s) != *from {
                return Err(ActError::Stale(format!("TLS is not at {}", from.as_ref())));
            }
            s.tls_stage = Some(*to);
            // Dropping the plaintext port takes a restart with the same keys.
            if *to == TlsStage::SecureOnly {
                s.roll += 1;
            }
            format!("TLS: {} done; next, {}", from.describe(), to.describe())
        }
        Step::BeginRoll => {
            s.roll += 1;
            format!(
                "rolling restart of every member requested (restart generation {})",
                s.roll
            )
        }
        Step::ReplaceInstance { instance } => {
            s.replace.insert(instance.clone());
            format!(
                "replacement of the member on {instance} requested: a new instance joins, then it leaves"
            )
        }
        other => return Err(not_a(other, "roll-out")),
    };
    Ok(message)
}
