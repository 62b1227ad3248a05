use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::kernels;

use super::DropPath;

/// Configuration to create an [`Mlp`] block.
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Size of the input and output features.
    pub d_model: usize,
    /// Size of the hidden layer.
    pub d_hidden: usize,
}

/// The feed-forward block of a Swin block: `fc2(GELU(fc1(x)))` (erf GELU).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// First projection, `d_model -> d_hidden`.
    pub fc1: Linear<B>,
    /// Second projection, `d_hidden -> d_model`.
    pub fc2: Linear<B>,
}

impl MlpConfig {
    /// Initializes an [`Mlp`] block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        Mlp {
            fc1: LinearConfig::new(self.d_model, self.d_hidden).init(device),
            fc2: LinearConfig::new(self.d_hidden, self.d_model).init(device),
        }
    }
}

impl<B: Backend> Mlp<B> {
    /// Applies the block to `input` and adds the result, through stochastic depth, to
    /// `residual`: `residual + drop_path(fc2(gelu(fc1(input))))`.
    ///
    /// # Shapes
    /// - input, residual, output: `[..., d_model]`
    pub fn forward<const D: usize>(
        &self,
        input: Tensor<B, D>,
        residual: Tensor<B, D>,
        drop_path: &DropPath,
    ) -> Tensor<B, D> {
        kernels::mlp(&self.fc1, &self.fc2, input, residual, |branch| {
            drop_path.forward(branch)
        })
    }
}
