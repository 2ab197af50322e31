//! The steps the planner returns and `act` carries out, one per ZooKeeper,
//! fleet, ledger or state action.

use zkop_spec::InstanceId;
use zkop_spec::backup::RestoreFrom;
use zkop_spec::tls_stage::TlsStage;
use zkop_spec::zk::{DynamicConfig, ServerId, Zxid};

use crate::model::{MemberRecord, PendingReconfig};

/// One thing to do to the fleet, the ledger, the persisted state or ZooKeeper.
#[derive(Debug, Clone, PartialEq, strum::IntoStaticStr, strum::VariantNames)]
#[strum(serialize_all = "snake_case")]
pub enum Step {
    /// A member reports a newer committed config than the one persisted.
    RecordConfig {
        /// The newer config.
        config: DynamicConfig,
    },
    /// The reconfig in flight succeeded.
    CompleteReconfig {
        /// Its seq.
        seq: u64,
        /// The config it produced.
        config: DynamicConfig,
    },
    /// The reconfig in flight failed or went unanswered; re-observe and retry later.
    FailReconfig {
        /// Its seq.
        seq: u64,
        /// Why.
        error: String,
    },
    /// Ask the fleet for this many instances.
    SetDesiredCapacity {
        /// Instances wanted.
        capacity: u32,
    },
    /// Claim the next free server id for an instance.
    ClaimId {
        /// The instance.
        instance: InstanceId,
        /// The address its agent advertises.
        address: String,
    },
    /// Start a fresh ensemble of these servers (all participants).
    Bootstrap {
        /// Seed the (single) voter's data directory from this backup first.
        restore: Option<RestoreFrom>,
        /// The initial config.
        config: DynamicConfig,
    },
    /// Start a member as a joiner: the current config plus itself as an observer.
    StartJoiner {
        /// The member.
        id: ServerId,
        /// Its initial config.
        initial_config: DynamicConfig,
    },
    /// Hand a reconfig order to an agent.
    Reconfig {
        /// The order and where it goes.
        pending: PendingReconfig,
    },
    /// Terminate an instance (its member has left the config, or it has none),
    /// lowering the fleet's desired capacity by one.
    TerminateInstance {
        /// The instance.
        instance: InstanceId,
    },
    /// Tag a member's instance with its cluster and id, and protect it from
    /// scale-in.
    AdoptInstance {
        /// The member.
        id: ServerId,
    },
    /// A member outside the config that is no longer wanted (the spec shrank
    /// before it joined): it stops, and its instance is terminated next.
    RetireMember {
        /// The member.
        id: ServerId,
    },
    /// Let an instance held by a termination lifecycle hook go: its member (if
    /// any) has left the config.
    CompleteLifecycleAction {
        /// The instance.
        instance: InstanceId,
    },
    /// Fence a lost voter off: terminate its instance (it is replaced).
    FenceInstance {
        /// The instance.
        instance: InstanceId,
    },
    /// Restart the survivors of a lost quorum under a config of their own.
    ForceConfig {
        /// The survivors' config, versioned just above the last committed one.
        config: DynamicConfig,
        /// Survivors left out of the vote (an even survivor count): observers
        /// in `config`, kept until the ensemble is back to full strength.
        left_out: Vec<ServerId>,
        /// What the event says: survivors, their zxids, what may be lost.
        summary: String,
        /// The newest transaction a chosen survivor holds: the live history
        /// goes on from it, and what the lost voters had after it is gone.
        fork: Option<Zxid>,
    },
    /// Drop a member whose instance is gone and that is no longer in the config,
    /// releasing its id.
    ForgetMember {
        /// The member.
        id: ServerId,
    },
    /// Restart one member under the spec's settings (a rolling restart).
    RestartMember {
        /// The member.
        id: ServerId,
        /// The leader's zxid now: the member must reach it before the next.
        leader_zxid: Option<Zxid>,
        /// Its role, for the event.
        role: String,
        /// Members still to restart after it.
        left: usize,
    },
    /// `zkop roll`: raise the restart generation so every member restarts.
    BeginRoll,
    /// `zkop replace`: record that the member on this instance is replaced.
    ReplaceInstance {
        /// The instance.
        instance: InstanceId,
    },
    /// Hand the backup's shipping to this member (`None`: to no one).
    AssignShipper {
        /// The member.
        id: Option<ServerId>,
    },
    /// The last member of a rolling restart serves again: the roll-out is done.
    FinishRollout,
    /// A voter has not served for `healing.voterDownAfter` while a standby
    /// is ready: it is treated as dead, and its vote goes to the standby.
    MarkVoterDown {
        /// The voter.
        id: ServerId,
        /// The standby that takes its vote.
        standby: ServerId,
        /// How long it has not served, in seconds (for the event).
        down_for_s: u64,
    },
    /// A voter marked down serves again before the standby's swap began
    /// (the config is the one it was marked under): it keeps its vote.
    ClearVoterDown {
        /// The voter.
        id: ServerId,
    },
    /// Turning TLS on or off: every server runs the current stage, so move
    /// to the next (its settings roll out next; the last one restarts all).
    AdvanceTlsStage {
        /// The stage the servers are at.
        from: TlsStage,
        /// The next stage.
        to: TlsStage,
    },
    /// No member survived and `healing.onTotalLoss` is `bootstrap` or
    /// `restore`: give the lost ensemble up, so that a fresh one (empty, or
    /// restored from the backup) is bootstrapped next.
    DiscardEnsemble {
        /// The backup the next bootstrap restores (`onTotalLoss: restore`).
        restore: Option<RestoreFrom>,
        /// The lost members (all fenced).
        lost: Vec<ServerId>,
    },
    /// The state was lost while the ensemble runs: record the members and
    /// the config its agents report.
    RebuildState {
        /// The config a majority of its voters serve under.
        config: DynamicConfig,
        /// The members found serving it.
        members: Vec<MemberRecord>,
    },
}

impl Step {
    /// A short name for logs and metrics (`record_config`); every name is in
    /// [`strum::VariantNames::VARIANTS`].
    pub fn kind(&self) -> &'static str {
        self.into()
    }
}
