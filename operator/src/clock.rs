//! Where the controller's time comes from. Every timing rule reads a
//! [`Clock`] handed in, never `std::time` directly, so tests run them on
//! tokio's paused time: monotonic time is tokio's `Instant` (which a paused
//! runtime moves only on `advance`), and wall time is derived from it in
//! [`PausedClock`], since a paused runtime does not move `SystemTime`.

use std::fmt::Debug;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// The first instant at or after `at` on a grid of `step` shared by the
/// whole process: the timers of many clusters rounded up to it fire
/// together, one wake-up of the runtime for all of them rather than one
/// each (a controller of 20 idle clusters woke 440 times a second). Never
/// later than `at + step`.
pub fn on_grid(at: Instant, step: Duration) -> Instant {
    // Real time, so never ahead of a paused runtime that starts later.
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(|| Instant::from_std(std::time::Instant::now()));
    grid_point(at, origin, step)
}

/// The first instant at or after `at` on the grid of `step` from `origin`
/// (`at` itself before `origin`).
fn grid_point(at: Instant, origin: Instant, step: Duration) -> Instant {
    let step_ns = step.as_nanos().max(1);
    let Some(since) = at.checked_duration_since(origin) else {
        return at;
    };
    let late = since.as_nanos() % step_ns;
    if late == 0 {
        return at;
    }
    let early = u64::try_from(step_ns - late).unwrap_or(0);
    at + Duration::from_nanos(early)
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
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn timers_rounded_to_the_grid_fire_together_and_never_a_step_late() {
        let step = Duration::from_millis(100);
        let origin = Instant::now();
        let ms = |n| origin + Duration::from_millis(n);
        assert_eq!(grid_point(ms(130), origin, step), ms(200));
        assert_eq!(grid_point(ms(170), origin, step), ms(200));
        assert_eq!(grid_point(ms(200), origin, step), ms(200), "on the grid");
        for n in [1, 37, 99, 101, 250] {
            let t = on_grid(ms(n), step);
            assert!(t >= ms(n) && t < ms(n) + step, "{n} ms");
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(grid_point(origin, Instant::now(), step), origin, "before");
    }

    #[tokio::test(start_paused = true)]
    async fn wall_time_moves_with_paused_tokio_time() {
        let clock = PausedClock::new(1_000);
        tokio::time::advance(Duration::from_millis(2_500)).await;
        assert_eq!(clock.wall_ms(), 3_500);
    }
}
