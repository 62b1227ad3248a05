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
