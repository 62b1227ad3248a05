//! Strided matrix views of `f32` buffers, and their f32 product (`gemm`).

/// A `rows x columns` matrix read at `values[offset + i * row_stride + j * column_stride]`:
/// a row-major buffer, or a strided view of one (e.g. a transposed PyTorch weight).
#[derive(Clone, Copy)]
pub struct MatrixView<'a> {
    /// Storage of the matrix.
    pub values: &'a [f32],
    /// Position of element (0, 0).
    pub offset: usize,
    /// Distance between consecutive rows.
    pub row_stride: isize,
    /// Distance between consecutive columns.
    pub column_stride: isize,
}

impl<'a> MatrixView<'a> {
    /// A contiguous row-major matrix with `columns` columns.
    pub fn row_major(values: &'a [f32], columns: usize) -> Self {
        MatrixView {
            values,
            offset: 0,
            row_stride: columns as isize,
            column_stride: 1,
        }
    }

    /// The transposed matrix (the same values).
    pub fn transposed(self) -> Self {
        MatrixView {
            row_stride: self.column_stride,
            column_stride: self.row_stride,
            ..self
        }
    }
}

/// Below this many multiply-adds a product runs on one thread (as Burn's Flex backend does).
const PARALLEL_WORK: usize = 192 * 192 * 192;

/// `output [m x n] (+)= left [m x k] x right [k x n]` in f32 (`gemm`, the matrix library of
/// Burn's Flex backend, with its AVX-512 kernels); `accumulate`: add to what `output` holds.
pub fn f32_gemm(
    dims: (usize, usize, usize),
    left: &MatrixView,
    right: &MatrixView,
    output: &mut [f32],
    accumulate: bool,
) {
    let n = dims.1;
    f32_gemm_into(dims, left, right, (output, n), accumulate, 1.0);
}

/// `output (+)= scale * left [m x k] x right [k x n]`, where `output` is `(values,
/// row_stride)`: row `i` of the `m x n` result starts at `values[i * row_stride]` (e.g. one
/// head's columns of a `[tokens, heads * head_dim]` buffer).
pub fn f32_gemm_into(
    (m, n, k): (usize, usize, usize),
    left: &MatrixView,
    right: &MatrixView,
    (output, output_row_stride): (&mut [f32], usize),
    accumulate: bool,
    scale: f32,
) {
    assert!(
        m == 0
            || n == 0
            || ((m - 1) * output_row_stride + n <= output.len() && n <= output_row_stride),
        "output is not m x n"
    );
    for (view, rows, columns) in [(left, m, k), (right, k, n)] {
        if rows > 0 && columns > 0 {
            let last = view.offset as isize
                + (rows as isize - 1) * view.row_stride
                + (columns as isize - 1) * view.column_stride;
            assert!(
                (last as usize) < view.values.len() && view.offset < view.values.len(),
                "matrix view outside its storage"
            );
        }
    }
    let parallelism = if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_WORK {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `output` holds `m` rows of `n` values `output_row_stride` apart (asserted); both
    // views' elements lie inside their storage
    // (checked above for the corners of views with non-negative strides, which all views
    // of this crate have).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            output.as_mut_ptr(),
            1,
            output_row_stride as isize,
            accumulate,
            left.values.as_ptr().add(left.offset),
            left.column_stride,
            left.row_stride,
            right.values.as_ptr().add(right.offset),
            right.column_stride,
            right.row_stride,
            1.0f32,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}
