//! Carries out one step: the I/O a step needs (fleet, ledger) and the new
//! persisted state it leads to. Every step is idempotent given the state it
//! returns: a crash before the state is saved repeats the step, safely.

use zkop_spec::ValidatedCluster;
use zkop_spec::tls_stage::TlsStage;
use zkop_spec::zk::{DynamicConfig, MemberRole, Server, ServerId};

use crate::adapters::{Fleet, FleetError, IdLedger, LedgerError, TakenIds};
use crate::desired::spec_settings;
use crate::model::{MemberRecord, Persisted};
use crate::plan::Step;

mod rollout;
use rollout::record_rollout;
use zkop_spec::wire::Recovery;

/// After a failed reconfig, wait this long before the next one; doubled with
/// every failure in a row, up to [`RECONFIG_RETRY_MAX_MS`].
pub const RECONFIG_RETRY_MS: u64 = 3_000;
/// The longest wait between failing reconfigs.
pub const RECONFIG_RETRY_MAX_MS: u64 = 60_000;

/// The wait after the `failures`-th reconfig failure in a row.
pub fn reconfig_retry_ms(failures: u32) -> u64 {
    RECONFIG_RETRY_MS
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(RECONFIG_RETRY_MAX_MS)
}

/// Why a step could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// The fleet refused or failed (expected; retried with backoff).
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The id ledger failed (expected; retried with backoff).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The step no longer fits the state (expected after a race; re-planned).
    #[error("stale step: {0}")]
    Stale(String),
}

impl ActError {
    /// A short category for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            ActError::Fleet(_) => "fleet",
            ActError::Ledger(_) => "ledger",
            ActError::Stale(_) => "stale",
        }
    }
}

/// What a step did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The state after the step.
    pub state: Persisted,
    /// One line for the event log.
    pub message: String,
}

/// Adopts a committed config: members it dropped that we started are retiring.
fn adopt_config(p: &mut Persisted, config: DynamicConfig) {
    let old = p.config.take();
    let rejoining = p
        .reconfig
        .as_ref()
        .map(|r| r.rejoining.clone())
        .unwrap_or_default();
    for m in p.members.values_mut() {
        let was = m.role_in(old.as_ref()).is_some();
        let is = config.servers.contains_key(&m.id);
        if was && !is && m.initial_config.is_some() && !rejoining.contains(&m.id) {
            m.retiring = true;
        }
    }
    p.config = Some(config);
}

/// `voters [1, 2, 3] observers [4]`.
fn describe(config: &DynamicConfig) -> String {
    let voters: Vec<String> = config.voters().map(|s| s.id.to_string()).collect();
    let observers: Vec<String> = config.observers().map(|s| s.id.to_string()).collect();
    format!(
        "voters [{}] observers [{}]",
        voters.join(", "),
        observers.join(", ")
    )
}

fn ids(servers: &[Server]) -> String {
    let v: Vec<String> = servers
        .iter()
        .map(|s| format!("{}({:?})", s.id, s.role))
        .collect();
    v.join(", ")
}

/// Carries out `step` on `p`.
pub async fn act<F: Fleet, L: IdLedger>(
    step: &Step,
    p: &Persisted,
    spec: &ValidatedCluster,
    fleet: &F,
    ledger: &L,
    now_ms: u64,
) -> Result<Outcome, ActError> {
    let mut s = p.clone();
    let message = match step {
        Step::SetDesiredCapacity { .. }
        | Step::TerminateInstance { .. }
        | Step::AdoptInstance { .. }
        | Step::FenceInstance { .. }
        | Step::CompleteLifecycleAction { .. } => act_on_fleet(step, &mut s, spec, fleet).await?,
        Step::ClaimId { .. } | Step::ForgetMember { .. } => {
            use_ledger(step, &mut s, spec, ledger).await?
        }
        Step::RecordConfig { .. }
        | Step::CompleteReconfig { .. }
        | Step::FailReconfig { .. }
        | Step::Reconfig { .. } => record_reconfig(step, &mut s, now_ms)?,
        Step::Bootstrap { .. } | Step::StartJoiner { .. } | Step::RetireMember { .. } => {
            change_members(step, &mut s, spec)?
        }
        Step::ForceConfig { .. } | Step::DiscardEnsemble { .. } => record_recovery(step, &mut s)?,
        Step::RebuildState { config, members } => rebuild_state(&mut s, config, members, now_ms),
        Step::MarkVoterDown {
            id,
            standby,
            down_for_s,
        } => {
            s.voters_down.insert(*id);
            s.voter_down_config = s.config.as_ref().and_then(|c| c.version);
            format!("voter {id} has not served for {down_for_s}s: standby {standby} takes its vote")
        }
        Step::ClearVoterDown { id } => {
            s.voters_down.remove(id);
            if s.voters_down.is_empty() {
                s.voter_down_config = None;
            }
            format!("voter {id} serves again before the standby's swap began: it keeps its vote")
        }
        Step::AssignShipper { id } => {
            s.shipper = *id;
            match id {
                Some(id) => format!("member {id} ships the backup"),
                None => "no member ships the backup".to_string(),
            }
        }
        Step::RestartMember { .. }
        | Step::FinishRollout
        | Step::BeginRoll
        | Step::AdvanceTlsStage { .. }
        | Step::ReplaceInstance { .. } => record_rollout(step, &mut s, spec, now_ms)?,
    };
    Ok(Outcome { state: s, message })
}

/// A step handed to the wrong group (a bug, not expected).
fn not_a(step: &Step, group: &str) -> ActError {
    ActError::Stale(format!("{} is not a {group} step", step.kind()))
}

/// Steps that ask the fleet.
async fn act_on_fleet<F: Fleet>(
    step: &Step,
    s: &mut Persisted,
    spec: &ValidatedCluster,
    fleet: &F,
) -> Result<String, ActError> {
    let message = match step {
        Step::SetDesiredCapacity { capacity } => {
            fleet.set_desired_capacity(*capacity).await?;
            format!("desired capacity set to {capacity}")
        }
        Step::TerminateInstance { instance } => {
            fleet.terminate(instance).await?;
            format!("instance {instance} terminated")
        }
        Step::AdoptInstance { id } => {
            let m = s
                .members
                .get_mut(id)
                .ok_or_else(|| ActError::Stale(format!("no member {id}")))?;
            fleet.adopt(&m.instance, &spec.name, *id).await?;
            m.adopted = true;
            format!(
                "instance {} tagged as member {id} and protected from scale-in",
                m.instance
            )
        }
        Step::FenceInstance { instance } => {
            fleet.fence(instance).await?;
            format!("instance {instance} fenced (terminated) before recovering the quorum")
        }
        Step::CompleteLifecycleAction { instance } => {
            fleet.complete_termination(instance).await?;
            format!(
                "termination lifecycle hook of {instance} completed: its member is out of the config"
            )
        }
        other => return Err(not_a(other, "fleet")),
    };
    Ok(message)
}

/// Steps that record a reconfig: issued, answered, or a newer config seen.
fn record_reconfig(step: &Step, s: &mut Persisted, now_ms: u64) -> Result<String, ActError> {
    let message = match step {
        Step::RecordConfig { config } => {
            let msg = format!(
                "config version {} recorded: {}",
                config.version.map(|v| v.to_string()).unwrap_or_default(),
                describe(config)
            );
            adopt_config(s, config.clone());
            msg
        }
        Step::CompleteReconfig { seq, config } => {
            let pending = s
                .reconfig
                .clone()
                .filter(|r| r.order.seq == *seq)
                .ok_or_else(|| ActError::Stale(format!("reconfig {seq} is not in flight")))?;
            adopt_config(s, config.clone());
            s.reconfig = None;
            s.reconfig_failures = 0;
            // Promoted at last: a participant now, or out of the config to rejoin.
            s.promote_by_rejoining
                .retain(|id| config.role_of(*id) != Some(MemberRole::Participant));
            format!(
                "reconfig {seq} done ({}): version {}, {}",
                pending.purpose,
                config.version.map(|v| v.to_string()).unwrap_or_default(),
                describe(config)
            )
        }
        Step::FailReconfig { seq, error } => fail_reconfig(s, *seq, error, now_ms),
        Step::Reconfig { pending } => {
            if s.reconfig.is_some() {
                return Err(ActError::Stale("a reconfig is already in flight".into()));
            }
            s.reconfig = Some(pending.clone());
            s.next_seq = pending.order.seq + 1;
            let leaving: Vec<String> = pending
                .order
                .leaving
                .iter()
                .map(|i| i.to_string())
                .collect();
            format!(
                "reconfig {} via {}: {} (joining [{}], leaving [{}])",
                pending.order.seq,
                pending.via,
                pending.purpose,
                ids(&pending.order.joining),
                leaving.join(", ")
            )
        }
        other => return Err(not_a(other, "reconfig")),
    };
    Ok(message)
}

/// A failed reconfig: back off, and remember a promotion ZooKeeper refused
/// so that it is done the other way next time.
fn fail_reconfig(s: &mut Persisted, seq: u64, error: &str, now_ms: u64) -> String {
    let failed = s.reconfig.take();
    s.reconfig_failures += 1;
    let wait = reconfig_retry_ms(s.reconfig_failures);
    s.reconfig_not_before_ms = now_ms + wait;
    // A promotion ZooKeeper refused is done the other way next time.
    let promoted = failed
        .iter()
        .flat_map(|f| &f.order.joining)
        .filter(|j| {
            j.role == MemberRole::Participant
                && s.config.as_ref().and_then(|c| c.role_of(j.id)) == Some(MemberRole::Observer)
        })
        .map(|j| j.id)
        .collect::<Vec<_>>();
    let rejoin = if promoted.is_empty() {
        String::new()
    } else {
        s.promote_by_rejoining.extend(promoted.iter().copied());
        let ids: Vec<String> = promoted.iter().map(ToString::to_string).collect();
        format!(
            "; observers [{}] will leave and rejoin as participants instead",
            ids.join(", ")
        )
    };
    format!(
        "reconfig {seq} failed ({} in a row): {error}; retrying in {}s{rejoin}",
        s.reconfig_failures,
        wait / 1000
    )
}

/// Steps that change members' records: bootstrap, joiners, retirement,
/// a forced config, a discarded ensemble.
fn change_members(
    step: &Step,
    s: &mut Persisted,
    spec: &ValidatedCluster,
) -> Result<String, ActError> {
    let message = match step {
        Step::Bootstrap { config, restore } => {
            if s.ever_bootstrapped {
                return Err(ActError::Stale("already bootstrapped".into()));
            }
            // A fresh ensemble starts with TLS as the spec says.
            s.tls_stage = Some(TlsStage::target(spec));
            let settings = spec_settings(spec, s);
            for id in config.servers.keys() {
                let m = s
                    .members
                    .get_mut(id)
                    .ok_or_else(|| ActError::Stale(format!("no member {id}")))?;
                m.initial_config = Some(config.clone());
                m.settings = Some(settings.clone());
                m.restore = restore.clone();
            }
            s.config = Some(config.clone());
            s.ever_bootstrapped = true;
            s.held_members = true;
            s.pending_restore = None;
            let servers: Vec<Server> = config.servers.values().cloned().collect();
            match restore {
                Some(r) => format!(
                    "bootstrapping an ensemble restored from the backup at {}: {}",
                    r.target,
                    ids(&servers)
                ),
                None => format!("bootstrapping a fresh ensemble: {}", ids(&servers)),
            }
        }
        Step::StartJoiner { id, initial_config } => {
            let settings = spec_settings(spec, s);
            let m = s
                .members
                .get_mut(id)
                .ok_or_else(|| ActError::Stale(format!("no member {id}")))?;
            m.initial_config = Some(initial_config.clone());
            m.settings = Some(settings);
            format!(
                "member {id} on {} starts as a joiner (observer)",
                m.instance
            )
        }
        Step::RetireMember { id } => {
            s.voters_down.remove(id);
            if s.voters_down.is_empty() {
                s.voter_down_config = None;
            }
            let m = s
                .members
                .get_mut(id)
                .ok_or_else(|| ActError::Stale(format!("no member {id}")))?;
            m.retiring = true;
            format!("member {id} on {} is not needed and retires", m.instance)
        }
        other => return Err(not_a(other, "membership")),
    };
    Ok(message)
}

/// Records the members and config a lost state's agents report.
fn rebuild_state(
    s: &mut Persisted,
    config: &DynamicConfig,
    members: &[MemberRecord],
    now_ms: u64,
) -> String {
    s.members = members.iter().map(|m| (m.id, m.clone())).collect();
    s.config = Some(config.clone());
    s.ever_bootstrapped = true;
    // The agents keep the last recovery generation they applied, which the
    // lost state knew: start above any of them.
    s.recovery_generation = s.recovery_generation.max(now_ms);
    let ids: Vec<String> = members
        .iter()
        .map(|m| format!("{} on {}", m.id, m.instance))
        .collect();
    format!(
        "state rebuilt from the agents' reports and ZooKeeper's config version {}: members [{}]",
        config.version.map(|v| v.to_string()).unwrap_or_default(),
        ids.join(", ")
    )
}

/// Steps of a quorum-loss recovery: a forced config, or a discarded ensemble.
fn record_recovery(step: &Step, s: &mut Persisted) -> Result<String, ActError> {
    let message = match step {
        Step::ForceConfig {
            config,
            left_out,
            summary,
            fork,
        } => {
            s.recovery_generation += 1;
            s.history_fork = fork.or(s.history_fork);
            let recovery = Recovery {
                generation: s.recovery_generation,
                config: config.clone(),
            };
            for id in config.servers.keys() {
                let m = s
                    .members
                    .get_mut(id)
                    .ok_or_else(|| ActError::Stale(format!("no member {id}")))?;
                m.recovery = Some(recovery.clone());
                m.initial_config = Some(config.clone());
            }
            // Spare survivors are in the forced config as observers (with
            // the recovery above, so none restarts under the old config):
            // a copy of the data kept, promoted as the ensemble grows back.
            s.reconfig = None;
            adopt_config(s, config.clone());
            debug_assert!(left_out.iter().all(|id| config.servers.contains_key(id)));
            summary.clone()
        }
        Step::DiscardEnsemble { lost, restore } => {
            if s.members
                .values()
                .any(|m| m.role_in(s.config.as_ref()).is_some() && !lost.contains(&m.id))
            {
                return Err(ActError::Stale(
                    "a member of the ensemble is not lost".into(),
                ));
            }
            // Every member goes (their instances are fenced); the next plan
            // forgets them, claims ids for fresh instances and bootstraps.
            for m in s.members.values_mut() {
                m.retiring = true;
                m.recovery = None;
            }
            s.config = None;
            s.reconfig = None;
            s.ever_bootstrapped = false;
            s.held_members = true;
            s.max_zxid_seen = None;
            s.shipper = None;
            s.pending_restore = restore.clone();
            let lost: Vec<String> = lost.iter().map(ServerId::to_string).collect();
            match restore {
                Some(r) => format!(
                    "TOTAL LOSS: no member of the ensemble survived (lost [{}]); healing.onTotalLoss: restore: the ensemble is discarded and a new one is restored from the newest backup point at {}; writes after that point are gone",
                    lost.join(", "),
                    r.target
                ),
                None => format!(
                    "TOTAL LOSS: no member of the ensemble survived (lost [{}]); healing.onTotalLoss: bootstrap: the ensemble is discarded and a fresh, EMPTY one is bootstrapped; all its data is gone",
                    lost.join(", ")
                ),
            }
        }
        other => return Err(not_a(other, "recovery")),
    };
    Ok(message)
}

/// Ids the state records (with their instances) or the config lists.
fn taken_ids(s: &Persisted) -> TakenIds {
    let mut taken: TakenIds = s
        .members
        .values()
        .map(|m| (m.id, Some(m.instance.clone())))
        .collect();
    for id in s.config.iter().flat_map(|c| c.servers.keys()) {
        taken.entry(*id).or_insert(None);
    }
    taken
}

/// Steps that claim or release an id.
async fn use_ledger<L: IdLedger>(
    step: &Step,
    s: &mut Persisted,
    spec: &ValidatedCluster,
    ledger: &L,
) -> Result<String, ActError> {
    let message = match step {
        Step::ClaimId { instance, address } => {
            if s.members.values().any(|m| &m.instance == instance) {
                return Err(ActError::Stale(format!("{instance} already holds an id")));
            }
            let claim = ledger.claim(instance, &taken_ids(s)).await?;
            let id = claim.id;
            if let Some(holder) = s.members.get(&id) {
                // Never overwrite a member: the ledger broke its promise.
                return Err(ActError::Stale(format!(
                    "the id ledger handed out id {id}, which member {id} on {} holds",
                    holder.instance
                )));
            }
            let z = &spec.zookeeper;
            let server = Server {
                id,
                address: address.clone(),
                quorum_port: z.quorum_port,
                election_port: z.election_port,
                role: MemberRole::Observer,
                client_address: address.clone(),
                client_port: crate::desired::tls_stage(spec, s).config_client_port(spec),
            };
            s.members.insert(
                id,
                MemberRecord {
                    id,
                    instance: instance.clone(),
                    server,
                    initial_config: None,
                    retiring: false,
                    adopted: false,
                    recovery: None,
                    settings: None,
                    restore: None,
                },
            );
            let restored = if claim.restored.is_empty() {
                String::new()
            } else {
                let ids: Vec<String> = claim.restored.iter().map(ToString::to_string).collect();
                format!(
                    "; the ledger had lost the entries of members [{}]: re-created for their instances",
                    ids.join(", ")
                )
            };
            if claim.resumed {
                format!(
                    "instance {instance} ({address}) claimed server id {id} again: its earlier claim was never recorded (a controller stopped between claiming and saving){restored}"
                )
            } else {
                format!("instance {instance} ({address}) claimed server id {id}{restored}")
            }
        }
        Step::ForgetMember { id } => {
            ledger.release(*id).await?;
            let m = s.members.remove(id);
            if let Some(m) = &m {
                s.replace.remove(&m.instance);
            }
            format!(
                "member {id} forgotten (instance {} gone), id released",
                m.map(|m| m.instance).unwrap_or_default()
            )
        }
        other => return Err(not_a(other, "ledger")),
    };
    Ok(message)
}
