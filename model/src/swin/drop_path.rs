use burn::prelude::*;
use burn::tensor::Distribution;

/// Configuration to create a [`DropPath`] layer.
#[derive(Config, Debug)]
pub struct DropPathConfig {
    /// Probability of dropping the residual branch of a sample.
    pub prob: f64,
}

/// Stochastic depth ("drop path"): while training, zeroes the whole residual branch of each
/// sample with probability `prob` and scales the kept ones by `1 / (1 - prob)`.
///
/// Like [`burn::nn::Dropout`], it is active only on an autodiff backend, so a model in
/// evaluation (`model.valid()` or a plain backend) uses it as the identity.
#[derive(Module, Clone, Debug)]
pub struct DropPath {
    /// Probability of dropping the residual branch of a sample.
    pub prob: f64,
}

impl DropPathConfig {
    /// Initializes a [`DropPath`] layer.
    pub fn init(&self) -> DropPath {
        assert!(
            (0.0..1.0).contains(&self.prob),
            "drop path probability must be in [0, 1), got {}",
            self.prob
        );
        DropPath { prob: self.prob }
    }
}

impl DropPath {
    /// Applies stochastic depth to a residual branch.
    ///
    /// # Shapes
    /// - input: `[batch, ...]`
    /// - output: same as the input
    pub fn forward<B: Backend, const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        if self.prob == 0.0 || !B::ad_enabled(&input.device()) {
            return input;
        }
        let keep_prob = 1.0 - self.prob;
        let mut mask_shape = [1; D];
        mask_shape[0] = input.dims()[0];
        let mask = Tensor::<B, D>::random(
            mask_shape,
            Distribution::Bernoulli(keep_prob),
            &input.device(),
        );
        input.mul(mask).div_scalar(keep_prob)
    }
}
