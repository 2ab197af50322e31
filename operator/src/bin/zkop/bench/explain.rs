//! `zkop bench --explain` and `--runs N`: where each zkop run spent its
//! time (the controller's steps, each with its start after the user's
//! action and how long it took), and the median of several runs.

use serde::Serialize;
use zkop_spec::wire::Event;

use super::{Figure, round};

/// One controller step (or event) during an operation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepTime {
    /// Seconds from the user's action to the step's start.
    pub at_seconds: f64,
    /// The step's kind (`launch`, `reconfig`, `force_config`, ...).
    pub kind: String,
    /// How long the step itself took (none: an event, not a step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_seconds: Option<f64>,
    /// What the controller said it did.
    pub message: String,
}

/// The events stamped from `from_ms` to `until_ms`, as offsets from `from_ms`.
pub fn steps_between(events: &[Event], from_ms: u64, until_ms: u64) -> Vec<StepTime> {
    events
        .iter()
        .filter(|e| e.at_ms >= from_ms && e.at_ms <= until_ms)
        .map(|e| StepTime {
            at_seconds: round((e.at_ms - from_ms) as f64 / 1000.0),
            kind: e.kind.clone(),
            took_seconds: e.took_ms.map(|t| round(t as f64 / 1000.0)),
            message: e.message.clone(),
        })
        .collect()
}

/// The median of `xs` (the middle one; of two middles, their mean).
pub(super) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => 0.0,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// One row per operation from several runs of the same operations: the
/// median zkop and hand times, their ratio, and every run's pair; the
/// steps and details of the run nearest the median.
pub fn medians(runs: Vec<Vec<Figure>>) -> Vec<Figure> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    (0..first.len())
        .filter_map(|i| {
            let same: Vec<&Figure> = runs.iter().filter_map(|r| r.get(i)).collect();
            let zkop = median(same.iter().map(|f| f.zkop_seconds).collect());
            let hand = median(same.iter().map(|f| f.hand_seconds).collect());
            let nearest = same.iter().min_by(|a, b| {
                (a.zkop_seconds - zkop)
                    .abs()
                    .total_cmp(&(b.zkop_seconds - zkop).abs())
            })?;
            Some(Figure {
                zkop_seconds: round(zkop),
                hand_seconds: round(hand),
                ratio: round(zkop / hand.max(f64::EPSILON)),
                runs: same
                    .iter()
                    .map(|f| [f.zkop_seconds, f.hand_seconds])
                    .collect(),
                ..(*nearest).clone()
            })
        })
        .collect()
}

/// The steps under a row, indented, from the user's action (for a quorum
/// loss, from the kill).
pub fn render_steps(f: &Figure) -> String {
    let mut out = String::new();
    for s in &f.steps {
        let took = s
            .took_seconds
            .map(|t| format!(" ({t:.2} s)"))
            .unwrap_or_default();
        out.push_str(&format!(
            "    +{:>6.2} s  {}{took}: {}\n",
            s.at_seconds, s.kind, s.message
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(zkop: f64, hand: f64) -> Figure {
        Figure {
            operation: "op".into(),
            voters: 3,
            zkop_seconds: zkop,
            hand_seconds: hand,
            ratio: zkop / hand,
            details: Default::default(),
            steps: Vec::new(),
            runs: Vec::new(),
        }
    }

    #[test]
    fn several_runs_give_each_operation_its_median_and_every_run() {
        let runs = vec![
            vec![figure(2.0, 1.0)],
            vec![figure(9.0, 1.2)],
            vec![figure(2.4, 2.0)],
        ];
        let rows = medians(runs);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].zkop_seconds, 2.4);
        assert_eq!(rows[0].hand_seconds, 1.2);
        assert_eq!(rows[0].ratio, 2.0);
        assert_eq!(rows[0].runs, vec![[2.0, 1.0], [9.0, 1.2], [2.4, 2.0]]);
    }

    #[test]
    fn steps_are_the_events_of_the_operation_as_offsets_from_the_action() {
        let e = |at_ms, kind: &str, took_ms| Event {
            at_ms,
            kind: kind.into(),
            message: "m".into(),
            took_ms,
        };
        let events = [
            e(900, "before", None),
            e(1250, "launch", Some(40)),
            e(4000, "after", None),
        ];
        let steps = steps_between(&events, 1000, 3000);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].at_seconds, 0.25);
        assert_eq!(steps[0].took_seconds, Some(0.04));
    }
}
