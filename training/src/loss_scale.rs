//! Dynamic loss scaling for training with f16 products, as PyTorch's `torch.amp.GradScaler`.
//!
//! f16 keeps 5 exponent bits: gradients below about 6e-8 round to 0 on their way back through
//! an f16 product, and small ones lose their low bits. The step multiplies each of its losses
//! by the scale before the backward pass (so every gradient is that much larger inside the
//! products), and the update divides the summed gradients by it again. Where a gradient
//! overflowed (inf or NaN), the optimizer step is skipped and the scale halved; after
//! `growth_interval` steps in a row without overflow it doubles. The rule and its defaults
//! are GradScaler's (initial scale 65536, factors 2 and 1/2, interval 2000).

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

/// GradScaler's initial scale.
pub const DEFAULT_INITIAL_SCALE: f32 = 65536.0;
/// GradScaler's steps without overflow before the scale grows.
pub const DEFAULT_GROWTH_INTERVAL: usize = 2000;
const GROWTH_FACTOR: f32 = 2.0;
const BACKOFF_FACTOR: f32 = 0.5;

/// The state of dynamic loss scaling (saved in a run's resume points).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    /// The factor the losses are multiplied by before the backward passes.
    pub scale: f32,
    /// Steps in a row whose gradients were finite, since the scale last changed.
    pub growth_tracker: usize,
    /// Steps in a row without overflow after which the scale doubles.
    pub growth_interval: usize,
}

impl LossScaler {
    /// Scaling from `scale`, with GradScaler's growth interval.
    pub fn new(scale: f32) -> Self {
        LossScaler {
            scale,
            growth_tracker: 0,
            growth_interval: DEFAULT_GROWTH_INTERVAL,
        }
    }

    /// Records a step's outcome (GradScaler's `update`): halves the scale after an overflow,
    /// doubles it (where the result is finite) after `growth_interval` steps without one.
    pub fn update(&mut self, overflowed: bool) {
        if overflowed {
            self.scale *= BACKOFF_FACTOR;
            self.growth_tracker = 0;
            return;
        }
        self.growth_tracker += 1;
        if self.growth_tracker >= self.growth_interval {
            let grown = self.scale * GROWTH_FACTOR;
            if grown.is_finite() {
                self.scale = grown;
            }
            self.growth_tracker = 0;
        }
    }

    /// The gradients of `model`'s parameters in `grads` (computed from losses multiplied by
    /// the scale) divided by the scale, or `None` if any of them is not finite.
    ///
    /// The check reads one number per step: the sum of every gradient times 0, which is 0 if
    /// all are finite and NaN otherwise (inf · 0 and NaN · 0 are NaN), and cannot overflow.
    pub fn unscale<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
        grads: GradientsParams,
        model: &M,
    ) -> Option<GradientsParams> {
        let mut visitor = Unscale::<B> {
            factor: 1.0 / self.scale as f64,
            grads,
            total: None,
        };
        model.visit(&mut visitor);
        let total: f64 = visitor
            .total
            .map_or(0.0, |total| total.into_scalar().elem());
        total.is_finite().then_some(visitor.grads)
    }
}

/// Divides the gradients of the parameters it visits by the scale and sums them times 0.
struct Unscale<B: AutodiffBackend> {
    factor: f64,
    grads: GradientsParams,
    total: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Unscale<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) else {
            return;
        };
        let grad = grad.mul_scalar(self.factor);
        let sum = grad.clone().mul_scalar(0.0).sum();
        self.total = Some(match self.total.take() {
            Some(total) => total + sum,
            None => sum,
        });
        self.grads.register::<B::InnerBackend, D>(param.id, grad);
    }
}

/// A training model whose train step multiplies its losses by a factor before the backward
/// passes (1: unscaled).
pub trait ScalesLoss {
    /// The model with its losses scaled by `scale`.
    fn with_loss_scale(self, scale: f32) -> Self;
}

/// The gradients of `loss * scale` (no multiplication where `scale` is 1).
pub fn scaled_backward<B: AutodiffBackend>(loss: Tensor<B, 1>, scale: f32) -> B::Gradients {
    if scale == 1.0 {
        loss.backward()
    } else {
        loss.mul_scalar(scale).backward()
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Distribution;
    use vidcls_model::kernels::{MatmulPrecision, composed_linear};

    use super::*;

    type B = Autodiff<Flex>;

    #[test]
    fn the_scale_halves_on_overflow_and_doubles_after_the_interval() {
        let mut scaler = LossScaler {
            growth_interval: 2,
            ..LossScaler::new(8.0)
        };
        scaler.update(true);
        assert_eq!((scaler.scale, scaler.growth_tracker), (4.0, 0));
        scaler.update(false);
        assert_eq!((scaler.scale, scaler.growth_tracker), (4.0, 1));
        scaler.update(false);
        assert_eq!((scaler.scale, scaler.growth_tracker), (8.0, 0));
        let mut huge = LossScaler {
            growth_interval: 1,
            ..LossScaler::new(f32::MAX)
        };
        huge.update(false);
        assert_eq!(huge.scale, f32::MAX, "a scale that would overflow stays");
    }

    /// The weight gradient of a linear layer whose products run in f16 and whose loss is
    /// `1e-9 * sum(output)`, with the loss scaled by `scale`, unscaled.
    fn weight_gradient(layer: &Linear<B>, input: &Tensor<B, 2>, scale: f32) -> Vec<f32> {
        let output = composed_linear(input.clone(), layer.weight.val(), None);
        let grads = scaled_backward(output.sum().mul_scalar(1e-9), scale);
        let grads = GradientsParams::from_grads(grads, layer);
        LossScaler::new(scale)
            .unscale::<B, _>(grads, layer)
            .expect("finite gradients")
            .get::<Flex, 2>(layer.weight.id)
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap()
    }

    /// Gradients of 1e-9 vanish in f16 (its smallest number is about 6e-8): without scaling,
    /// the f16 product's backward pass returns zeros; with GradScaler's 65536 they come back
    /// as the f32 gradients to f16's precision.
    #[test]
    fn scaling_keeps_small_gradients_from_vanishing_in_f16() {
        let device = Default::default();
        let layer = LinearConfig::new(16, 8).init::<B>(&device);
        let input = Tensor::<B, 2>::random([4, 16], Distribution::Uniform(0.5, 1.0), &device);
        let exact = weight_gradient(&layer, &input, 1.0);
        MatmulPrecision::F16.scope(|| {
            let unscaled = weight_gradient(&layer, &input, 1.0);
            assert!(unscaled.iter().all(|&value| value == 0.0), "{unscaled:?}");
            let scaled = weight_gradient(&layer, &input, DEFAULT_INITIAL_SCALE);
            for (scaled, exact) in scaled.iter().zip(&exact) {
                assert!(
                    (scaled - exact).abs() <= 2e-3 * exact.abs(),
                    "{scaled} vs {exact}"
                );
            }
        });
    }

    #[test]
    fn gradients_that_overflowed_are_not_unscaled() {
        let device = Default::default();
        let layer = LinearConfig::new(4, 2).init::<B>(&device);
        let input = Tensor::<B, 2>::from_floats([[1.0, 2.0, 3.0, f32::INFINITY]], &device);
        let output = composed_linear(
            input,
            layer.weight.val(),
            layer.bias.as_ref().map(|b| b.val()),
        );
        let grads = GradientsParams::from_grads(scaled_backward(output.sum(), 4.0), &layer);
        assert!(
            LossScaler::new(4.0)
                .unscale::<B, _>(grads, &layer)
                .is_none()
        );
    }
}
