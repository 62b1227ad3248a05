//! One training update of a learner: the learning-rate step, the train step (on one device or
//! several, see `data_parallel`) and the optimizer step, which dynamic loss scaling (see
//! `loss_scale`) skips when the gradients overflowed. The training loop, `vidcls bench train`
//! and the parity tests all step through it.

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use burn::train::{InferenceStep, Learner, TrainStep};
use vidcls_datasets::batcher::VideoBatch;

use crate::data_parallel;
use crate::loss_scale::{LossScaler, ScalesLoss};
use crate::strategy::{RunComponents, StepOutput};

/// What an update did.
pub struct Update<O> {
    /// The train step's output (its loss unscaled).
    pub item: O,
    /// Where the gradients overflowed at this loss scale, the optimizer step was skipped.
    pub overflowed_at: Option<f32>,
}

/// One update of `learner` on `batch` (shared out among `devices`), with the losses scaled by
/// `scaler`, if any.
pub fn train_update<B, M>(
    learner: &mut Learner<RunComponents<B, M>>,
    batch: VideoBatch<B>,
    devices: &[B::Device],
    scaler: Option<&mut LossScaler>,
) -> Update<M::Output>
where
    B: AutodiffBackend,
    M: TrainStep<Input = VideoBatch<B>>
        + AutodiffModule<B>
        + ScalesLoss
        + core::fmt::Display
        + 'static,
    M::InnerModule: InferenceStep,
    M::Output: StepOutput + Send,
{
    learner.lr_step();
    let model = learner
        .model()
        .with_loss_scale(scaler.as_ref().map_or(1.0, |scaler| scaler.scale));
    let output = data_parallel::train_step(&model, batch, devices);
    let (grads, overflowed_at) = match scaler {
        None => (Some(output.grads), None),
        Some(scaler) => {
            let scale = scaler.scale;
            let grads = scaler.unscale(output.grads, &model);
            scaler.update(grads.is_none());
            let overflowed_at = grads.is_none().then_some(scale);
            (grads, overflowed_at)
        }
    };
    if let Some(grads) = grads {
        learner.optimizer_step(grads);
    }
    Update {
        item: output.item,
        overflowed_at,
    }
}
