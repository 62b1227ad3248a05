//! Matrix products with bf16 inputs and f32 accumulation on the CPU's bf16 dot-product
//! instruction (AVX512-BF16 `vdpbf16ps`), as PyTorch's bf16 autocast computes a linear layer.
//!
//! Both operands are rounded to bf16 (round to nearest even, as PyTorch's casts) while they are
//! packed, 16 values per instruction; each `vdpbf16ps` multiplies two pairs of bf16 values in
//! each of its 16 lanes and adds both products to an f32 accumulator. `gemm` (the crate of the
//! f32 path) has no bf16 kernel, hence this one.
//!
//! Layout: the right operand is packed once into a [`PackedRight`] (a weight once per model,
//! see `packed_weights`) in panels of [`NR`] columns, pairs of consecutive `k` interleaved
//! (`[pair][column][2]`), so that one 512-bit load holds 16 columns' pairs; each rayon task
//! packs its rows of the left operand as one `u32` (a bf16 pair) per pair of `k`, broadcast
//! to all lanes. The microkernel keeps an [`MR`] x [`NR`]
//! block of the output in 24 of the 32 vector registers: enough independent sums to cover
//! the instruction's latency at two instructions per cycle. A [`KC`]-pair slice of a panel
//! (24 KiB) stays in the L1 data cache while the task's row blocks pass over it.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::matrix::MatrixView;

/// Rows of the output block of the microkernel.
const MR: usize = 12;
/// Columns of a packed panel (two 16-lane registers).
const NR: usize = 32;
/// Pairs of `k` per cache block: a panel's block of the right operand is `KC * NR * 4` bytes
/// (24 KiB, half a 48 KiB L1 data cache), a row block of the left one `KC * MR * 4` (9 KiB).
const KC: usize = 192;
/// Fewest and most rows per rayon task (multiples of `MR`): enough tasks to balance the
/// threads, and each task's rows pass over the whole packed right operand.
const TASK_ROWS: (usize, usize) = (4 * MR, 32 * MR);

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

/// A right operand `[k, n]` rounded to bf16 and packed for [`gemm_bf16`]: built once for
/// any number of products (a weight's for every forward pass, see `packed_weights`).
pub struct PackedRight {
    k: usize,
    n: usize,
    /// `[panel][pair][column]`, as the module's comment says.
    pairs: Vec<u32>,
}

impl PackedRight {
    /// Columns of the matrix (its `n`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// `right` (`k x n`) packed; `None` when the CPU lacks the bf16 instruction (the caller
    /// then computes its products in f32).
    pub fn new(right: &MatrixView, (k, n): (usize, usize)) -> Option<Self> {
        if !supported() {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        let pairs = if k == 0 || n == 0 {
            Vec::new()
        } else {
            // SAFETY: `supported()` checked the instruction set.
            unsafe { x86::pack_right(right, n, k, k.div_ceil(2)) }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let pairs = {
            let _ = right;
            unreachable!("`supported()` is false off x86-64")
        };
        Some(PackedRight { k, n, pairs })
    }
}

/// Where [`gemm_bf16`] puts its product.
pub enum Output<'a> {
    /// Added to the values there (a residual connection, or a sum of products).
    Add(&'a mut [f32]),
    /// Written over memory that holds nothing yet: every value is written and none is read,
    /// so a new buffer needs no zeroing first.
    Write(&'a mut [MaybeUninit<f32>]),
}

/// `output [m x n] (+)= left [m x k] x right [k x n] (+ bias [n])` with bf16 inputs and f32
/// accumulation, added to `output` or written over it (see [`Output`]). The bias, in f32,
/// starts each output value's sum, so it costs no pass of its own. `left` and `output` are
/// row-major and contiguous.
pub fn gemm_bf16(
    m: usize,
    left: &[f32],
    right: &PackedRight,
    output: Output,
    bias: Option<&[f32]>,
) {
    let (output, accumulate) = output.parts();
    let (n, k) = (right.n, right.k);
    assert_eq!(left.len(), m * k, "left operand is not m x k");
    assert_eq!(output.len(), m * n, "output is not m x n");
    assert!(
        bias.is_none_or(|bias| bias.len() == n),
        "bias is not n long"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in output.chunks_exact_mut(n) {
            for (index, value) in row.iter_mut().enumerate() {
                // SAFETY: an `Add` output is initialized.
                let start = if accumulate {
                    unsafe { value.assume_init() }
                } else {
                    0.0
                };
                *value = MaybeUninit::new(start + bias.map_or(0.0, |bias| bias[index]));
            }
        }
        return;
    }
    tasks(m, 0, (output, n), (left, k))
        .into_par_iter()
        .for_each(|(output, left)| task_product(left, right, (output, accumulate), bias));
}

/// A transformer's feed-forward block in one pass over the rows:
/// `output (+)= gelu(left [m x k] x first + first_bias) x second (+ second_bias)`, in bf16
/// products with f32 accumulation as [`gemm_bf16`]'s, the GELU (erf) in f32.
///
/// Each rayon task takes a block of rows through both products, its hidden rows (`first.n`
/// wide, usually `4k`) in a buffer that stays in the core's cache: the hidden activations are
/// never written to memory in f32, read back and packed, which on Swin's first stages (50176
/// rows of 384 hidden values for a batch of 16 images) is memory traffic, not arithmetic.
pub fn mlp_bf16(
    m: usize,
    left: &[f32],
    (first, first_bias): (&PackedRight, &[f32]),
    (second, second_bias): (&PackedRight, Option<&[f32]>),
    output: Output,
) {
    let (output, accumulate) = output.parts();
    let (k, hidden, n) = (first.k, first.n, second.n);
    assert_eq!(left.len(), m * k, "left operand is not m x k");
    assert_eq!(
        second.k, hidden,
        "the second product does not take the first's output"
    );
    assert_eq!(output.len(), m * n, "output is not m x n");
    assert_eq!(
        first_bias.len(),
        hidden,
        "first bias is not the hidden width"
    );
    assert!(
        second_bias.is_none_or(|bias| bias.len() == n),
        "second bias is not n long"
    );
    assert!(
        k > 0 && hidden > 0,
        "feed-forward blocks have inputs and hidden values"
    );
    if m == 0 || n == 0 {
        return;
    }
    tasks(m, hidden, (output, n), (left, k))
        .into_par_iter()
        .for_each(|(output, left)| {
            let rows = left.len() / k;
            let mut hidden_rows = vec![0.0f32; rows * hidden];
            let written = (uninit_view(&mut hidden_rows), false);
            task_product(left, first, written, Some(first_bias));
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `PackedRight` exists only where `supported()` (AVX512-F among them).
            unsafe {
                x86::gelu_in_place(&mut hidden_rows)
            };
            task_product(&hidden_rows, second, (output, accumulate), second_bias);
        });
}

/// Bytes of a task's hidden rows in [`mlp_bf16`] (f32 values and their bf16 packing), so that
/// they stay in a core's L2 cache.
const MLP_TASK_BYTES: usize = 512 * 1024;

/// Rows per rayon task: 16 tasks per thread, whole microkernel blocks, between
/// [`TASK_ROWS`]'s bounds (enough rows to reuse each packed panel of the right operand);
/// with `hidden` values per row kept by the task ([`mlp_bf16`]), no more than
/// [`MLP_TASK_BYTES`] of them, down to the lower bound.
fn task_rows(m: usize, hidden: usize) -> usize {
    let rows = (m.div_ceil(16 * rayon::current_num_threads()).div_ceil(MR) * MR)
        .clamp(TASK_ROWS.0, TASK_ROWS.1);
    match MLP_TASK_BYTES.checked_div(6 * hidden) {
        Some(fitting) => rows.min(fitting / MR * MR).max(TASK_ROWS.0),
        None => rows,
    }
}

/// The rows of a product's `output` (`n` values each) and `left` operand (`k` values each),
/// split into the rayon tasks' parts: about [`task_rows`] rows each, but as many tasks as a
/// multiple of the thread count and sizes differing by at most one microkernel block, so
/// that the threads end together. (Parts of exactly `task_rows` rows left one thread a
/// whole task to run alone at the end of BERT's products: 17 tasks of 48 rows for its
/// 776.)
fn tasks<'a, 'b>(
    m: usize,
    hidden: usize,
    (mut output, n): (&'a mut [MaybeUninit<f32>], usize),
    (mut left, k): (&'b [f32], usize),
) -> Vec<(&'a mut [MaybeUninit<f32>], &'b [f32])> {
    let blocks = m.div_ceil(MR);
    let threads = rayon::current_num_threads().max(1);
    let count = m
        .div_ceil(task_rows(m, hidden))
        .next_multiple_of(threads)
        .min(blocks);
    (0..count)
        .map(|task| {
            let rows = ((task + 1) * blocks / count * MR).min(m) - task * blocks / count * MR;
            let (task_output, rest) = std::mem::take(&mut output).split_at_mut(rows * n);
            let (task_left, rest_left) = left.split_at(rows * k);
            (output, left) = (rest, rest_left);
            (task_output, task_left)
        })
        .collect()
}

/// One task's rows of a product: `output (+)= left x right (+ bias)`, `left` holding the
/// task's rows (`k` values each) in f32.
fn task_product(
    left: &[f32],
    right: &PackedRight,
    (output, accumulate): (&mut [MaybeUninit<f32>], bool),
    bias: Option<&[f32]>,
) {
    let (k, n) = (right.k, right.n);
    let rows = output.len() / n;
    let pairs = k.div_ceil(2);
    let mut packed_left = vec![0u32; rows * pairs];
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a `PackedRight` exists only where `supported()` (the instruction sets); the
    // packed buffers have the sizes that `block` expects (`rows * pairs` and
    // `n.div_ceil(NR) * pairs * NR` pairs).
    unsafe {
        for (row, packed) in left
            .chunks_exact(k)
            .zip(packed_left.chunks_exact_mut(pairs))
        {
            x86::pack_contiguous(row, packed);
        }
        x86::block(
            &packed_left,
            &right.pairs,
            (output, accumulate),
            bias,
            (rows, n, pairs),
        );
    }
}

/// `values` as memory that the kernel may write (only ever with initialized values).
fn uninit_view(values: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; the kernel only writes initialized f32 values through the view, so
    // `values` stays initialized.
    unsafe { &mut *(values as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

impl<'a> Output<'a> {
    /// The memory and whether its values are added to.
    fn parts(self) -> (&'a mut [MaybeUninit<f32>], bool) {
        match self {
            Output::Add(values) => (uninit_view(values), true),
            Output::Write(values) => (values, false),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use rayon::prelude::*;

    use super::super::math;
    use super::{KC, MR, MatrixView, NR, to_bf16_bits};

    /// `values <- gelu(values)` (erf), 16 values per instruction.
    ///
    /// # Safety
    /// The CPU has AVX512-F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gelu_in_place(values: &mut [f32]) {
        for value in values {
            *value = math::gelu(*value);
        }
    }

    /// The right operand as bf16 pairs in panels of `NR` columns: `[panel][pair][column]`, the
    /// columns past `n` and the odd `k` padded with 0.
    ///
    /// # Safety
    /// The CPU has AVX512-F; `right` is a `k x n` view inside its storage.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pack_right(right: &MatrixView, n: usize, k: usize, pairs: usize) -> Vec<u32> {
        let panels = n.div_ceil(NR);
        let mut packed = vec![0u32; panels * pairs * NR];
        packed
            .par_chunks_mut(pairs * NR)
            .enumerate()
            .for_each(|(panel, packed)| {
                let columns = (n - panel * NR).min(NR);
                let first = right.offset as isize + (panel * NR) as isize * right.column_stride;
                let view = MatrixView {
                    offset: first as usize,
                    ..*right
                };
                // SAFETY: as this function's contract; the panel's columns lie inside `right`.
                unsafe {
                    if right.column_stride == 1 && right.row_stride > 0 {
                        pack_panel_rows(&view, k, columns, packed)
                    } else if right.row_stride == 1 && right.column_stride > 0 {
                        pack_panel_columns(&view, k, columns, pairs, packed)
                    } else {
                        pack_panel_strided(&view, k, columns, packed)
                    }
                }
            });
        packed
    }

    /// A panel of a right operand whose rows are contiguous (a Burn weight, `[k, n]`
    /// row-major): 16 columns of two consecutive rows per step.
    #[target_feature(enable = "avx512f")]
    unsafe fn pack_panel_rows(view: &MatrixView, k: usize, columns: usize, packed: &mut [u32]) {
        let row = |i: usize| &view.values[view.offset + i * view.row_stride as usize..][..columns];
        for (pair, packed) in packed.chunks_exact_mut(NR).enumerate() {
            let even = row(2 * pair);
            let odd = (2 * pair + 1 < k).then(|| row(2 * pair + 1));
            for half in 0..NR / 16 {
                let start = (16 * half).min(columns);
                let count = (columns - start).min(16);
                // SAFETY: the masked loads read `count` values of each row slice.
                unsafe {
                    let low = round(load(&even[start..], count));
                    let high = match odd {
                        Some(odd) => round(load(&odd[start..], count)),
                        None => _mm512_setzero_si512(),
                    };
                    let pairs = _mm512_or_si512(low, _mm512_slli_epi32::<16>(high));
                    _mm512_storeu_si512(packed[16 * half..].as_mut_ptr().cast(), pairs);
                }
            }
        }
    }

    /// A panel of a right operand whose columns are contiguous (a PyTorch weight seen
    /// transposed): each column's pairs, packed in place in `k`'s order, then spread.
    #[target_feature(enable = "avx512f")]
    unsafe fn pack_panel_columns(
        view: &MatrixView,
        k: usize,
        columns: usize,
        pairs: usize,
        packed: &mut [u32],
    ) {
        let mut column_pairs = vec![0u32; pairs];
        for column in 0..columns {
            let start = view.offset + column * view.column_stride as usize;
            // SAFETY: AVX512-F, as this function's contract; `column_pairs` holds `pairs`.
            unsafe { pack_contiguous(&view.values[start..][..k], &mut column_pairs) };
            for (pair, &value) in column_pairs.iter().enumerate() {
                packed[pair * NR + column] = value;
            }
        }
    }

    /// A panel of a right operand with neither stride 1, one value at a time.
    fn pack_panel_strided(view: &MatrixView, k: usize, columns: usize, packed: &mut [u32]) {
        let at = |i: usize, column: usize| {
            let index = view.offset as isize
                + i as isize * view.row_stride
                + column as isize * view.column_stride;
            to_bf16_bits(view.values[index as usize]) as u32
        };
        for (pair, packed) in packed.chunks_exact_mut(NR).enumerate() {
            for (column, packed) in packed[..columns].iter_mut().enumerate() {
                let high = if 2 * pair + 1 < k {
                    at(2 * pair + 1, column)
                } else {
                    0
                };
                *packed = at(2 * pair, column) | (high << 16);
            }
        }
    }

    /// Contiguous `values` as bf16 pairs in order (`pairs` holds `values.len().div_ceil(2)`;
    /// an odd last value is paired with 0): 32 values per step.
    ///
    /// # Safety
    /// The CPU has AVX512-F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pack_contiguous(values: &[f32], pairs: &mut [u32]) {
        assert_eq!(pairs.len(), values.len().div_ceil(2), "pairs of values");
        for (values, pairs) in values.chunks(32).zip(pairs.chunks_mut(16)) {
            let low_count = values.len().min(16);
            // SAFETY: the masked loads and store stay inside both chunks.
            unsafe {
                let low = round(load(values, low_count));
                let high = round(load(&values[low_count..], values.len() - low_count));
                // The low 16 bits of each lane, in order: value 2i in the low half of pair i.
                let low = _mm512_cvtepi32_epi16(low);
                let high = _mm512_cvtepi32_epi16(high);
                let joined = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low), high);
                _mm512_mask_storeu_epi32(pairs.as_mut_ptr().cast(), lanes(pairs.len()), joined);
            }
        }
    }

    /// The first `count` (at most 16) values of `values`, zeros after them.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load(values: &[f32], count: usize) -> __m512 {
        debug_assert!(count <= values.len().min(16));
        // SAFETY: the mask reads only the first `count` values.
        unsafe { _mm512_maskz_loadu_ps(lanes(count), values.as_ptr()) }
    }

    /// 16 values rounded to bf16 as [`to_bf16_bits`] rounds one, each in the low 16 bits of
    /// its lane.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn round(values: __m512) -> __m512i {
        let bits = _mm512_castps_si512(values);
        let upper = _mm512_srli_epi32::<16>(bits);
        let rounding = _mm512_add_epi32(
            _mm512_set1_epi32(0x7FFF),
            _mm512_and_si512(upper, _mm512_set1_epi32(1)),
        );
        let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(bits, rounding));
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(values, values);
        let quiet_nan = _mm512_or_si512(upper, _mm512_set1_epi32(0x40));
        _mm512_mask_blend_epi32(nan, rounded, quiet_nan)
    }

    /// The product of `rows` packed left rows with all panels (plus `bias`), into `output`
    /// (`rows x n`).
    ///
    /// # Safety
    /// The CPU has AVX512-F and AVX512-BF16; `left` holds `rows * pairs` pairs, `right`
    /// `n.div_ceil(NR) * pairs * NR`, `output` `rows * n` values, `bias` `n`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn block(
        left: &[u32],
        right: &[u32],
        (output, accumulate): (&mut [MaybeUninit<f32>], bool),
        bias: Option<&[f32]>,
        (rows, n, pairs): (usize, usize, usize),
    ) {
        let panels = n.div_ceil(NR);
        for pair_start in (0..pairs).step_by(KC) {
            let block_pairs = (pairs - pair_start).min(KC);
            // Only the first block may overwrite, and it adds the bias; later ones add to it.
            let add = accumulate || pair_start > 0;
            let bias = bias.filter(|_| pair_start == 0);
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
                        bias: bias.map(|bias| &bias[panel * NR..][..columns]),
                    };
                    // SAFETY: as this function's contract; `tile` stays inside the buffers.
                    unsafe {
                        match rows - row {
                            1 => tile.run::<1>(),
                            2 => tile.run::<2>(),
                            3 => tile.run::<3>(),
                            4 => tile.run::<4>(),
                            5 => tile.run::<5>(),
                            6 => tile.run::<6>(),
                            7 => tile.run::<7>(),
                            8 => tile.run::<8>(),
                            9 => tile.run::<9>(),
                            10 => tile.run::<10>(),
                            11 => tile.run::<11>(),
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
        output: &'a mut [MaybeUninit<f32>],
        output_stride: usize,
        columns: usize,
        add: bool,
        /// The bias of the block's columns, which the sums start from.
        bias: Option<&'a [f32]>,
    }

    impl Tile<'_> {
        /// # Safety
        /// AVX512-F and AVX512-BF16; `R` rows of `left` (`left_stride` apart) hold `pairs`
        /// pairs, `right` `pairs * NR`, and `R` rows of `output` `columns` values.
        #[target_feature(enable = "avx512f,avx512bf16")]
        #[inline]
        unsafe fn run<const R: usize>(self) {
            let masks = [
                lanes(self.columns.min(16)),
                lanes(self.columns.saturating_sub(16)),
            ];
            let start = match self.bias {
                // SAFETY: the masks keep the loads inside the `columns` values of `bias`.
                Some(bias) => unsafe {
                    [
                        _mm512_maskz_loadu_ps(masks[0], bias.as_ptr()),
                        _mm512_maskz_loadu_ps(masks[1], bias.as_ptr().add(16.min(bias.len()))),
                    ]
                },
                None => [_mm512_setzero_ps(); 2],
            };
            let mut sums = [start; R];
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
            for (r, sums) in sums.iter().enumerate() {
                for (half, (&sum, &mask)) in sums.iter().zip(&masks).enumerate() {
                    // SAFETY: the mask keeps the columns inside the row's `columns`.
                    unsafe {
                        let at = self
                            .output
                            .as_mut_ptr()
                            .cast::<f32>()
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

    /// The first `count` (at most 16) lanes.
    fn lanes(count: usize) -> __mmask16 {
        ((1u32 << count) - 1) as __mmask16
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

    #[test]
    fn vector_rounding_matches_the_scalar_one() {
        if !supported() {
            return;
        }
        let mut special = vec![
            1.0,
            1.0 + 2f32.powi(-8),
            1.0 + 3.0 * 2f32.powi(-8),
            1.0 + 2f32.powi(-8) + 2f32.powi(-20),
            -2.5,
            -0.0,
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN_POSITIVE / 3.0,
            -f32::MIN_POSITIVE * 0.75,
        ];
        special.extend(values(40, 4));
        // Every length up to 53 (odd ones pad their last pair with 0) and every start.
        for start in 0..special.len() {
            let values = &special[start..];
            let mut pairs = vec![7u32; values.len().div_ceil(2)];
            // SAFETY: `supported()` implies AVX512-F.
            unsafe { x86::pack_contiguous(values, &mut pairs) };
            for (i, &pair) in pairs.iter().enumerate() {
                let low = to_bf16_bits(values[2 * i]) as u32;
                let high = values.get(2 * i + 1).map_or(0, |&v| to_bf16_bits(v) as u32);
                assert_eq!(pair, low | (high << 16), "pair {i} of {values:?}");
            }
        }
    }

    /// How the right operand lies in its storage.
    #[derive(Clone, Copy, Debug)]
    enum Layout {
        /// `[k, n]` row-major (a Burn weight).
        RowMajor,
        /// `[n, k]` row-major, seen transposed (a PyTorch weight).
        Transposed,
        /// Every other value of a larger buffer, after an offset (neither stride is 1).
        Strided,
    }

    /// The product of the bf16-rounded operands in f64, then compared with the kernel's.
    fn check(m: usize, n: usize, k: usize, layout: Layout, accumulate: bool, with_bias: bool) {
        let left = values(m * k, 1);
        let offset = 3;
        let right = values(offset + 2 * k * n, 2);
        let initial = values(m * n, 3);
        let (row_stride, column_stride, offset) = match layout {
            Layout::RowMajor => (n as isize, 1, 0),
            Layout::Transposed => (1, k as isize, 0),
            Layout::Strided => (2 * n as isize, 2, offset),
        };
        let at = |i: usize, j: usize| {
            right[(offset as isize + i as isize * row_stride + j as isize * column_stride) as usize]
        };
        let mut output = initial.clone();
        let operand = MatrixView {
            values: &right,
            offset,
            row_stride,
            column_stride,
        };
        let Some(packed) = PackedRight::new(&operand, (k, n)) else {
            assert!(!supported());
            return;
        };
        let bias = values(n, 5);
        let bias = with_bias.then_some(bias.as_slice());
        if accumulate {
            gemm_bf16(m, &left, &packed, Output::Add(&mut output), bias);
        } else {
            // Over the initial values: one the kernel failed to write would stay and differ.
            let mut written: Vec<_> = output.iter().map(|&v| MaybeUninit::new(v)).collect();
            gemm_bf16(m, &left, &packed, Output::Write(&mut written), bias);
            // SAFETY: built from initialized values.
            output = written.iter().map(|v| unsafe { v.assume_init() }).collect();
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
                if let Some(bias) = bias {
                    expected += bias[j] as f64;
                    magnitude += (bias[j] as f64).abs();
                }
                let actual = output[i * n + j] as f64;
                assert!(
                    (actual - expected).abs() <= 1e-6 * magnitude + 1e-6,
                    "{m}x{n}x{k} {layout:?} at ({i}, {j}): {actual} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn matches_the_product_of_the_rounded_inputs() {
        // Edge rows (m % 12), edge columns (n % 32, n % 16), odd k, several k blocks (k > 384),
        // several tasks (m > 48).
        for (m, n, k) in [
            (1, 1, 1),
            (7, 33, 5),
            (13, 64, 130),
            (50, 47, 1031),
            (12, 32, 384),
            (101, 17, 9),
        ] {
            check(m, n, k, Layout::RowMajor, false, false);
            check(m, n, k, Layout::Transposed, true, true);
            check(m, n, k, Layout::Strided, false, true);
        }
    }

    #[test]
    fn empty_products() {
        let mut output = vec![MaybeUninit::new(5.0); 6];
        let operand = MatrixView {
            values: &[],
            offset: 0,
            row_stride: 3,
            column_stride: 1,
        };
        if let Some(packed) = PackedRight::new(&operand, (0, 3)) {
            gemm_bf16(2, &[], &packed, Output::Write(&mut output), None);
            // SAFETY: initialized above.
            let mut output: Vec<f32> = output.iter().map(|v| unsafe { v.assume_init() }).collect();
            assert_eq!(output, vec![0.0; 6]);
            let bias = Some([1.0, 2.0, 3.0].as_slice());
            gemm_bf16(2, &[], &packed, Output::Add(&mut output), bias);
            assert_eq!(output, vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        }
    }
}
