//! The precision of the model's matrix products, chosen per thread for a scope, and the
//! products of Burn's composed operations in that precision (mixed precision on CUDA).

use std::cell::Cell;

use burn::prelude::*;
use burn::tensor::FloatDType;

use super::bf16_gemm;

/// Inputs of the model's matrix products: the linear layers of the encoders (the `kernels`
/// linear functions), the attention and the MLM decoder.
///
/// Everything else (LayerNorm, softmax, GELU, residual sums, dropout, the loss; the small
/// heads, `video_dense` and Swin's patch embedding, under 1% of the FLOPs) stays f32, and
/// so do the weights, their gradients and the optimizer's state: a product casts its inputs
/// (weights included) for the forward pass, and its output back to f32, as PyTorch's autocast
/// does with f32 master weights.
///
/// With the `clap` feature it is a command-line value (`f32`, `bf16`, `f16`), and the
/// variants' comments are its help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum MatmulPrecision {
    /// f32 everywhere.
    #[default]
    F32,
    /// bf16 products with f32 accumulation. CUDA: linear layers and attention. CPU inference:
    /// the linear layers on AVX512-BF16 (f32 on CPUs without it) and the attention in f32.
    /// CPU training: CUDA's casts on Burn's operations (slower than f32; for checks).
    Bf16,
    /// f16 products: CUDA's tensor cores. On the CPU, Flex's f16 products (slow; for checks).
    F16,
}

impl MatmulPrecision {
    /// The precision the fused CPU kernels' linear products of this thread actually use:
    /// bf16 only where the CPU has the instruction.
    pub fn effective(self) -> Self {
        match self {
            MatmulPrecision::Bf16 if bf16_gemm::supported() => MatmulPrecision::Bf16,
            MatmulPrecision::F16 => MatmulPrecision::F16,
            _ => MatmulPrecision::F32,
        }
    }

    /// Runs `work` with the matrix products of this thread in this precision, then restores
    /// the previous one (also when `work` panics).
    pub fn scope<R>(self, work: impl FnOnce() -> R) -> R {
        struct Restore(MatmulPrecision);
        impl Drop for Restore {
            fn drop(&mut self) {
                PRECISION.set(self.0);
            }
        }
        let _restore = Restore(PRECISION.replace(self));
        work()
    }

    /// The name of the precision (`f32`, `bf16`, `f16`), as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MatmulPrecision::F32 => "f32",
            MatmulPrecision::Bf16 => "bf16",
            MatmulPrecision::F16 => "f16",
        }
    }

    /// The precision of this thread's products (f32 outside a [`MatmulPrecision::scope`]).
    pub fn current() -> Self {
        PRECISION.get()
    }

    /// The dtype the products cast their inputs to (none for f32: no cast).
    pub fn cast_dtype(self) -> Option<FloatDType> {
        match self {
            MatmulPrecision::F32 => None,
            MatmulPrecision::Bf16 => Some(FloatDType::BF16),
            MatmulPrecision::F16 => Some(FloatDType::F16),
        }
    }

    /// Whether the fused CPU kernels run this thread's products: always in f32, and in bf16
    /// for inference (not `training`), where the linear layers have a bf16 kernel. Otherwise
    /// the composed operations run, with the casts of [`product`].
    pub(super) fn fused(training: bool) -> bool {
        match Self::current() {
            MatmulPrecision::F32 => true,
            MatmulPrecision::Bf16 => !training,
            MatmulPrecision::F16 => false,
        }
    }
}

thread_local! {
    static PRECISION: Cell<MatmulPrecision> = const { Cell::new(MatmulPrecision::F32) };
}

/// `product(lhs, rhs)` with both inputs cast to this thread's precision and the result cast
/// back to `lhs`'s dtype; exactly `product(lhs, rhs)` in f32. The casts are differentiable, so
/// gradients reach f32 weights in f32.
pub(super) fn product<B: Backend, const D: usize, const E: usize>(
    lhs: Tensor<B, D>,
    rhs: Tensor<B, E>,
    product: impl FnOnce(Tensor<B, D>, Tensor<B, E>) -> Tensor<B, D>,
) -> Tensor<B, D> {
    match MatmulPrecision::current().cast_dtype() {
        None => product(lhs, rhs),
        Some(dtype) => {
            let output = lhs.dtype();
            product(lhs.cast(dtype), rhs.cast(dtype)).cast(output)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MatmulPrecision;

    #[test]
    fn scopes_nest_and_restore() {
        assert_eq!(MatmulPrecision::current(), MatmulPrecision::F32);
        MatmulPrecision::Bf16.scope(|| {
            assert_eq!(MatmulPrecision::current(), MatmulPrecision::Bf16);
            MatmulPrecision::F32
                .scope(|| assert_eq!(MatmulPrecision::current(), MatmulPrecision::F32));
            assert_eq!(MatmulPrecision::current(), MatmulPrecision::Bf16);
        });
        assert_eq!(MatmulPrecision::current(), MatmulPrecision::F32);
    }
}
