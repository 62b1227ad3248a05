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
use crate::loss_scale::{ScalesLoss, scaled_backward};

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
    /// The factor every pass's loss is multiplied by before its backward pass (dynamic loss
    /// scaling, see `loss_scale`; 1 otherwise).
    #[module(skip)]
    pub loss_scale: f32,
}

impl<B: Backend> FinetuneModel<B> {
    /// A classifier to fine-tune for `objective`, its losses unscaled.
    pub fn new(classifier: VideoClassifier<B>, objective: Objective) -> Self {
        FinetuneModel {
            classifier,
            objective,
            loss_scale: 1.0,
        }
    }
}

impl<B: Backend> ScalesLoss for FinetuneModel<B> {
    fn with_loss_scale(self, loss_scale: f32) -> Self {
        FinetuneModel { loss_scale, ..self }
    }
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
        self.loss(inputs, self.visual_states(inputs), word_delta)
    }

    /// The visual stream's output (Swin + `video_dense`, or `video_dense` of features).
    fn visual_states(&self, inputs: &Inputs<B>) -> Tensor<B, 3> {
        self.classifier
            .encoder
            .visual_states(inputs.inputs.visual.clone())
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

    /// Backward pass of an adversarial forward pass with `delta` (none: unperturbed) from the
    /// shared visual states, and the gradient those states received.
    fn adversarial_backward(
        &self,
        inputs: &Inputs<B>,
        visual: &SharedVisual<B>,
        delta: Option<&Tensor<B::InnerBackend, 2>>,
    ) -> (B::Gradients, Option<Tensor<B::InnerBackend, 3>>) {
        let delta = delta.map(|delta| Tensor::from_inner(delta.clone()));
        let loss = self.loss(inputs, visual.leaf.clone(), delta).loss;
        let grads = scaled_backward(loss, self.loss_scale);
        let visual_gradient = visual.leaf.grad(&grads);
        (grads, visual_gradient)
    }
}

/// The visual stream of a step with adversarial passes, computed once.
///
/// The perturbation touches only the word embeddings, so the visual stream's activations are
/// the same in every pass of a step. Each pass starts from `leaf` (the states, detached), and
/// the gradients the passes send into the states are summed and sent through the visual
/// stream in one backward pass: the same gradients as one backward pass per forward pass
/// (by linearity), without the repeated Swin forward and backward passes.
struct SharedVisual<B: AutodiffBackend> {
    /// The states with the visual stream's graph.
    states: Tensor<B, 3>,
    /// The same values, detached: where each pass starts.
    leaf: Tensor<B, 3>,
}

impl<B: AutodiffBackend> SharedVisual<B> {
    fn new(states: Tensor<B, 3>) -> Self {
        let leaf = states.clone().detach().require_grad();
        SharedVisual { states, leaf }
    }

    /// The visual stream's parameter gradients for the sum of the passes' `gradients` of the
    /// states (none when no pass reached them, e.g. with no visual parameter to train).
    fn backward(self, gradients: Vec<Tensor<B::InnerBackend, 3>>) -> Option<B::Gradients> {
        let upstream = gradients
            .into_iter()
            .reduce(|sum, gradient| sum + gradient)?;
        let surrogate = (self.states * Tensor::from_inner(upstream)).sum();
        Some(surrogate.backward())
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
        if self.objective.adversarial == Adversarial::None {
            let output = self.forward_loss(&inputs, None);
            let grads = scaled_backward(output.loss.clone(), self.loss_scale);
            let grads = GradientsParams::from_grads(grads, self);
            return TrainOutput {
                grads,
                item: output,
            };
        }
        let visual = SharedVisual::new(self.visual_states(&inputs));
        let output = self.loss(&inputs, visual.leaf.clone(), None);
        let grads = scaled_backward(output.loss.clone(), self.loss_scale);
        let mut visual_gradients: Vec<_> = visual.leaf.grad(&grads).into_iter().collect();
        let mut gradient = self.word_gradient(&grads);
        let mut total = GradientsParams::from_grads(grads, self);
        // FGM is one attack step of size eps with nothing to project; PGD takes `steps`, and
        // only the last one's gradients are kept (the reference zeroes the others).
        let (steps, alpha, eps) = match self.objective.adversarial {
            Adversarial::Fgm { eps } => (1, eps, None),
            Adversarial::Pgd { steps, alpha, eps } => (steps, alpha, Some(eps)),
            Adversarial::None => unreachable!("handled above"),
        };
        let mut delta: Option<Tensor<B::InnerBackend, 2>> = None;
        for attack in 0..steps {
            let step = gradient.take().and_then(|g| normalized_step(g, alpha));
            match (step, eps) {
                (Some(step), Some(eps)) => {
                    let moved = match delta.take() {
                        Some(delta) => delta + step,
                        None => step,
                    };
                    delta = Some(project(moved, eps));
                }
                (Some(step), None) => delta = Some(step),
                // FGM skips its attack when the gradient's norm is 0 (as the reference).
                (None, None) => break,
                (None, Some(_)) => {}
            }
            let (grads, visual_gradient) =
                self.adversarial_backward(&inputs, &visual, delta.as_ref());
            if attack + 1 < steps {
                gradient = self.word_gradient(&grads);
            } else {
                visual_gradients.extend(visual_gradient);
                total = self.sum(total, GradientsParams::from_grads(grads, self));
            }
        }
        if let Some(grads) = visual.backward(visual_gradients) {
            total = self.sum(total, GradientsParams::from_grads(grads, self));
        }
        TrainOutput {
            grads: total,
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
