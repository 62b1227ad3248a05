//! Element-wise activations, applied to rows in place.

use super::math;
use super::parallel::RowKernel;

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

/// `row <- row * gelu'(pre)`: the gradient of a GELU's input from that of its output, `pre`
/// being the GELU's input (rows of `row_len` values, aligned with the rows processed).
pub struct GeluGradient<'a> {
    /// The GELU's input, all rows.
    pub pre: &'a [f32],
    /// Values per row.
    pub row_len: usize,
}

impl RowKernel for GeluGradient<'_> {
    #[inline(always)]
    fn rows(&self, first_row: usize, rows: &mut [f32]) {
        let pre = &self.pre[first_row * self.row_len..][..rows.len()];
        for (gradient, &x) in rows.iter_mut().zip(pre) {
            *gradient *= math::gelu_derivative(x);
        }
    }
}
