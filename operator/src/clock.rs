//! Where the controller's time comes from. Every timing rule reads a
//! [`Clock`] handed in, never `std::time` directly, so tests run them on
//! tokio's paused time: monotonic time is tokio's `Instant` (which a paused
//! runtime moves only on `advance`), and wall time is derived from it in
//! [`PausedClock`], since a paused runtime does not move `SystemTime`.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Monotonic and wall time.
pub trait Clock: Send + Sync + Debug {
    /// Monotonic now (tokio's, so that paused tests move it).
    fn now(&self) -> Instant;
    /// Milliseconds since the Unix epoch.
    fn wall_ms(&self) -> u64;
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The machine's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// Wall time that moves with tokio's monotonic time (for tests on paused
/// time): `wall_ms` is the start's wall time plus the monotonic time since.
#[derive(Debug, Clone, Copy)]
pub struct PausedClock {
    start: Instant,
    start_wall_ms: u64,
}

impl PausedClock {
    /// A clock whose wall time reads `start_wall_ms` now.
    pub fn new(start_wall_ms: u64) -> Self {
        Self {
            start: Instant::now(),
            start_wall_ms,
        }
    }
}

impl Clock for PausedClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_ms(&self) -> u64 {
        self.start_wall_ms + self.start.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_time_moves_with_paused_tokio_time() {
        let clock = PausedClock::new(1_000);
        tokio::time::advance(Duration::from_millis(2_500)).await;
        assert_eq!(clock.wall_ms(), 3_500);
    }
}
