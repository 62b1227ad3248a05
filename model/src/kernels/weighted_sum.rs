//! `a * alpha + b * beta` over two tensors of the same shape in one pass, as the exponential
//! moving average of the weights uses it (`shadow * decay + weights * (1 - decay)`), with the
//! same `f32` operations as Burn's composition (two scalings and an addition, no fused
//! multiply-add), so the results are identical; the composition makes three passes and two
//! new tensors per parameter.

use burn::prelude::*;

use super::flex::{
    contiguous, dims, from_flex, from_flex_or_unchanged, tensor_of, to_flex, values,
};
use super::parallel::{self, RowKernel, for_row_groups};

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
            let mut sum = parallel::zeroed(values(&a).len());
            let kernel = WeightedSum {
                a: values(&a),
                alpha: alpha as f32,
                b: values(&b),
                beta: beta as f32,
            };
            for_row_groups(&mut sum, 1, &kernel);
            from_flex(tensor_of(sum, dims(&a)))
        }
        (a, b) => {
            from_flex_or_unchanged(a).mul_scalar(alpha) + from_flex_or_unchanged(b).mul_scalar(beta)
        }
    }
}

/// Writes `a * alpha + b * beta` into rows of one value each.
struct WeightedSum<'a> {
    a: &'a [f32],
    alpha: f32,
    b: &'a [f32],
    beta: f32,
}

impl RowKernel for WeightedSum<'_> {
    #[inline(always)]
    fn rows(&self, first_row: usize, rows: &mut [f32]) {
        let end = first_row + rows.len();
        let (a, b) = (&self.a[first_row..end], &self.b[first_row..end]);
        for ((sum, &a), &b) in rows.iter_mut().zip(a).zip(b) {
            *sum = a * self.alpha + b * self.beta;
        }
    }
}
