//! Data parallelism on one machine (`--devices`): each step's batch is cut into one shard per
//! device, every device runs the model's train step (forward, loss, backward, the adversarial
//! passes) on its shard at the same time, one thread per device, and the gradients are summed
//! on the first device, each weighted by its shard's share of the videos: the sum is then the
//! gradient of the whole batch's mean loss. The optimizer, the EMA and validation stay on the
//! first device. This is burn-train's `MultiDevice` strategy with the optimizer on the main
//! device, done inside our own loop (see `strategy`), which burn's built-in strategies would
//! replace; unlike burn's, a step's batch is split rather than one batch taken per device, so
//! `--batch-size` keeps its meaning whatever the number of devices.
//!
//! What differs from one device: the order of the floating-point sums; with FGM/PGD each
//! device perturbs the embeddings along its own shard's gradient; in pre-training, the MLM
//! tokens, the ITM negatives and the mean losses are drawn and taken per shard. With dropout,
//! the devices draw their masks from Burn's one generator in the order they get to it, so a
//! multi-device run with dropout is not repeatable draw for draw.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::train::{TrainOutput, TrainStep};
use vidcls_datasets::batcher::VideoBatch;
use vidcls_model::kernels::MatmulPrecision;

use crate::strategy::StepOutput;

/// `model`'s train step on `batch`, on the devices `devices` (the first holds the model, the
/// summed gradients and the merged output); one device is `model.step(batch)` itself.
pub fn train_step<B, M>(
    model: &M,
    batch: VideoBatch<B>,
    devices: &[B::Device],
) -> TrainOutput<M::Output>
where
    B: AutodiffBackend,
    M: TrainStep<Input = VideoBatch<B>> + AutodiffModule<B>,
    M::Output: StepOutput + Send,
{
    if devices.len() < 2 {
        return model.step(batch);
    }
    let videos = batch.len().max(1) as f64;
    let shards = batch.shard(devices);
    // The products' precision is per thread: each device's thread runs in the caller's.
    let precision = MatmulPrecision::current();
    let outputs: Vec<(f64, TrainOutput<M::Output>)> = std::thread::scope(|scope| {
        let running: Vec<_> = shards
            .into_iter()
            .zip(devices)
            .map(|(shard, device)| {
                let replica = model.clone();
                scope.spawn(move || {
                    let share = shard.len() as f64 / videos;
                    let step = || replica.fork(device).step(shard);
                    (share, precision.scope(step))
                })
            })
            .collect();
        running
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let (grads, items): (Vec<_>, Vec<_>) = outputs
        .into_iter()
        .map(|(share, output)| ((share, output.grads), output.item))
        .unzip();
    TrainOutput {
        grads: weighted_gradient_sum(grads, model, &devices[0]),
        item: M::Output::merge(items),
    }
}

/// `Σ share · gradient` of every parameter of `model`, on `device`.
fn weighted_gradient_sum<B: AutodiffBackend, M: AutodiffModule<B>>(
    parts: Vec<(f64, GradientsParams)>,
    model: &M,
    device: &B::Device,
) -> GradientsParams {
    let mut visitor = WeightedGradientSum::<B> {
        parts,
        device,
        sum: GradientsParams::new(),
    };
    model.visit(&mut visitor);
    visitor.sum
}

/// Sums the weighted gradients of each parameter it visits.
struct WeightedGradientSum<'a, B: AutodiffBackend> {
    parts: Vec<(f64, GradientsParams)>,
    device: &'a B::Device,
    sum: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for WeightedGradientSum<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let parts: Vec<_> = self
            .parts
            .iter_mut()
            .filter_map(|(share, grads)| {
                let grad = grads.remove::<B::InnerBackend, D>(param.id)?;
                Some((*share, grad.to_device(self.device)))
            })
            .collect();
        if !parts.is_empty() {
            self.sum
                .register::<B::InnerBackend, D>(param.id, weighted_sum(parts));
        }
    }
}

/// `Σ weight · value` on the device of the first value.
///
/// # Panics
/// If `values` is empty.
pub fn weighted_sum<B: Backend, const D: usize>(
    values: impl IntoIterator<Item = (f64, Tensor<B, D>)>,
) -> Tensor<B, D> {
    let mut values = values.into_iter();
    let (weight, first) = values.next().expect("at least one value");
    let device = first.device();
    values.fold(first.mul_scalar(weight), |sum, (weight, value)| {
        sum + value.to_device(&device).mul_scalar(weight)
    })
}
