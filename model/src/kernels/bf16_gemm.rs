//! Matrix products with bf16 inputs and f32 accumulation on the CPU's bf16 dot-product
//! instruction (AVX512-BF16 `vdpbf16ps`), as PyTorch's bf16 autocast computes a linear layer.
//!
//! Both operands are rounded to bf16 (round to nearest even, as PyTorch's casts) while they are
//! packed; each instruction multiplies two pairs of bf16 values and adds both products to an
//! f32 accumulator. `gemm` (the crate of the f32 path) has no bf16 kernel, hence this one.
//!
//! Layout: the right operand is packed in panels of [`NR`] columns, pairs of consecutive `k`
//! interleaved (`[pair][column][2]`), so that one 512-bit load holds 16 columns' pairs; the
//! left operand's rows are packed as one `u32` (a bf16 pair) per pair of `k`, broadcast to all
//! lanes. A microkernel keeps an [`MR`] x [`NR`] block of the output in 12 registers.

use rayon::prelude::*;

use super::matrix::MatrixView;

/// Rows of the output block of the microkernel.
const MR: usize = 6;
/// Columns of a packed panel (two 16-lane registers).
const NR: usize = 32;
/// Pairs of `k` per cache block: a panel block of the right operand is `KC * NR * 4` bytes
/// (32 KiB), the size of the L1 data cache.
const KC: usize = 256;
/// Rows per rayon task.
const ROWS_PER_TASK: usize = 8 * MR;

/// Whether this CPU has the bf16 dot-product instruction (checked once at run time).
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `value` rounded to bf16 (round to nearest, ties to even; NaN stays NaN), as its bits.
pub fn to_bf16_bits(value: f32) -> u16 {
    let bits = value.to_bits();
    if value.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounding = 0x7FFF + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// `output [m x n] (+)= left [m x k] x right [k x n]` with bf16 inputs and f32 accumulation;
/// `accumulate`: add to what `output` holds, otherwise overwrite it. `left` and `output` are
/// row-major and contiguous.
///
/// Returns `false` (and leaves `output` alone) when the CPU lacks the instruction: the caller
/// then computes the product in f32.
pub fn gemm_bf16(
    (m, n, k): (usize, usize, usize),
    left: &[f32],
    right: &MatrixView,
    output: &mut [f32],
    accumulate: bool,
) -> bool {
    assert_eq!(left.len(), m * k, "left operand is not m x k");
    assert_eq!(output.len(), m * n, "output is not m x n");
    if !supported() {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    if k == 0 {
        if !accumulate {
            output.fill(0.0);
        }
        return true;
    }
    let pairs = k.div_ceil(2);
    let packed_right = pack_right(right, n, k, pairs);
    output
        .par_chunks_mut(ROWS_PER_TASK * n)
        .zip(left.par_chunks(ROWS_PER_TASK * k))
        .for_each(|(output, left)| {
            let rows = output.len() / n;
            let packed_left = pack_left(left, rows, k, pairs);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `supported()` checked the instruction set; the packed buffers have the
            // sizes `block` expects (`rows * pairs` and `panels * pairs * NR` pairs).
            unsafe {
                x86::block(
                    &packed_left,
                    &packed_right,
                    output,
                    (rows, n, pairs),
                    accumulate,
                )
            };
        });
    true
}

/// The left rows as bf16 pairs: `[row][pair]`, the odd `k` padded with 0.
fn pack_left(left: &[f32], rows: usize, k: usize, pairs: usize) -> Vec<u32> {
    let mut packed = vec![0u32; rows * pairs];
    for (row, packed) in left.chunks_exact(k).zip(packed.chunks_exact_mut(pairs)) {
        for (pair, packed) in row.chunks(2).zip(packed.iter_mut()) {
            let low = to_bf16_bits(pair[0]) as u32;
            let high = pair.get(1).map_or(0, |&value| to_bf16_bits(value) as u32);
            *packed = low | (high << 16);
        }
    }
    packed
}

/// The right operand as bf16 pairs in panels of `NR` columns: `[panel][pair][column]`, the
/// columns past `n` and the odd `k` padded with 0.
///
fn pack_right(right: &MatrixView, n: usize, k: usize, pairs: usize) -> Vec<u32> {
    let panels = n.div_ceil(NR);
    let mut packed = vec![0u32; panels * pairs * NR];
    packed
        .par_chunks_mut(pairs * NR)
        .enumerate()
        .for_each(|(panel, packed)| {
            let columns = (n - panel * NR).min(NR);
            let first = right.offset as isize + (panel * NR) as isize * right.column_stride;
            let at = |i: usize, column: usize| {
                let index =
                    first + i as isize * right.row_stride + column as isize * right.column_stride;
                to_bf16_bits(right.values[index as usize]) as u32
            };
            let pair_of = |pair: usize, column: usize| {
                let high = if 2 * pair + 1 < k {
                    at(2 * pair + 1, column)
                } else {
                    0
                };
                at(2 * pair, column) | (high << 16)
            };
            // Read in the operand's memory order: along `k` when it is contiguous there (a
            // transposed PyTorch weight), along `n` otherwise (a Burn weight).
            if right.row_stride.unsigned_abs() == 1 {
                for column in 0..columns {
                    for pair in 0..pairs {
                        packed[pair * NR + column] = pair_of(pair, column);
                    }
                }
            } else {
                for (pair, packed) in packed.chunks_exact_mut(NR).enumerate() {
                    for (column, packed) in packed[..columns].iter_mut().enumerate() {
                        *packed = pair_of(pair, column);
                    }
                }
            }
        });
    packed
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{KC, MR, NR};

    /// The product of `rows` packed left rows with all panels, into `output` (`rows x n`).
    ///
    /// # Safety
    /// The CPU has AVX512-F and AVX512-BF16; `left` holds `rows * pairs` pairs, `right`
    /// `n.div_ceil(NR) * pairs * NR`, `output` `rows * n` values.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn block(
        left: &[u32],
        right: &[u32],
        output: &mut [f32],
        (rows, n, pairs): (usize, usize, usize),
        accumulate: bool,
    ) {
        let panels = n.div_ceil(NR);
        for pair_start in (0..pairs).step_by(KC) {
            let block_pairs = (pairs - pair_start).min(KC);
            // Only the first block may overwrite; later ones add to it.
            let add = accumulate || pair_start > 0;
            for panel in 0..panels {
                let columns = (n - panel * NR).min(NR);
                let right = &right[(panel * pairs + pair_start) * NR..][..block_pairs * NR];
                for row in (0..rows).step_by(MR) {
                    let tile = Tile {
                        left: &left[row * pairs + pair_start..],
                        left_stride: pairs,
                        right,
                        pairs: block_pairs,
                        output: &mut output[row * n + panel * NR..],
                        output_stride: n,
                        columns,
                        add,
                    };
                    // SAFETY: as this function's contract; `tile` stays inside the buffers.
                    unsafe {
                        match rows - row {
                            1 => tile.run::<1>(),
                            2 => tile.run::<2>(),
                            3 => tile.run::<3>(),
                            4 => tile.run::<4>(),
                            5 => tile.run::<5>(),
                            _ => tile.run::<MR>(),
                        }
                    }
                }
            }
        }
    }

    /// One output block of up to `MR` rows and `NR` columns over a block of pairs.
    struct Tile<'a> {
        left: &'a [u32],
        left_stride: usize,
        right: &'a [u32],
        pairs: usize,
        output: &'a mut [f32],
        output_stride: usize,
        columns: usize,
        add: bool,
    }

    impl Tile<'_> {
        /// # Safety
        /// AVX512-F and AVX512-BF16; `R` rows of `left` (`left_stride` apart) hold `pairs`
        /// pairs, `right` `pairs * NR`, and `R` rows of `output` `columns` values.
        #[target_feature(enable = "avx512f,avx512bf16")]
        #[inline]
        unsafe fn run<const R: usize>(self) {
            let mut sums = [[_mm512_setzero_ps(); 2]; R];
            let right = self.right.as_ptr();
            for pair in 0..self.pairs {
                // SAFETY: `pair < pairs`, so both loads lie inside `right`, and each left
                // index inside row `r`'s pairs.
                unsafe {
                    let low = _mm512_loadu_si512(right.add(pair * NR).cast());
                    let high = _mm512_loadu_si512(right.add(pair * NR + 16).cast());
                    let (low, high) = (bf16x32(low), bf16x32(high));
                    for (r, sums) in sums.iter_mut().enumerate() {
                        let value = *self.left.get_unchecked(r * self.left_stride + pair);
                        let left = bf16x32(_mm512_set1_epi32(value as i32));
                        sums[0] = _mm512_dpbf16_ps(sums[0], left, low);
                        sums[1] = _mm512_dpbf16_ps(sums[1], left, high);
                    }
                }
            }
            let masks = [
                column_mask(self.columns.min(16)),
                column_mask(self.columns.saturating_sub(16)),
            ];
            for (r, sums) in sums.iter().enumerate() {
                for (half, (&sum, &mask)) in sums.iter().zip(&masks).enumerate() {
                    // SAFETY: the mask keeps the columns inside the row's `columns`.
                    unsafe {
                        let at = self
                            .output
                            .as_mut_ptr()
                            .add(r * self.output_stride + 16 * half);
                        let sum = if self.add {
                            _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask, at))
                        } else {
                            sum
                        };
                        _mm512_mask_storeu_ps(at, mask, sum);
                    }
                }
            }
        }
    }

    /// The first `columns` (at most 16) lanes.
    fn column_mask(columns: usize) -> __mmask16 {
        ((1u32 << columns) - 1) as __mmask16
    }

    /// 32 bf16 values in a register.
    #[inline(always)]
    fn bf16x32(bits: __m512i) -> __m512bh {
        // SAFETY: both types are 512 bits of plain data.
        unsafe { std::mem::transmute(bits) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_bf16_bits(bits: u16) -> f32 {
        f32::from_bits((bits as u32) << 16)
    }

    /// Deterministic values in [-2, 2) with full f32 mantissas.
    fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect()
    }

    #[test]
    fn rounds_to_nearest_even() {
        assert_eq!(to_bf16_bits(1.0), 0x3F80);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even 1.
        assert_eq!(to_bf16_bits(1.0 + 2f32.powi(-8)), 0x3F80);
        // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: to the even 1 + 2^-6.
        assert_eq!(to_bf16_bits(1.0 + 3.0 * 2f32.powi(-8)), 0x3F82);
        assert_eq!(to_bf16_bits(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 0x3F81);
        assert_eq!(to_bf16_bits(-2.5), 0xC020);
        assert!(from_bf16_bits(to_bf16_bits(f32::NAN)).is_nan());
        assert_eq!(from_bf16_bits(to_bf16_bits(f32::INFINITY)), f32::INFINITY);
        assert_eq!(
            to_bf16_bits(f32::MAX),
            0x7F80,
            "f32::MAX rounds up to infinity"
        );
    }

    /// The product of the bf16-rounded operands in f64, then compared with the kernel's.
    fn check(m: usize, n: usize, k: usize, transposed: bool, accumulate: bool) {
        let left = values(m * k, 1);
        let right = values(k * n, 2);
        let initial = values(m * n, 3);
        // `right` holds the k x n matrix row-major, or (transposed) its n x k transpose.
        let (row_stride, column_stride) = if transposed {
            (1, k as isize)
        } else {
            (n as isize, 1)
        };
        let at = |i: usize, j: usize| {
            right[(i as isize * row_stride + j as isize * column_stride) as usize]
        };
        let mut output = initial.clone();
        let operand = MatrixView {
            values: &right,
            offset: 0,
            row_stride,
            column_stride,
        };
        if !gemm_bf16((m, n, k), &left, &operand, &mut output, accumulate) {
            assert!(!supported());
            return;
        }
        let round = |value: f32| from_bf16_bits(to_bf16_bits(value)) as f64;
        for i in 0..m {
            for j in 0..n {
                let mut expected: f64 = (0..k)
                    .map(|l| round(left[i * k + l]) * round(at(l, j)))
                    .sum();
                let mut magnitude: f64 = (0..k)
                    .map(|l| (round(left[i * k + l]) * round(at(l, j))).abs())
                    .sum();
                if accumulate {
                    expected += initial[i * n + j] as f64;
                    magnitude += (initial[i * n + j] as f64).abs();
                }
                let actual = output[i * n + j] as f64;
                assert!(
                    (actual - expected).abs() <= 1e-6 * magnitude + 1e-6,
                    "{m}x{n}x{k} at ({i}, {j}): {actual} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn matches_the_product_of_the_rounded_inputs() {
        // Edge rows (m % 6), edge columns (n % 32), odd k, several k blocks (k > 512).
        for (m, n, k) in [
            (1, 1, 1),
            (7, 33, 5),
            (13, 64, 130),
            (50, 47, 1031),
            (6, 32, 512),
        ] {
            check(m, n, k, false, false);
            check(m, n, k, true, true);
        }
    }

    #[test]
    fn empty_products() {
        let mut output = vec![5.0; 6];
        let operand = MatrixView {
            values: &[],
            offset: 0,
            row_stride: 3,
            column_stride: 1,
        };
        if gemm_bf16((2, 3, 0), &[], &operand, &mut output, false) {
            assert_eq!(output, vec![0.0; 6]);
        }
    }
}
