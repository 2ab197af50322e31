//! The safety gate every reconfig passes.

use zkop_spec::zk::{DynamicConfig, Server, ServerId};

/// Whether an incremental reconfig keeps the membership rules: the new config has
/// an odd number of voters (at least one), and both the old and the new config keep
/// a majority of serving voters.
pub fn reconfig_is_safe(
    config: &DynamicConfig,
    joining: &[Server],
    leaving: &[ServerId],
    serving: impl Fn(ServerId) -> bool,
) -> bool {
    let after = config.apply(joining, leaving);
    let voters_after = after.voter_count();
    let serving_before = config.voters().filter(|s| serving(s.id)).count();
    let serving_after = after.voters().filter(|s| serving(s.id)).count();
    voters_after % 2 == 1
        && serving_before >= config.majority()
        && serving_after >= after.majority()
}
