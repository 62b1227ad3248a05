//! Multi-head scaled dot-product attention in one pass: per query row, the scores against all
//! keys, the additive bias, the softmax and the weighted sum of the values, without
//! materializing the `[batch, heads, queries, keys]` scores or splitting and merging heads.

use burn::nn::Dropout;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn_flex::FlexTensor;
use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::flex::{
    contiguous, dims, from_flex, from_flex_or_unchanged, tensor_of, to_flex, values,
};
use super::matrix::MatrixView;
use super::precision::{MatmulPrecision, product};
use super::{attention_training, math, parallel};

/// Rayon tasks per thread: a few, to balance the load; not many, since each task transposes
/// the keys of every head.
const TASKS_PER_THREAD: usize = 2;

/// The inputs of a multi-head attention (see [`attention`]).
#[derive(Debug, Clone)]
pub struct AttentionInput<B: Backend> {
    /// Queries, `[batch, queries, heads * head_dim]`.
    pub query: Tensor<B, 3>,
    /// Keys, `[batch, keys, heads * head_dim]`.
    pub key: Tensor<B, 3>,
    /// Values, `[batch, keys, heads * head_dim]`.
    pub value: Tensor<B, 3>,
    /// Number of heads.
    pub heads: usize,
    /// Factor of the dot products (usually `head_dim^-0.5`).
    pub scale: f32,
    /// Additive mask or position bias, `[bias_batch, heads or 1, queries or 1, keys]`.
    pub bias: Option<Tensor<B, 4>>,
}

/// `softmax(q k^T * scale + bias) v` for every head, heads side by side in the features:
/// `[batch, queries, heads * head_dim]`.
///
/// The bias's heads and query rows broadcast as usual (size 1 or the full size); its batch
/// dimension `bias_batch` must divide `batch`, and batch element `b` uses bias
/// `b % bias_batch` (the usual broadcasting when `bias_batch` is 1 or `batch`; Swin's
/// per-window bias repeating over images otherwise). `dropout` applies to the attention
/// probabilities (only where it is active: in training, under autodiff).
pub fn attention<B: Backend>(input: AttentionInput<B>, dropout: Option<&Dropout>) -> Tensor<B, 3> {
    check_bias_shape(&input);
    if !MatmulPrecision::fused(false) {
        return composed_attention(input, dropout);
    }
    let input = match MatmulPrecision::fused(true) {
        true => match attention_training::try_attention(input, dropout) {
            Ok(output) => return output,
            Err(input) => input,
        },
        false => input,
    };
    let AttentionInput {
        query,
        key,
        value,
        heads,
        scale,
        bias,
    } = input;
    let flex = (
        to_flex(query),
        to_flex(key),
        to_flex(value),
        bias.map(to_flex).transpose(),
    );
    match flex {
        (Ok(query), Ok(key), Ok(value), Ok(bias)) => from_flex(flex_attention(
            &query,
            &key,
            &value,
            heads,
            scale,
            bias.map(contiguous).as_ref(),
        )),
        (query, key, value, bias) => {
            let tensor = from_flex_or_unchanged;
            let bias = match bias {
                Ok(bias) => bias.map(from_flex),
                Err(bias) => Some(bias),
            };
            let input = AttentionInput {
                query: tensor(query),
                key: tensor(key),
                value: tensor(value),
                heads,
                scale,
                bias,
            };
            composed_attention(input, dropout)
        }
    }
}

/// Panics unless the bias broadcasts to the attention scores as [`attention`] describes.
fn check_bias_shape<B: Backend>(input: &AttentionInput<B>) {
    let [batch, queries, _] = input.query.dims();
    let keys = input.key.dims()[1];
    check_bias_broadcast(input.bias.as_ref(), [batch, queries, keys], input.heads);
}

/// Panics unless `bias` broadcasts to the scores of `heads` heads of `[batch, queries, keys]`.
fn check_bias_broadcast<B: Backend>(
    bias: Option<&Tensor<B, 4>>,
    [batch, queries, keys]: [usize; 3],
    heads: usize,
) {
    let Some(bias) = bias else {
        return;
    };
    let [bias_batch, bias_heads, bias_queries, bias_keys] = bias.dims();
    assert!(
        bias_batch > 0
            && batch % bias_batch == 0
            && (bias_heads == 1 || bias_heads == heads)
            && (bias_queries == 1 || bias_queries == queries)
            && bias_keys == keys,
        "attention bias {:?} does not broadcast to [batch {batch}, heads {heads}, queries \
         {queries}, keys {keys}]",
        bias.dims(),
    );
}

/// [`attention`] of the three column blocks of one joint projection (queries, keys and
/// values in that order, as Swin's `qkv` layer computes them), `qkv` `[batch, tokens, 3 *
/// heads * head_dim]`. Under training on the CPU the backward pass writes the three
/// gradients into one tensor; Burn's slices would each add theirs into a tensor of zeros of
/// the joint size, on one thread.
pub fn joint_attention<B: Backend>(
    qkv: Tensor<B, 3>,
    heads: usize,
    scale: f32,
    bias: Option<Tensor<B, 4>>,
    dropout: Option<&Dropout>,
) -> Tensor<B, 3> {
    let [batch, tokens, joint_features] = qkv.dims();
    check_bias_broadcast(bias.as_ref(), [batch, tokens, tokens], heads);
    let (qkv, bias) = match MatmulPrecision::fused(true) {
        true => match attention_training::try_joint_attention(qkv, heads, scale, bias, dropout) {
            Ok(output) => return output,
            Err(unchanged) => unchanged,
        },
        false => (qkv, bias),
    };
    let features = joint_features / 3;
    let part = |index: usize| qkv.clone().narrow(2, index * features, features);
    let input = AttentionInput {
        query: part(0),
        key: part(1),
        value: part(2),
        heads,
        scale,
        bias,
    };
    attention(input, dropout)
}

/// [`attention`] with Burn operations: what the fused kernels replace, and what other backends
/// (CUDA) run.
pub fn composed_attention<B: Backend>(
    input: AttentionInput<B>,
    dropout: Option<&Dropout>,
) -> Tensor<B, 3> {
    let heads = input.heads;
    let [batch, queries, features] = input.query.dims();
    let head_dim = features / heads;
    let split_heads = |states: Tensor<B, 3>| -> Tensor<B, 4> {
        let [batch, len, _] = states.dims();
        states
            .reshape([batch, len, heads, head_dim])
            .swap_dims(1, 2)
    };
    let scores = product(
        split_heads(input.query.mul_scalar(input.scale)),
        split_heads(input.key).swap_dims(2, 3),
        Tensor::matmul,
    );
    let scores = match input.bias {
        Some(bias) => {
            let [bias_batch, _, bias_queries, keys] = bias.dims();
            if bias_batch == 1 || bias_batch == batch {
                scores + bias
            } else {
                // Bias batch element `b % bias_batch`: fold the batch into groups of
                // `bias_batch` and broadcast over the groups.
                let bias = bias
                    .expand([bias_batch, heads, bias_queries.max(queries), keys])
                    .reshape([1, bias_batch * heads, queries, keys]);
                let grouped = [batch / bias_batch, bias_batch * heads, queries, keys];
                (scores.reshape(grouped) + bias).reshape([batch, heads, queries, keys])
            }
        }
        None => scores,
    };
    let probs = softmax(scores, 3);
    let probs = match dropout {
        Some(layer) => super::dropout(layer, probs),
        None => probs,
    };
    product(probs, split_heads(input.value), Tensor::matmul)
        .swap_dims(1, 2)
        .reshape([batch, queries, features])
}

/// Rows of a 3-d tensor whose last dimension is contiguous (e.g. one of the query, key and
/// value column blocks of a joint projection).
pub(super) struct Rows<'a> {
    values: &'a [f32],
    start: usize,
    batch_stride: usize,
    row_stride: usize,
}

impl<'a> Rows<'a> {
    /// The rows of `tensor` when its strides allow (non-negative, last one 1).
    pub(super) fn of(tensor: &'a FlexTensor) -> Option<Self> {
        let layout = tensor.layout();
        let strides = layout.strides();
        let stride = |dim: usize| usize::try_from(strides[dim]).ok();
        (strides[2] == 1).then_some(())?;
        Some(Rows {
            values: tensor.storage(),
            start: layout.start_offset(),
            batch_stride: stride(0)?,
            row_stride: stride(1)?,
        })
    }

    /// A contiguous copy of `tensor` when its strides do not allow [`Rows::of`] (negative or
    /// inner strides).
    pub(super) fn copy_if_needed(tensor: &FlexTensor) -> Option<FlexTensor> {
        Rows::of(tensor)
            .is_none()
            .then(|| contiguous(tensor.clone()))
    }

    /// The rows of `copy` (made by [`Rows::copy_if_needed`]) if there is one, else of `tensor`.
    pub(super) fn of_either(tensor: &'a FlexTensor, copy: &'a Option<FlexTensor>) -> Self {
        Rows::of(copy.as_ref().unwrap_or(tensor)).expect("contiguous tensors have rows")
    }

    /// Columns `columns` of row `row` of batch element `batch`.
    #[inline(always)]
    fn get(&self, batch: usize, row: usize, columns: std::ops::Range<usize>) -> &'a [f32] {
        let start = self.start + batch * self.batch_stride + row * self.row_stride;
        &self.values[start + columns.start..start + columns.end]
    }

    /// Columns `head * head_dim..(head + 1) * head_dim` of every row of batch element
    /// `batch`, as a `[rows, head_dim]` matrix.
    pub(super) fn head(&self, batch: usize, head: usize, head_dim: usize) -> MatrixView<'a> {
        MatrixView {
            values: self.values,
            offset: self.start + batch * self.batch_stride + head * head_dim,
            row_stride: self.row_stride as isize,
            column_stride: 1,
        }
    }
}

/// The fused kernel of [`attention`] on Flex tensors.
fn flex_attention(
    query: &FlexTensor,
    key: &FlexTensor,
    value: &FlexTensor,
    heads: usize,
    scale: f32,
    bias: Option<&FlexTensor>,
) -> FlexTensor {
    let [batch, queries, features] = dims(query)[..] else {
        unreachable!("attention inputs are 3-d")
    };
    let keys = dims(key)[1];
    let head_dim = features / heads;
    // Views that the kernel cannot read in place (negative or inner strides) are copied.
    let copies = [query, key, value].map(Rows::copy_if_needed);
    let [query, key, value] = [(query, &copies[0]), (key, &copies[1]), (value, &copies[2])]
        .map(|(tensor, copy)| Rows::of_either(tensor, copy));
    let bias = bias.map(Bias::of);

    let mut output = parallel::zeroed(batch * queries * features);
    // Batch elements are split into tasks of query rows only when there are too few of them
    // (BERT's few long sequences, not Swin's many windows).
    let tasks_per_element =
        (TASKS_PER_THREAD * rayon::current_num_threads()).div_ceil(batch.max(1));
    let rows_per_task = queries.div_ceil(tasks_per_element).max(1);
    if !output.is_empty() {
        output
            .par_chunks_mut(queries * features)
            .enumerate()
            .for_each(|(batch_index, output)| {
                output
                    .par_chunks_mut(rows_per_task * features)
                    .enumerate()
                    .for_each(|(task, output)| {
                        pulp::Arch::new().dispatch(AttentionTask {
                            inputs: TaskInputs {
                                query: &query,
                                key: &key,
                                value: &value,
                                bias: bias.as_ref(),
                                batch: batch_index,
                                first_query: task * rows_per_task,
                                keys,
                                heads,
                                head_dim,
                                scale,
                            },
                            output,
                        })
                    });
            });
    }
    tensor_of(output, vec![batch, queries, features])
}

/// A contiguous additive bias `[bias_batch, heads or 1, queries or 1, keys]`.
pub(super) struct Bias<'a> {
    values: &'a [f32],
    /// `[bias_batch, heads or 1, queries or 1, keys]`.
    pub(super) dims: [usize; 4],
}

impl<'a> Bias<'a> {
    /// The bias in `tensor` (contiguous, 4-d).
    pub(super) fn of(tensor: &'a FlexTensor) -> Self {
        Bias {
            values: values(tensor),
            dims: dims(tensor).try_into().expect("attention bias is 4-d"),
        }
    }

    /// The bias of query `query` of head `head` of batch element `batch`.
    #[inline(always)]
    pub(super) fn row(&self, batch: usize, head: usize, query: usize) -> &[f32] {
        let [bias_batch, bias_heads, bias_queries, keys] = self.dims;
        let head = if bias_heads == 1 { 0 } else { head };
        let query = if bias_queries == 1 { 0 } else { query };
        let row = ((batch % bias_batch) * bias_heads + head) * bias_queries + query;
        &self.values[row * keys..(row + 1) * keys]
    }
}

/// Floats in one AVX-512 register: the width of the kernel's blocks.
const LANES: usize = 16;
/// Most query rows computed together, so that each key or value loaded serves that many rows.
const QUERY_BLOCK: usize = 8;

/// The matrix-product micro-kernel of the attention, as an `[[f32; LANES]; R]` expression: for
/// each of the `R` rows of `weights` (`[&[f32]; R]`, each `steps` long), the sum over
/// `step < steps` of `weights[r][step]` times the `LANES` values of `matrix` from
/// `step * stride + start`. One accumulator register per row, so that each `LANES` values
/// loaded serve `R` rows.
///
/// A macro rather than a function: its loops must be compiled inside the caller's
/// vector-instruction context (a call compiled outside it would make `mul_add` a library call).
macro_rules! weighted_sums {
    ($rows:expr, $weights:expr, $steps:expr, $matrix:expr, $stride:expr, $start:expr) => {{
        let (weights, steps): ([&[f32]; $rows], usize) = ($weights, $steps);
        assert!(weights.iter().all(|weights| weights.len() == steps));
        let mut sums = [[0.0f32; LANES]; $rows];
        for step in 0..steps {
            let values: &[f32; LANES] = $matrix[step * $stride + $start..][..LANES]
                .try_into()
                .expect("LANES values");
            for (sums, weights) in sums.iter_mut().zip(weights) {
                // SAFETY: `step < steps`, the length of every row of `weights` (asserted).
                let weight = unsafe { *weights.get_unchecked(step) };
                for (sum, &value) in sums.iter_mut().zip(values) {
                    *sum = weight.mul_add(value, *sum);
                }
            }
        }
        sums
    }};
}

/// What the tasks of one attention share, and where a task's query rows start.
#[derive(Clone, Copy)]
struct TaskInputs<'a> {
    query: &'a Rows<'a>,
    key: &'a Rows<'a>,
    value: &'a Rows<'a>,
    bias: Option<&'a Bias<'a>>,
    batch: usize,
    first_query: usize,
    keys: usize,
    heads: usize,
    head_dim: usize,
    scale: f32,
}

/// Attention of a block of query rows of one batch element, all heads.
struct AttentionTask<'a> {
    inputs: TaskInputs<'a>,
    /// The task's output rows, `[rows, heads * head_dim]`.
    output: &'a mut [f32],
}

/// Bytes of transposed keys gathered at once. The heads of a group are gathered together, so
/// each input row is read once per group, a whole stretch at a time, rather than a few
/// columns per head (Swin's windows: all or half of a window's heads in one group; BERT's
/// long sequences: one head per group). The group's buffers stay in the core's L2 cache.
const GROUP_KEY_BYTES: usize = 128 * 1024;

/// One group of heads' inputs, gathered into contiguous buffers by [`AttentionTask`] and
/// reused from group to group.
struct GroupBuffers {
    /// The group's columns of the task's query rows, scaled, `[rows, width]`.
    queries: Vec<f32>,
    /// The group's keys transposed, `[width, padded_keys]` (zeros past `keys`).
    keys_transposed: Vec<f32>,
    /// The group's values, `[keys, width]`.
    values: Vec<f32>,
}

impl WithSimd for AttentionTask<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let inputs = &self.inputs;
        let (keys, head_dim) = (inputs.keys, inputs.head_dim);
        let features = inputs.heads * head_dim;
        let padded_keys = keys.div_ceil(LANES) * LANES;
        let rows = self.output.len() / features;
        let group_heads =
            (GROUP_KEY_BYTES / (padded_keys * head_dim * 4).max(1)).clamp(1, inputs.heads);
        let group_width = group_heads * head_dim;
        let mut group = GroupBuffers {
            queries: vec![0.0; rows * group_width],
            keys_transposed: vec![0.0; group_width * padded_keys],
            values: vec![0.0; keys * group_width],
        };
        let mut scores = vec![0.0; QUERY_BLOCK * padded_keys];
        // Blocks of near-equal sizes (49 rows: 7 blocks of 7).
        let blocks = rows.div_ceil(QUERY_BLOCK);
        for first_head in (0..inputs.heads).step_by(group_heads) {
            let heads = first_head..(first_head + group_heads).min(inputs.heads);
            let columns = heads.start * head_dim..heads.end * head_dim;
            let width = columns.len();
            group.gather(inputs, columns.clone(), rows, padded_keys);
            for head in heads {
                let offset = (head - first_head) * head_dim;
                for index in 0..blocks {
                    let (first, end) = (index * rows / blocks, (index + 1) * rows / blocks);
                    let block = QueryBlock {
                        inputs,
                        head,
                        first,
                        queries: &group.queries[first * width + offset..],
                        keys_transposed: &group.keys_transposed[offset * padded_keys..],
                        values: &group.values[offset..],
                        width,
                        padded_keys,
                    };
                    let output = &mut self.output[first * features..end * features];
                    match end - first {
                        1 => block.run::<1>(&mut scores, output),
                        2 => block.run::<2>(&mut scores, output),
                        3 => block.run::<3>(&mut scores, output),
                        4 => block.run::<4>(&mut scores, output),
                        5 => block.run::<5>(&mut scores, output),
                        6 => block.run::<6>(&mut scores, output),
                        7 => block.run::<7>(&mut scores, output),
                        8 => block.run::<8>(&mut scores, output),
                        _ => unreachable!("blocks have 1 to QUERY_BLOCK rows"),
                    }
                }
            }
        }
    }
}

impl GroupBuffers {
    /// Gathers columns `columns` of the task's `rows` query rows (scaled), and of every key and
    /// value row, each input row read once.
    #[inline(always)]
    fn gather(
        &mut self,
        inputs: &TaskInputs,
        columns: std::ops::Range<usize>,
        rows: usize,
        padded_keys: usize,
    ) {
        let width = columns.len();
        let queries = self.queries[..rows * width].chunks_exact_mut(width);
        for (row, queries) in queries.enumerate() {
            let query = inputs
                .query
                .get(inputs.batch, inputs.first_query + row, columns.clone());
            for (scaled, &value) in queries.iter_mut().zip(query) {
                *scaled = value * inputs.scale;
            }
        }
        let values = self.values[..inputs.keys * width].chunks_exact_mut(width);
        for (key, values) in values.enumerate() {
            let key_row = inputs.key.get(inputs.batch, key, columns.clone());
            for (column, &value) in key_row.iter().enumerate() {
                self.keys_transposed[column * padded_keys + key] = value;
            }
            values.copy_from_slice(inputs.value.get(inputs.batch, key, columns.clone()));
        }
    }
}

/// One head's attention for a block of query rows of a task.
struct QueryBlock<'a> {
    inputs: &'a TaskInputs<'a>,
    head: usize,
    /// The block's first row in the task.
    first: usize,
    /// The block's scaled queries from the head's first column: row `r` at `r * width`.
    queries: &'a [f32],
    /// The head's transposed keys: `[head_dim, padded_keys]` at the start.
    keys_transposed: &'a [f32],
    /// The head's values from its first column: key `k` at `k * width`.
    values: &'a [f32],
    /// Row length of the group buffers.
    width: usize,
    padded_keys: usize,
}

impl QueryBlock<'_> {
    /// Writes the head's columns of the block's `R` output rows (`[R, features]`), with
    /// `scores` as scratch (`QUERY_BLOCK * padded_keys`).
    #[inline(always)]
    fn run<const R: usize>(&self, scores: &mut [f32], output: &mut [f32]) {
        let inputs = self.inputs;
        let (keys, head_dim, padded_keys) = (inputs.keys, inputs.head_dim, self.padded_keys);
        let columns = self.head * head_dim..(self.head + 1) * head_dim;
        let scores = &mut scores[..R * padded_keys];
        let queries: [&[f32]; R] =
            std::array::from_fn(|row| &self.queries[row * self.width..][..head_dim]);
        block_scores::<R>(
            queries,
            &self.keys_transposed[..head_dim * padded_keys],
            scores,
        );
        let mut normalizers = [0.0f32; R];
        for (row, normalizer) in normalizers.iter_mut().enumerate() {
            // The whole padded row, in steps of LANES (the padding's probabilities are below
            // 1e-37 and left out of the weighted sums).
            let scores = &mut scores[row * padded_keys..][..padded_keys];
            if let Some(bias) = inputs.bias {
                let query = inputs.first_query + self.first + row;
                for (score, bias) in scores
                    .iter_mut()
                    .zip(bias.row(inputs.batch, self.head, query))
                {
                    *score += bias;
                }
            }
            scores[keys..].fill(f32::NEG_INFINITY);
            let max = parallel::max(scores);
            for scores in scores.chunks_exact_mut(LANES) {
                for score in scores {
                    *score = math::exp(*score - max);
                }
            }
            *normalizer = 1.0 / parallel::sum(scores);
        }
        let probs: [&[f32]; R] = std::array::from_fn(|row| &scores[row * padded_keys..][..keys]);
        let features = output.len() / R;
        let full = head_dim / LANES * LANES;
        for start in (0..full).step_by(LANES) {
            let sums = weighted_sums!(R, probs, keys, self.values, self.width, start);
            for (row, sums) in sums.iter().enumerate() {
                let output = &mut output[row * features + columns.start + start..][..LANES];
                for (output, sum) in output.iter_mut().zip(sums) {
                    *output = sum * normalizers[row];
                }
            }
        }
        // Columns past the last multiple of LANES (head sizes that are not multiples of 16).
        for (row, normalizer) in normalizers.iter().enumerate() {
            for column in full..head_dim {
                let sum: f32 = probs[row][..keys]
                    .iter()
                    .enumerate()
                    .map(|(key, prob)| prob * self.values[key * self.width + column])
                    .sum();
                output[row * features + columns.start + column] = sum * normalizer;
            }
        }
    }
}

/// `scores[r] = queries[r] . keys_transposed` for `R` query rows.
///
/// `queries` are `R` rows of `head_dim` values, `keys_transposed` `[head_dim, padded_keys]`,
/// `scores` `[R, padded_keys]`.
#[inline(always)]
fn block_scores<const R: usize>(queries: [&[f32]; R], keys_transposed: &[f32], scores: &mut [f32]) {
    let padded_keys = scores.len() / R;
    let head_dim = keys_transposed.len() / padded_keys;
    for start in (0..padded_keys).step_by(LANES) {
        let sums = weighted_sums!(R, queries, head_dim, keys_transposed, padded_keys, start);
        for (row, sums) in sums.iter().enumerate() {
            scores[row * padded_keys + start..][..LANES].copy_from_slice(sums);
        }
    }
}
