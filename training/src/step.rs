//! One fine-tuning step: forward, loss, backward, and the adversarial passes (FGM / PGD) on the
//! word-embedding matrix, as burn-train's [`TrainStep`] of [`FinetuneModel`].
//!
//! The perturbation is never written into the model: each adversarial pass looks up the rows of
//! a delta matrix beside the word embeddings (see `BertEmbeddings::forward_perturbed`), so the
//! gradient is the one at the perturbed point and there is nothing to restore.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use vidcls_datasets::batcher::VideoBatch;
use vidcls_model::VideoClassifier;

use crate::batch::ModelInputs;
use crate::checkpoint::ReferenceModel;

use crate::config::Adversarial;
use crate::loss::cross_entropy;

/// What a step optimizes besides the model: the loss and the adversarial training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f64,
    /// Adversarial passes.
    pub adversarial: Adversarial,
}

/// A classifier being fine-tuned: burn-train's training model.
#[derive(Module, Debug)]
pub struct FinetuneModel<B: Backend> {
    /// The classifier.
    pub classifier: VideoClassifier<B>,
    /// The loss and adversarial settings.
    #[module(skip)]
    pub objective: Objective,
}

impl<B: Backend> ReferenceModel for FinetuneModel<B> {
    fn write_state_dict(
        &self,
        path: &std::path::Path,
    ) -> Result<(), vidcls_model::loader::LoadError> {
        self.classifier.write_state_dict(path)
    }
}

/// A labeled batch as model inputs.
struct Inputs<B: Backend> {
    inputs: ModelInputs<B>,
    labels: Tensor<B, 1, Int>,
}

impl<B: Backend> Inputs<B> {
    /// # Panics
    /// If the batch has no labels (the training and validation splits are labeled).
    fn new(batch: VideoBatch<B>) -> Self {
        let mut inputs = ModelInputs::from(batch);
        let labels = inputs
            .labels
            .take()
            .expect("training and validation batches are labeled");
        Inputs { inputs, labels }
    }
}

impl<B: Backend> FinetuneModel<B> {
    /// Logits and loss of a batch whose visual states are already computed, with the
    /// word-embedding matrix perturbed by `word_delta`.
    fn loss(
        &self,
        inputs: &Inputs<B>,
        visual_states: Tensor<B, 3>,
        word_delta: Option<Tensor<B, 2>>,
    ) -> ClassificationOutput<B> {
        let two_stream = &self.classifier.encoder.two_stream;
        let text = two_stream
            .embeddings
            .forward_perturbed(inputs.inputs.input_ids.clone(), word_delta);
        let encoded = two_stream.forward_embedded(
            text,
            inputs.inputs.text_mask.clone(),
            visual_states,
            Some(inputs.inputs.frame_mask.clone()),
        );
        let logits = self.classifier.classify(encoded.pooled);
        let loss = cross_entropy(
            logits.clone(),
            inputs.labels.clone(),
            self.objective.label_smoothing,
        );
        ClassificationOutput::new(loss, logits, inputs.labels.clone())
    }

    /// One forward pass (visual stream included) with the word embeddings perturbed.
    fn forward_loss(
        &self,
        inputs: &Inputs<B>,
        word_delta: Option<Tensor<B, 2>>,
    ) -> ClassificationOutput<B> {
        let visual = self
            .classifier
            .encoder
            .visual_states(inputs.inputs.visual.clone());
        self.loss(inputs, visual, word_delta)
    }
}

impl<B: AutodiffBackend> FinetuneModel<B> {
    /// The gradient of the word-embedding matrix in `grads`.
    fn word_gradient(&self, grads: &B::Gradients) -> Option<Tensor<B::InnerBackend, 2>> {
        self.classifier
            .encoder
            .two_stream
            .embeddings
            .word_embeddings
            .weight
            .grad(grads)
    }

    /// Backward pass of an adversarial forward pass with `delta` (none: unperturbed).
    fn adversarial_backward(
        &self,
        inputs: &Inputs<B>,
        delta: Option<&Tensor<B::InnerBackend, 2>>,
    ) -> B::Gradients {
        let delta = delta.map(|delta| Tensor::from_inner(delta.clone()));
        self.forward_loss(inputs, delta).loss.backward()
    }
}

/// The Frobenius norm of a matrix.
fn frobenius_norm<B: Backend>(matrix: &Tensor<B, 2>) -> f64 {
    matrix
        .clone()
        .powi_scalar(2)
        .sum()
        .sqrt()
        .into_scalar()
        .elem()
}

/// `scale * g / ||g||` (Frobenius norm), or `None` when the norm is 0 or not finite (the
/// reference then skips the attack).
fn normalized_step<B: Backend>(gradient: Tensor<B, 2>, scale: f64) -> Option<Tensor<B, 2>> {
    let norm = frobenius_norm(&gradient);
    (norm != 0.0 && norm.is_finite()).then(|| gradient.mul_scalar(scale / norm))
}

/// `delta` scaled back onto the ball of radius `eps` if it lies outside.
fn project<B: Backend>(delta: Tensor<B, 2>, eps: f64) -> Tensor<B, 2> {
    let norm = frobenius_norm(&delta);
    if norm > eps {
        delta.mul_scalar(eps / norm)
    } else {
        delta
    }
}

impl<B: AutodiffBackend> TrainStep for FinetuneModel<B> {
    type Input = VideoBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: VideoBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        let inputs = Inputs::new(batch);
        let output = self.forward_loss(&inputs, None);
        let grads = output.loss.backward();
        let grads = match self.objective.adversarial {
            Adversarial::None => GradientsParams::from_grads(grads, self),
            Adversarial::Fgm { eps } => {
                let step = self
                    .word_gradient(&grads)
                    .and_then(|g| normalized_step(g, eps));
                let clean = GradientsParams::from_grads(grads, self);
                match step {
                    Some(delta) => {
                        let attacked = self.adversarial_backward(&inputs, Some(&delta));
                        self.sum(clean, GradientsParams::from_grads(attacked, self))
                    }
                    None => clean,
                }
            }
            Adversarial::Pgd { steps, alpha, eps } => {
                let mut gradient = self.word_gradient(&grads);
                let clean = GradientsParams::from_grads(grads, self);
                let mut delta: Option<Tensor<B::InnerBackend, 2>> = None;
                let mut attacked = None;
                for attack in 0..steps {
                    if let Some(step) = gradient.take().and_then(|g| normalized_step(g, alpha)) {
                        let moved = match delta.take() {
                            Some(delta) => delta + step,
                            None => step,
                        };
                        delta = Some(project(moved, eps));
                    }
                    let grads = self.adversarial_backward(&inputs, delta.as_ref());
                    if attack + 1 < steps {
                        gradient = self.word_gradient(&grads);
                    } else {
                        attacked = Some(GradientsParams::from_grads(grads, self));
                    }
                }
                match attacked {
                    Some(attacked) => self.sum(clean, attacked),
                    None => clean,
                }
            }
        };
        TrainOutput {
            grads,
            item: output,
        }
    }
}

impl<B: AutodiffBackend> FinetuneModel<B> {
    /// The element-wise sum of two passes' gradients.
    fn sum(&self, first: GradientsParams, second: GradientsParams) -> GradientsParams {
        let mut accumulator = GradientsAccumulator::<Self>::new();
        accumulator.accumulate(self, first);
        accumulator.accumulate(self, second);
        accumulator.grads()
    }
}

impl<B: Backend> InferenceStep for FinetuneModel<B> {
    type Input = VideoBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: VideoBatch<B>) -> ClassificationOutput<B> {
        let inputs = Inputs::new(batch);
        self.forward_loss(&inputs, None)
    }
}
