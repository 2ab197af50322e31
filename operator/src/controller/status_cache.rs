//! The status view, built at most once per pass and shared by everything
//! that shows it (the API, `/metrics`, publishing, the connect-string file,
//! the canary's plots): a change to what it is built from drops it, and it
//! is built again at most every [`VIEW_FRESH`] for the ages it shows, and
//! as soon as a report it counts turns stale.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use zkop_spec::wire::StatusReply;

/// How long a view stays good when nothing it is built from changed: the
/// agents report every second, and ages are shown to a tenth of one.
pub const VIEW_FRESH: Duration = Duration::from_millis(500);

/// The last view built, and when.
#[derive(Default)]
pub struct StatusCache {
    /// Bumped by every change: a view built before one is not kept.
    generation: AtomicU64,
    /// The view, its generation, and until when it holds.
    view: Mutex<Option<(u64, Instant, StatusReply)>>,
}

impl StatusCache {
    /// The view as of `now`: the kept one if nothing changed since it was
    /// built and it has not expired, else the one `build()` gives (with the
    /// instant it would show otherwise, if any), kept until then or for
    /// [`VIEW_FRESH`].
    pub fn get_or_build(
        &self,
        now: Instant,
        build: impl FnOnce() -> (StatusReply, Option<Instant>),
    ) -> StatusReply {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((g, until, view)) = self.lock().as_ref()
            && *g == generation
            && now < *until
        {
            return view.clone();
        }
        let (view, changes_at) = build();
        let until = changes_at.map_or(now + VIEW_FRESH, |t| t.min(now + VIEW_FRESH));
        // Kept only if nothing changed while it was built.
        if self.generation.load(Ordering::Acquire) == generation {
            *self.lock() = Some((generation, until, view.clone()));
        }
        view
    }

    /// Something the view is built from changed.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Instant, StatusReply)>> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(phase: &str) -> (StatusReply, Option<Instant>) {
        let view = StatusReply {
            phase: phase.into(),
            ..StatusReply::default()
        };
        (view, None)
    }

    #[tokio::test(start_paused = true)]
    async fn a_view_is_built_once_until_something_changes_or_it_ages() {
        let cache = StatusCache::default();
        let now = Instant::now();
        assert_eq!(cache.get_or_build(now, || reply("a")).phase, "a");
        assert_eq!(cache.get_or_build(now, || reply("b")).phase, "a");
        cache.invalidate();
        assert_eq!(cache.get_or_build(now, || reply("c")).phase, "c");
        assert_eq!(
            cache.get_or_build(now + VIEW_FRESH, || reply("d")).phase,
            "d"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_view_built_across_a_change_is_not_kept() {
        let cache = StatusCache::default();
        let now = Instant::now();
        let stale = cache.get_or_build(now, || {
            cache.invalidate();
            reply("stale")
        });
        assert_eq!(stale.phase, "stale");
        assert_eq!(cache.get_or_build(now, || reply("fresh")).phase, "fresh");
    }

    #[tokio::test(start_paused = true)]
    async fn a_view_is_built_again_when_what_it_shows_would_change() {
        let cache = StatusCache::default();
        let now = Instant::now();
        let soon = now + Duration::from_millis(10);
        let _ = cache.get_or_build(now, || (reply("a").0, Some(soon)));
        assert_eq!(cache.get_or_build(soon, || reply("b")).phase, "b");
    }
}
