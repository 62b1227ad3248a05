//! Element-wise activations.

use burn::prelude::*;

use super::flex::{dims, from_flex, into_values, tensor_of, to_flex};
use super::math;
use super::parallel::{RowKernel, for_row_groups};

/// The exact (erf) GELU, as `burn::tensor::activation::gelu`.
pub fn gelu<B: Backend, const D: usize>(input: Tensor<B, D>) -> Tensor<B, D> {
    match to_flex(input) {
        Ok(input) => {
            let shape = dims(&input);
            let mut values = into_values(input);
            let row_len = shape.last().copied().unwrap_or(1);
            for_row_groups(&mut values, row_len, &BiasGelu { bias: None });
            from_flex(tensor_of(values, shape))
        }
        Err(input) => burn::tensor::activation::gelu(input),
    }
}

/// `row <- gelu(row + bias)` on every row (`gelu(row)` without a bias).
pub struct BiasGelu<'a> {
    /// One value per column.
    pub bias: Option<&'a [f32]>,
}

impl RowKernel for BiasGelu<'_> {
    #[inline(always)]
    fn rows(&self, _first_row: usize, rows: &mut [f32]) {
        match self.bias {
            Some(bias) => {
                for row in rows.chunks_exact_mut(bias.len()) {
                    for (value, bias) in row.iter_mut().zip(bias) {
                        *value = math::gelu(*value + bias);
                    }
                }
            }
            None => {
                for value in rows {
                    *value = math::gelu(*value);
                }
            }
        }
    }
}
