//! `a * alpha + b * beta` over two tensors of the same shape in one pass, as the exponential
//! moving average of the weights uses it (`shadow * decay + weights * (1 - decay)`), with the
//! same `f32` operations as Burn's composition (two scalings and an addition, no fused
//! multiply-add), so the results are identical; the composition makes three passes and two
//! new tensors per parameter.

use burn::prelude::*;
use rayon::prelude::*;

use super::flex::{contiguous, dims, from_flex, tensor_of, to_flex, values};

/// Values per parallel task.
const CHUNK: usize = 1 << 16;

/// `a * alpha + b * beta` (same shapes).
///
/// # Panics
/// If the shapes differ.
pub fn weighted_sum<B: Backend, const D: usize>(
    a: Tensor<B, D>,
    alpha: f64,
    b: Tensor<B, D>,
    beta: f64,
) -> Tensor<B, D> {
    assert_eq!(
        a.dims(),
        b.dims(),
        "weighted_sum of tensors of different shapes"
    );
    match (to_flex(a), to_flex(b)) {
        (Ok(a), Ok(b)) => {
            let (a, b) = (contiguous(a), contiguous(b));
            let (alpha, beta) = (alpha as f32, beta as f32);
            let mut sum = vec![0.0f32; values(&a).len()];
            sum.par_chunks_mut(CHUNK)
                .zip(values(&a).par_chunks(CHUNK))
                .zip(values(&b).par_chunks(CHUNK))
                .for_each(|((sum, a), b)| {
                    for ((sum, &a), &b) in sum.iter_mut().zip(a).zip(b) {
                        *sum = a * alpha + b * beta;
                    }
                });
            from_flex(tensor_of(sum, dims(&a)))
        }
        (a, b) => {
            let tensor = |flex: Result<_, Tensor<B, D>>| flex.map_or_else(|t| t, from_flex);
            tensor(a).mul_scalar(alpha) + tensor(b).mul_scalar(beta)
        }
    }
}
