//! What a pre-training step reports, and the dashboard's pre-training metrics: MLM loss and
//! accuracy (on the chosen tokens), ITM loss and accuracy (on the videos).

use std::sync::Arc;

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::Transaction;
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Adaptor, ItemLazy, LossInput, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric,
    NumericAttributes, NumericEntry, SerializedEntry,
};
use serde::{Deserialize, Serialize};

use crate::metrics::BatchVideos;

/// The output of a pre-training step (tensors, read lazily).
#[derive(Debug, Clone)]
pub struct PretrainOutput<B: Backend> {
    /// `mlm_loss + itm_weight * itm_loss`, `[1]`.
    pub loss: Tensor<B, 1>,
    /// Mean cross-entropy over the chosen tokens, `[1]`.
    pub mlm_loss: Tensor<B, 1>,
    /// Mean binary cross-entropy of the matching head, `[1]`.
    pub itm_loss: Tensor<B, 1>,
    /// Chosen tokens predicted right, `[1]`.
    pub mlm_hits: Tensor<B, 1>,
    /// Chosen tokens.
    pub mlm_tokens: usize,
    /// Videos whose match was predicted right, `[1]`.
    pub itm_hits: Tensor<B, 1>,
    /// Videos in the batch.
    pub videos: usize,
}

/// The numbers of a pre-training step (or a sum of steps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PretrainStats {
    /// Total loss.
    pub loss: f64,
    /// MLM loss.
    pub mlm_loss: f64,
    /// ITM loss.
    pub itm_loss: f64,
    /// Chosen tokens predicted right.
    pub mlm_hits: f64,
    /// Chosen tokens.
    pub mlm_tokens: usize,
    /// Videos whose match was predicted right.
    pub itm_hits: f64,
    /// Videos.
    pub videos: usize,
}

impl PretrainStats {
    /// MLM accuracy (0 without chosen tokens).
    pub fn mlm_accuracy(&self) -> f64 {
        self.mlm_hits / self.mlm_tokens.max(1) as f64
    }

    /// ITM accuracy (0 without videos).
    pub fn itm_accuracy(&self) -> f64 {
        self.itm_hits / self.videos.max(1) as f64
    }
}

impl<B: Backend> PretrainOutput<B> {
    /// Reads the numbers.
    pub fn stats(self) -> PretrainStats {
        let values: Vec<f64> = Transaction::default()
            .register(self.loss)
            .register(self.mlm_loss)
            .register(self.itm_loss)
            .register(self.mlm_hits)
            .register(self.itm_hits)
            .execute()
            .into_iter()
            .map(|data| data.convert::<f64>().into_vec::<f64>().unwrap_or_default()[0])
            .collect();
        PretrainStats {
            loss: values[0],
            mlm_loss: values[1],
            itm_loss: values[2],
            mlm_hits: values[3],
            mlm_tokens: self.mlm_tokens,
            itm_hits: values[4],
            videos: self.videos,
        }
    }
}

impl<B: Backend> ItemLazy for PretrainOutput<B> {
    type ItemSync = PretrainStats;

    fn sync(self) -> PretrainStats {
        self.stats()
    }
}

impl Adaptor<LossInput<Flex>> for PretrainStats {
    fn adapt(&self) -> LossInput<Flex> {
        LossInput::new(Tensor::from_data([self.loss as f32], &Default::default()))
    }
}

impl Adaptor<BatchVideos> for PretrainStats {
    fn adapt(&self) -> BatchVideos {
        BatchVideos(self.videos)
    }
}

impl Adaptor<PretrainStats> for PretrainStats {
    fn adapt(&self) -> PretrainStats {
        *self
    }
}

/// One of the pre-training numbers shown on the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PretrainScore {
    /// MLM loss.
    MlmLoss,
    /// MLM accuracy on the chosen tokens.
    MlmAccuracy,
    /// ITM loss.
    ItmLoss,
    /// ITM accuracy.
    ItmAccuracy,
}

impl PretrainScore {
    /// All four.
    pub const ALL: [PretrainScore; 4] = [
        PretrainScore::MlmLoss,
        PretrainScore::MlmAccuracy,
        PretrainScore::ItmLoss,
        PretrainScore::ItmAccuracy,
    ];

    /// The name of the number (as the dashboard and `metrics.csv` show it).
    pub fn name(self) -> &'static str {
        match self {
            PretrainScore::MlmLoss => "mlm_loss",
            PretrainScore::MlmAccuracy => "mlm_acc",
            PretrainScore::ItmLoss => "itm_loss",
            PretrainScore::ItmAccuracy => "itm_acc",
        }
    }

    /// The number in `stats` and its weight (tokens or videos for accuracies, 1 for losses).
    pub fn of(self, stats: &PretrainStats) -> (f64, usize) {
        match self {
            PretrainScore::MlmLoss => (stats.mlm_loss, 1),
            PretrainScore::MlmAccuracy => (stats.mlm_accuracy(), stats.mlm_tokens),
            PretrainScore::ItmLoss => (stats.itm_loss, 1),
            PretrainScore::ItmAccuracy => (stats.itm_accuracy(), stats.videos),
        }
    }
}

/// A [`PretrainScore`] as a burn-train metric.
#[derive(Clone)]
pub struct PretrainMetric {
    score: PretrainScore,
    name: MetricName,
    state: NumericMetricState,
}

impl PretrainMetric {
    /// The metric of `score`.
    pub fn new(score: PretrainScore) -> Self {
        PretrainMetric {
            score,
            name: Arc::new(score.name().to_string()),
            state: NumericMetricState::new(),
        }
    }
}

impl Metric for PretrainMetric {
    type Input = PretrainStats;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        let higher_is_better = matches!(
            self.score,
            PretrainScore::MlmAccuracy | PretrainScore::ItmAccuracy
        );
        NumericAttributes {
            unit: None,
            higher_is_better,
        }
        .into()
    }

    fn update(&mut self, input: &PretrainStats, _metadata: &MetricMetadata) -> SerializedEntry {
        let (value, weight) = self.score.of(input);
        self.state
            .update(value, weight, FormatOptions::new(self.name()).precision(4))
    }

    fn clear(&mut self) {
        self.state.reset();
    }
}

impl Numeric for PretrainMetric {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}
