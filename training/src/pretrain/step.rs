//! One pre-training step (REFERENCE.md, "Pre-training"): the text masked for MLM, the frames of
//! the second half of the batch swapped for ITM, `L = L_mlm + itm_weight * L_itm`, as
//! burn-train's [`TrainStep`] of [`PretrainModel`].
//!
//! The visual backbone is frozen: it runs on the inner (non-autodiff) backend, so it gets no
//! gradient, no optimizer state and no backward pass, and pre-extracted features give the same
//! numbers. The vocabulary is scored at the chosen positions only (the reference scores every
//! position and ignores the others in its loss: the same loss at a fraction of the cost).

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::backend::AutodiffBackend;
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use rand::SeedableRng;
use rand::rngs::StdRng;
use vidcls_datasets::batcher::{VideoBatch, VisualBatch};
use vidcls_model::VideoPretrainModel;

use super::masking::{MaskedTokens, MlmMasking, itm_labels, itm_pairing};
use super::output::PretrainOutput;
use crate::checkpoint::ReferenceModel;
use crate::loss::cross_entropy;
use crate::loss_scale::{ScalesLoss, scaled_backward};

/// What a pre-training step optimizes besides the model.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainObjective {
    /// The MLM masking rule.
    pub masking: MlmMasking,
    /// Weight of the ITM loss (the reference's 0.3).
    pub itm_weight: f64,
}

/// A pre-training model being trained: burn-train's training model.
#[derive(Module, Debug)]
pub struct PretrainModel<B: Backend> {
    /// The model.
    pub model: VideoPretrainModel<B>,
    /// The masking rule and the loss weights.
    #[module(skip)]
    pub objective: PretrainObjective,
    /// The factor the loss is multiplied by before the backward pass (dynamic loss scaling,
    /// see `loss_scale`; 1 otherwise).
    #[module(skip)]
    pub loss_scale: f32,
}

impl<B: Backend> PretrainModel<B> {
    /// A model to pre-train for `objective`, its loss unscaled.
    pub fn new(model: VideoPretrainModel<B>, objective: PretrainObjective) -> Self {
        PretrainModel {
            model,
            objective,
            loss_scale: 1.0,
        }
    }
}

impl<B: Backend> ScalesLoss for PretrainModel<B> {
    fn with_loss_scale(self, loss_scale: f32) -> Self {
        PretrainModel { loss_scale, ..self }
    }
}

impl<B: Backend> ReferenceModel for PretrainModel<B> {
    fn write_state_dict(
        &self,
        path: &std::path::Path,
    ) -> Result<(), vidcls_model::loader::LoadError> {
        self.model.write_state_dict(path)
    }
}

impl<B: Backend> PretrainModel<B> {
    /// The losses of a batch of videos whose text is already masked.
    ///
    /// # Shapes
    /// - features: the backbone's features, `[batch, frames, num_features]`
    /// - text_mask: `[batch, text_len]`
    /// - masked: the masked ids of a `[batch, text_len]` batch
    pub fn losses(
        &self,
        features: Tensor<B, 3>,
        text_mask: Tensor<B, 2>,
        masked: &MaskedTokens,
    ) -> PretrainOutput<B> {
        let device = features.device();
        let [batch, text_len] = text_mask.dims();
        let pairing = itm_pairing(batch);
        let labels =
            Tensor::<B, 1>::from_data(TensorData::new(itm_labels(&pairing), [batch]), &device);
        let pairing: Vec<i64> = pairing.into_iter().map(|i| i as i64).collect();
        let features = features.select(
            0,
            Tensor::from_data(TensorData::new(pairing, [batch]), &device),
        );
        let encoder = &self.model.encoder;
        let visual = encoder.video_dense.forward(features);
        let input_ids = Tensor::from_data(
            TensorData::new(masked.input_ids.clone(), [batch, text_len]),
            &device,
        );
        // The reference passes no frame mask in pre-training.
        let encoded = encoder
            .two_stream
            .forward(input_ids, text_mask, visual, None);

        let (mlm_loss, mlm_hits) = self.mlm(encoded.text, masked);
        let itm_logits = self.model.itm_head.forward(encoded.pooled).reshape([batch]);
        let itm_hits = itm_logits
            .clone()
            .greater_elem(0.0)
            .equal(labels.clone().greater_elem(0.5))
            .float()
            .sum();
        let itm_loss = binary_cross_entropy_with_logits(itm_logits, labels);
        PretrainOutput {
            loss: mlm_loss.clone() + itm_loss.clone().mul_scalar(self.objective.itm_weight),
            mlm_loss,
            itm_loss,
            mlm_hits,
            mlm_tokens: masked.positions.len(),
            itm_hits,
            videos: batch,
        }
    }

    /// The MLM loss over the chosen positions and the number of them predicted right (both 0
    /// when nothing was chosen).
    fn mlm(&self, text: Tensor<B, 3>, masked: &MaskedTokens) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let device = text.device();
        let chosen = masked.positions.len();
        if chosen == 0 {
            return (Tensor::zeros([1], &device), Tensor::zeros([1], &device));
        }
        let [batch, text_len, hidden] = text.dims();
        let positions: Vec<i64> = masked.positions.iter().map(|&p| p as i64).collect();
        let states = text.reshape([batch * text_len, hidden]).select(
            0,
            Tensor::from_data(TensorData::new(positions, [chosen]), &device),
        );
        let word_embeddings = self
            .model
            .encoder
            .two_stream
            .embeddings
            .word_embeddings
            .weight
            .val();
        let logits = self
            .model
            .mlm_head
            .forward(states.unsqueeze::<3>(), word_embeddings)
            .squeeze_dim::<2>(0);
        let targets = Tensor::<B, 1, Int>::from_data(
            TensorData::new(masked.targets.clone(), [chosen]),
            &device,
        );
        let hits = logits
            .clone()
            .argmax(1)
            .reshape([chosen])
            .equal(targets.clone())
            .float()
            .sum();
        (cross_entropy(logits, targets, 0.0), hits)
    }

    /// The batch's token ids masked with a generator seeded from the backend's: the training
    /// loop seeds the backend per step, so a resumed run masks as the uninterrupted one.
    fn mask(&self, input_ids: Tensor<B, 2, Int>) -> MaskedTokens {
        let device = input_ids.device();
        let draws = Tensor::<B, 1>::random([2], Distribution::Uniform(0.0, 1.0), &device)
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .unwrap_or_default();
        let seed = draws.iter().fold(0u64, |seed, draw| {
            (seed << 32) ^ (draw * f64::from(u32::MAX)) as u64
        });
        let ids = input_ids
            .into_data()
            .convert::<i64>()
            .into_vec::<i64>()
            .unwrap_or_default();
        self.objective
            .masking
            .mask(&ids, &mut StdRng::seed_from_u64(seed))
    }
}

/// Mean binary cross-entropy of `logits` against 0/1 `labels`, computed stably (PyTorch's
/// `BCEWithLogitsLoss`): `max(x, 0) - x y + ln(1 + exp(-|x|))`.
pub fn binary_cross_entropy_with_logits<B: Backend>(
    logits: Tensor<B, 1>,
    labels: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let softplus = logits.clone().abs().neg().exp().log1p();
    (logits.clone().clamp_min(0.0) - logits * labels + softplus).mean()
}

impl<B: AutodiffBackend> PretrainModel<B> {
    /// A training step on a batch whose text is masked by `masked`: the losses and the
    /// gradients of every parameter but the frozen backbone's.
    pub fn step_masked(
        &self,
        batch: VideoBatch<B>,
        masked: &MaskedTokens,
    ) -> TrainOutput<PretrainOutput<B>> {
        let features = match batch.visual {
            VisualBatch::Frames(frames) => Tensor::from_inner(
                self.model
                    .encoder
                    .visual_backbone
                    .valid()
                    .forward(frames.inner()),
            ),
            VisualBatch::Features(features) => features,
        };
        let output = self.losses(features, batch.attention_mask.float(), masked);
        let grads = scaled_backward(output.loss.clone(), self.loss_scale);
        let grads = GradientsParams::from_grads(grads, self);
        TrainOutput {
            grads,
            item: output,
        }
    }
}

impl<B: AutodiffBackend> TrainStep for PretrainModel<B> {
    type Input = VideoBatch<B>;
    type Output = PretrainOutput<B>;

    fn step(&self, batch: VideoBatch<B>) -> TrainOutput<PretrainOutput<B>> {
        let masked = self.mask(batch.input_ids.clone());
        self.step_masked(batch, &masked)
    }
}

impl<B: Backend> InferenceStep for PretrainModel<B> {
    type Input = VideoBatch<B>;
    type Output = PretrainOutput<B>;

    fn step(&self, batch: VideoBatch<B>) -> PretrainOutput<B> {
        let features = match batch.visual {
            VisualBatch::Frames(frames) => self.model.encoder.visual_backbone.forward(frames),
            VisualBatch::Features(features) => features,
        };
        let masked = self.mask(batch.input_ids);
        self.losses(features, batch.attention_mask.float(), &masked)
    }
}
