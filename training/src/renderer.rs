//! The training display when stdout is not a terminal (a log file, CI, a pipe): one plain line
//! every few steps with the latest metric values and an estimate of the time left. (In a
//! terminal burn-train's dashboard is used instead.)

use std::collections::HashMap;
use std::time::Instant;

use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};

/// Prints a line every `every` training iterations (see the module documentation).
pub struct PlainRenderer {
    every: usize,
    names: HashMap<MetricId, String>,
    latest: Vec<(String, f64)>,
    started: Instant,
    first_fraction: Option<f64>,
}

impl PlainRenderer {
    /// A renderer printing every `every` iterations (at least 1).
    pub fn new(every: usize) -> Self {
        PlainRenderer {
            every: every.max(1),
            names: HashMap::new(),
            latest: Vec::new(),
            started: Instant::now(),
            first_fraction: None,
        }
    }

    /// The share of the whole training done at `item`.
    fn fraction(item: &TrainingProgress) -> f64 {
        let epochs = item.global_progress.items_total.max(1) as f64;
        let epoch = item.global_progress.items_processed.saturating_sub(1) as f64;
        let within = item.progress.as_ref().map_or(0.0, |progress| {
            progress.items_processed as f64 / progress.items_total.max(1) as f64
        });
        ((epoch + within) / epochs).min(1.0)
    }
}

/// `1h02m`, `5m07s` or `42s`.
pub fn format_duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0).round() as u64;
    match (seconds / 3600, (seconds % 3600) / 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

impl MetricsRendererTraining for PlainRenderer {
    fn update_train(&mut self, state: MetricState) {
        let MetricState::Numeric(entry, value) = state else {
            return;
        };
        let Some(name) = self.names.get(&entry.metric_id) else {
            return;
        };
        let value = match value {
            NumericEntry::Value(value) => value,
            NumericEntry::Aggregated {
                aggregated_value, ..
            } => aggregated_value,
        };
        match self.latest.iter_mut().find(|(known, _)| known == name) {
            Some((_, latest)) => *latest = value,
            None => self.latest.push((name.clone(), value)),
        }
    }

    fn update_valid(&mut self, _state: MetricState) {}

    fn render_train(&mut self, item: TrainingProgress, _progress: Vec<ProgressType>) {
        let iteration = item.iteration.unwrap_or(0);
        if !iteration.is_multiple_of(self.every) {
            return;
        }
        let fraction = Self::fraction(&item);
        let first = *self.first_fraction.get_or_insert(fraction);
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if fraction > first {
            format_duration(elapsed / (fraction - first) * (1.0 - fraction))
        } else {
            "-".into()
        };
        let metrics: Vec<String> = self
            .latest
            .iter()
            .filter(|(_, value)| value.is_finite())
            .map(|(name, value)| format!("{name} {value:.4}"))
            .collect();
        println!(
            "epoch {}/{} step {iteration} ({:.1}%) {} ETA {eta}",
            item.global_progress.items_processed,
            item.global_progress.items_total,
            100.0 * fraction,
            metrics.join(" "),
        );
    }

    fn render_valid(&mut self, _item: TrainingProgress, _progress: Vec<ProgressType>) {}
}

impl MetricsRendererEvaluation for PlainRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}

    fn render_test(&mut self, _item: EvaluationProgress, _progress: Vec<ProgressType>) {}
}

impl MetricsRenderer for PlainRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names.insert(definition.metric_id, definition.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(42.4), "42s");
        assert_eq!(format_duration(307.0), "5m07s");
        assert_eq!(format_duration(3720.0), "1h02m");
    }
}
