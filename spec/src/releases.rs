//! ZooKeeper releases with known data-loss bugs, named in status and events
//! so that a person upgrades before they bite.

/// The known data-loss bug of ZooKeeper `version` (`3.8.0`, or a longer
/// version string starting with it), if any.
pub fn known_data_loss(version: &str) -> Option<&'static str> {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().ok());
    let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
    const DIFF_SYNC: &str = "ZOOKEEPER-4785: transactions can be lost when a follower syncs by DIFF (fixed in 3.8.4 and 3.9.2)";
    match (major, minor, patch) {
        (3, 8, 0..=3) | (3, 9, 0..=1) => Some(DIFF_SYNC),
        (3, 9, 3) => Some(
            "ZOOKEEPER-4925: a DIFF sync can leave a follower's log with a hole, losing transactions (fixed after 3.9.3)",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_with_known_data_loss_are_named() {
        for v in ["3.8.0", "3.8.3", "3.9.0", "3.9.1-abc, built on x"] {
            assert!(
                known_data_loss(v).is_some_and(|b| b.contains("ZOOKEEPER-4785")),
                "{v}"
            );
        }
        assert!(known_data_loss("3.9.3").is_some_and(|b| b.contains("ZOOKEEPER-4925")));
        for v in ["3.8.4", "3.9.2", "3.9.4", "3.7.2", "garbage", ""] {
            assert_eq!(known_data_loss(v), None, "{v}");
        }
    }
}
