//! Splitting a buffer into tasks for rayon, and running each task with the CPU's best vector
//! instruction set enabled.

use std::mem::MaybeUninit;

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

/// Values per rayon task: large enough to amortize scheduling, small enough to balance.
pub const TASK_VALUES: usize = 1 << 14;

/// Work on a group of whole rows of a buffer.
///
/// Implementations mark [`RowKernel::rows`] `#[inline(always)]`: it is then compiled inside
/// the function that [`for_row_groups`] selects for the CPU (AVX-512, AVX2 + FMA, or the
/// baseline), so its loops are vectorized for that instruction set.
pub trait RowKernel: Sync {
    /// Processes `rows` (whole rows), the first of which is row `first_row` of the buffer.
    fn rows(&self, first_row: usize, rows: &mut [f32]);
}

/// Runs `kernel` on groups of whole rows (`row_len` values each) of `values`, in parallel.
pub fn for_row_groups(values: &mut [f32], row_len: usize, kernel: &impl RowKernel) {
    if row_len == 0 || values.is_empty() {
        return;
    }
    let rows_per_task = (TASK_VALUES / row_len).max(1);
    values
        .par_chunks_mut(rows_per_task * row_len)
        .enumerate()
        .for_each(|(index, rows)| {
            pulp::Arch::new().dispatch(RowTask {
                kernel,
                first_row: index * rows_per_task,
                rows,
            });
        });
}

/// One task of [`for_row_groups`], in the form `pulp` dispatches on.
struct RowTask<'a, K> {
    kernel: &'a K,
    first_row: usize,
    rows: &'a mut [f32],
}

impl<K: RowKernel> WithSimd for RowTask<'_, K> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        self.kernel.rows(self.first_row, self.rows);
    }
}

/// The sum of `values`, with 16 running sums so that the loop vectorizes.
#[inline(always)]
pub fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut blocks = values.chunks_exact(16);
    for block in &mut blocks {
        for (lane, value) in lanes.iter_mut().zip(block) {
            *lane += value;
        }
    }
    for (lane, value) in lanes.iter_mut().zip(blocks.remainder()) {
        *lane += value;
    }
    fold_lanes(lanes, |a, b| a + b)
}

/// The largest of `values` (`-inf` for none), with 16 running maxima so that the loop
/// vectorizes. NaNs may or may not be skipped (the comparison is the vector instruction's, not
/// `f32::max`'s NaN-aware one): a softmax of NaN scores is NaN either way.
#[inline(always)]
pub fn max(values: &[f32]) -> f32 {
    let larger = |a: f32, b: f32| if a > b { a } else { b };
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut blocks = values.chunks_exact(16);
    for block in &mut blocks {
        for (lane, &value) in lanes.iter_mut().zip(block) {
            *lane = larger(*lane, value);
        }
    }
    for (lane, &value) in lanes.iter_mut().zip(blocks.remainder()) {
        *lane = larger(*lane, value);
    }
    fold_lanes(lanes, larger)
}

/// `lanes` combined pairwise by `combine` (halves, then quarters, ...): four vector steps
/// rather than fifteen dependent scalar ones, which were a visible part of every short row's
/// softmax (Swin's 49 keys).
#[inline(always)]
fn fold_lanes(lanes: [f32; 16], combine: impl Fn(f32, f32) -> f32) -> f32 {
    let eight: [f32; 8] = std::array::from_fn(|lane| combine(lanes[lane], lanes[lane + 8]));
    let four: [f32; 4] = std::array::from_fn(|lane| combine(eight[lane], eight[lane + 4]));
    let two: [f32; 2] = std::array::from_fn(|lane| combine(four[lane], four[lane + 2]));
    combine(two[0], two[1])
}

/// A buffer of `len` zeros for a kernel to overwrite, written by the rayon threads: one
/// thread's `memset` of the large buffers of a training step (calloc reuses freed memory) was
/// a visible part of the time the other threads waited. Each task fills its part with
/// `memset` (rayon's `par_extend` stored 16 bytes at a time: 3% of a bf16 forward pass).
pub fn zeroed(len: usize) -> Vec<f32> {
    let mut buffer = Vec::with_capacity(len);
    buffer.spare_capacity_mut()[..len]
        .par_chunks_mut(4 * TASK_VALUES)
        .for_each(|part| part.fill(MaybeUninit::new(0.0)));
    // SAFETY: the first `len` values were all just written.
    unsafe { buffer.set_len(len) };
    buffer
}

/// A copy of `values`, written by the rayon threads, a part per task.
pub fn copied(values: &[f32]) -> Vec<f32> {
    let mut buffer = Vec::with_capacity(values.len());
    buffer.spare_capacity_mut()[..values.len()]
        .par_chunks_mut(4 * TASK_VALUES)
        .zip(values.par_chunks(4 * TASK_VALUES))
        .for_each(|(part, values)| {
            for (slot, &value) in part.iter_mut().zip(values) {
                slot.write(value);
            }
        });
    // SAFETY: the first `values.len()` values were all just written.
    unsafe { buffer.set_len(values.len()) };
    buffer
}

/// `Σ a[i] * b[i] * c[i]`, with 16 running sums so that the loop vectorizes.
#[inline(always)]
pub fn dot3(a: &[f32], b: &[f32], c: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let blocks = a
        .chunks_exact(16)
        .zip(b.chunks_exact(16))
        .zip(c.chunks_exact(16));
    for ((block_a, block_b), block_c) in blocks {
        for (((lane, a), b), c) in lanes.iter_mut().zip(block_a).zip(block_b).zip(block_c) {
            *lane += a * b * c;
        }
    }
    let tail = a.len() - a.len() % 16;
    for (lane, i) in lanes.iter_mut().zip(tail..a.len()) {
        *lane += a[i] * b[i] * c[i];
    }
    fold_lanes(lanes, |a, b| a + b)
}

/// `Σ a[i] * b[i]`, with 16 running sums so that the loop vectorizes.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (mut blocks_a, mut blocks_b) = (a.chunks_exact(16), b.chunks_exact(16));
    for (block_a, block_b) in (&mut blocks_a).zip(&mut blocks_b) {
        for ((lane, a), b) in lanes.iter_mut().zip(block_a).zip(block_b) {
            *lane += a * b;
        }
    }
    let remainders = blocks_a.remainder().iter().zip(blocks_b.remainder());
    for (lane, (a, b)) in lanes.iter_mut().zip(remainders) {
        *lane += a * b;
    }
    fold_lanes(lanes, |a, b| a + b)
}
