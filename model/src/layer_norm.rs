//! Layer normalization as `burn::nn::LayerNorm` computes it (the same parameters, names and
//! results), run by [`kernels::layer_norm`]: under training on the CPU a fused pass with a
//! backward pass of its own, elsewhere the backend's operation.
//!
//! Burn's module keeps its epsilon private, so the kernel could not be called with a
//! `burn::nn::LayerNorm`; this block has the same record (`gamma`, `beta`) and the same
//! container name (`LayerNorm`), so burn-store's PyTorch adapters rename `weight`/`bias` to
//! `gamma`/`beta` for it as for Burn's.

use burn::module::{Initializer, Param};
use burn::prelude::*;

use crate::kernels;

/// Configuration to create a [`LayerNorm`].
#[derive(Config, Debug)]
pub struct LayerNormConfig {
    /// Size of the normalized (last) dimension.
    pub d_model: usize,
    /// Added to the variance before the square root.
    #[config(default = 1e-5)]
    pub epsilon: f64,
}

/// Layer normalization over the last dimension, with a scale and a shift.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// Scale, `[d_model]` (PyTorch's `weight`).
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift, `[d_model]` (PyTorch's `bias`).
    pub beta: Param<Tensor<B, 1>>,
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

impl LayerNormConfig {
    /// Initializes a [`LayerNorm`] with a scale of ones and a shift of zeros.
    pub fn init<B: Backend>(&self, device: &B::Device) -> LayerNorm<B> {
        LayerNorm {
            gamma: Initializer::Ones.init([self.d_model], device),
            beta: Initializer::Zeros.init([self.d_model], device),
            epsilon: self.epsilon,
        }
    }
}

impl<B: Backend> LayerNorm<B> {
    /// Normalizes the last dimension of `input`.
    ///
    /// # Shapes
    /// - input, output: `[..., d_model]`
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        kernels::layer_norm(input, self.gamma.val(), self.beta.val(), self.epsilon)
    }
}
