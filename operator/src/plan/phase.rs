//! Where a cluster stands, as status and metrics name it.

/// Where the cluster stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
pub enum Phase {
    /// Never bootstrapped; waiting for instances.
    Pending,
    /// Bootstrapped; the first leader is not there yet.
    Bootstrapping,
    /// Membership equals the spec and every member is healthy.
    Running,
    /// Working toward the spec.
    Reconciling,
    /// No leader: nothing can be reconfigured (yet within `healing.detectAfter`).
    Degraded,
    /// No leader for `healing.detectAfter` with fewer than a majority of the
    /// voters reachable: the quorum is lost.
    QuorumLost,
}

impl Phase {
    /// The phase as `zkop status` and metrics name it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}
