//! burn-train metrics of vidcls's training: the competition's seven numbers over the whole
//! validation set, and the training speed in videos per second.

use std::sync::Arc;
use std::time::Instant;

use burn::backend::Flex;
use burn::train::ClassificationOutput;
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Adaptor, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes,
    NumericEntry, SerializedEntry,
};

use crate::metric::{Scores, score};

/// One of the seven numbers of the competition's metric (see [`Scores`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WbdcScore {
    /// Mean of the four F1 scores: the competition's score.
    MeanF1,
    /// Level-1 accuracy.
    Lv1Acc,
    /// Level-2 accuracy.
    Lv2Acc,
    /// Level-1 micro F1.
    Lv1F1Micro,
    /// Level-1 macro F1.
    Lv1F1Macro,
    /// Level-2 micro F1.
    Lv2F1Micro,
    /// Level-2 macro F1.
    Lv2F1Macro,
}

impl WbdcScore {
    /// All seven, the competition's score first.
    pub const ALL: [WbdcScore; 7] = [
        WbdcScore::MeanF1,
        WbdcScore::Lv1Acc,
        WbdcScore::Lv2Acc,
        WbdcScore::Lv1F1Micro,
        WbdcScore::Lv1F1Macro,
        WbdcScore::Lv2F1Micro,
        WbdcScore::Lv2F1Macro,
    ];

    /// The name of the number (as `evaluate --json` and `metrics.csv` write it).
    pub fn name(self) -> &'static str {
        match self {
            WbdcScore::MeanF1 => "mean_f1",
            WbdcScore::Lv1Acc => "lv1_acc",
            WbdcScore::Lv2Acc => "lv2_acc",
            WbdcScore::Lv1F1Micro => "lv1_f1_micro",
            WbdcScore::Lv1F1Macro => "lv1_f1_macro",
            WbdcScore::Lv2F1Micro => "lv2_f1_micro",
            WbdcScore::Lv2F1Macro => "lv2_f1_macro",
        }
    }

    /// The number in `scores`.
    pub fn of(self, scores: &Scores) -> f64 {
        match self {
            WbdcScore::MeanF1 => scores.mean_f1,
            WbdcScore::Lv1Acc => scores.lv1_acc,
            WbdcScore::Lv2Acc => scores.lv2_acc,
            WbdcScore::Lv1F1Micro => scores.lv1_f1_micro,
            WbdcScore::Lv1F1Macro => scores.lv1_f1_macro,
            WbdcScore::Lv2F1Micro => scores.lv2_f1_micro,
            WbdcScore::Lv2F1Macro => scores.lv2_f1_macro,
        }
    }
}

/// The predicted and true level-2 classes of a batch.
#[derive(Debug, Clone)]
pub struct PredictionInput {
    /// Arg-max classes.
    pub predictions: Vec<usize>,
    /// True classes.
    pub labels: Vec<usize>,
}

impl Adaptor<PredictionInput> for ClassificationOutput<Flex> {
    fn adapt(&self) -> PredictionInput {
        let to_usize = |values: Vec<i64>| values.into_iter().map(|v| v as usize).collect();
        let predictions = self.output.clone().argmax(1).into_data().convert::<i64>();
        let labels = self.targets.clone().into_data().convert::<i64>();
        PredictionInput {
            predictions: to_usize(predictions.into_vec().unwrap_or_default()),
            labels: to_usize(labels.into_vec().unwrap_or_default()),
        }
    }
}

/// A [`WbdcScore`] over all the batches of an epoch: macro F1 over the whole set, not an
/// average of per-batch values. Each batch shows the score of the videos seen so far; the
/// epoch's value is the score of the whole set (the intermediate entries carry no weight in
/// burn-train's epoch aggregate, the last one carries all the videos).
#[derive(Clone)]
pub struct WbdcMetric {
    score: WbdcScore,
    name: MetricName,
    predictions: Vec<usize>,
    labels: Vec<usize>,
    current: f64,
}

impl WbdcMetric {
    /// The metric of `score`.
    pub fn new(score: WbdcScore) -> Self {
        WbdcMetric {
            score,
            name: Arc::new(score.name().to_string()),
            predictions: Vec::new(),
            labels: Vec::new(),
            current: f64::NAN,
        }
    }
}

impl Metric for WbdcMetric {
    type Input = PredictionInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: true,
        }
        .into()
    }

    fn update(&mut self, input: &PredictionInput, metadata: &MetricMetadata) -> SerializedEntry {
        self.predictions.extend(&input.predictions);
        self.labels.extend(&input.labels);
        self.current = self.score.of(&score(&self.labels, &self.predictions));
        let complete = metadata.progress.items_processed >= metadata.progress.items_total;
        let entry = NumericEntry::Aggregated {
            aggregated_value: self.current,
            count: if complete { self.labels.len() } else { 0 },
        };
        SerializedEntry::new(
            format!("{:.4} ({} videos)", self.current, self.labels.len()),
            entry.serialize(),
        )
    }

    fn clear(&mut self) {
        self.predictions.clear();
        self.labels.clear();
        self.current = f64::NAN;
    }
}

impl Numeric for WbdcMetric {
    fn value(&self) -> NumericEntry {
        NumericEntry::Value(self.current)
    }

    fn running_value(&self) -> NumericEntry {
        NumericEntry::Aggregated {
            aggregated_value: self.current,
            count: self.labels.len(),
        }
    }
}

/// Videos in a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchVideos(pub usize);

impl Adaptor<BatchVideos> for ClassificationOutput<Flex> {
    fn adapt(&self) -> BatchVideos {
        BatchVideos(self.targets.dims()[0])
    }
}

/// Training speed: videos per second of wall time between consecutive batches (the first
/// batch of an epoch only starts the clock).
#[derive(Clone)]
pub struct VideosPerSecond {
    name: MetricName,
    state: NumericMetricState,
    last: Option<Instant>,
}

impl Default for VideosPerSecond {
    fn default() -> Self {
        VideosPerSecond {
            name: Arc::new("videos/s".to_string()),
            state: NumericMetricState::new(),
            last: None,
        }
    }
}

impl Metric for VideosPerSecond {
    type Input = BatchVideos;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: Some("videos/s".into()),
            higher_is_better: true,
        }
        .into()
    }

    fn update(&mut self, input: &BatchVideos, _metadata: &MetricMetadata) -> SerializedEntry {
        let now = Instant::now();
        let rate = self.last.map_or(f64::NAN, |last| {
            input.0 as f64 / now.duration_since(last).as_secs_f64().max(1e-9)
        });
        self.last = Some(now);
        let format = FormatOptions::new(self.name()).precision(2);
        if rate.is_nan() {
            return SerializedEntry::new(
                "-".into(),
                NumericEntry::Aggregated {
                    aggregated_value: 0.0,
                    count: 0,
                }
                .serialize(),
            );
        }
        self.state.update(rate, 1, format)
    }

    fn clear(&mut self) {
        self.state.reset();
        self.last = None;
    }
}

impl Numeric for VideosPerSecond {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}
