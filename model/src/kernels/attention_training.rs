//! Multi-head attention under training on the CPU (`Autodiff<Flex>`), with a backward pass of
//! its own (Burn's `Backward` trait, as for the linear kernels).
//!
//! Forward, per batch element and head: the scores are one matrix product read straight from
//! the query and key column blocks (no copies to split the heads), the scale, bias and softmax
//! are one vectorized pass per row, and the product with the values is written straight into
//! the head's output columns (no copy to merge the heads). The probabilities `P` are kept for
//! the backward pass. With `M` the dropout mask (0 or `1 / keep`) and `dO` the output's
//! gradient, the backward pass is four products per head and one pass per row:
//!
//! - `dV = (P∘M)ᵀ dO` and `dP = (dO Vᵀ)∘M`,
//! - the softmax's derivative `dS = P∘(dP − rowsum(dP∘P))`,
//! - `dQ = scale · dS K` and `dK = scale · dSᵀ Q`,
//! - the bias's gradient: `dS` summed over the dimensions along which the bias broadcasts
//!   (batch elements sharing a bias, heads or query rows of size 1).
//!
//! When the query, key and value are the column blocks of one joint projection (Swin's
//! `qkv`, [`super::joint_attention`]), that tensor is the one parent and the three gradients
//! are written side by side into one gradient of its shape.
//!
//! The mask is the one [`super::dropout`] would draw for the `[batch, heads, queries, keys]`
//! probabilities (the same seed from Burn's generator, the same value per element), computed
//! again in the backward pass rather than stored. Burn's composition instead copies the
//! heads apart and back together, makes a pass each for the scale, the bias, the softmax's
//! three steps and dropout, and as many again backward.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, OpsPrep};
use burn::nn::Dropout;
use burn::prelude::*;
use burn_flex::FlexTensor;
use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::attention::{AttentionInput, Bias, Rows};
use super::dropout::MaskDraw;
use super::flex::{contiguous, dims, from_training, tensor_of, to_training};
use super::linear_training::TrainingTensor;
use super::matrix::{MatrixView, f32_gemm, f32_gemm_into};
use super::{math, parallel};

/// `attention(input, dropout)` by this module's kernels when `B` is `Autodiff<Flex>` and every
/// tensor is `f32`; otherwise `input` back, unchanged.
pub(super) fn try_attention<B: Backend>(
    input: AttentionInput<B>,
    dropout: Option<&Dropout>,
) -> Result<Tensor<B, 3>, AttentionInput<B>> {
    let AttentionInput {
        query,
        key,
        value,
        heads,
        scale,
        bias,
    } = input;
    let device = query.device();
    let back = |tensor: Result<TrainingTensor, Tensor<B, 3>>| {
        tensor.map_or_else(|unchanged| unchanged, from_training)
    };
    match (
        to_training(query),
        to_training(key),
        to_training(value),
        bias.map(to_training).transpose(),
    ) {
        (Ok(query), Ok(key), Ok(value), Ok(bias)) => {
            let mask = dropout.and_then(|layer| MaskDraw::of::<B>(layer, &device));
            Ok(from_training(attention(
                Projections::Separate(Box::new([query, key, value])),
                bias,
                heads,
                scale,
                mask,
            )))
        }
        (query, key, value, bias) => Err(AttentionInput {
            query: back(query),
            key: back(key),
            value: back(value),
            heads,
            scale,
            bias: match bias {
                Ok(bias) => bias.map(from_training),
                Err(bias) => Some(bias),
            },
        }),
    }
}

/// The `qkv` and `bias` of an attention that the kernels do not run, handed back.
type Unfused<B> = (Tensor<B, 3>, Option<Tensor<B, 4>>);

/// `joint_attention(qkv, heads, scale, bias, dropout)` by this module's kernels when `B` is
/// `Autodiff<Flex>` and every tensor is `f32`; otherwise `qkv` and `bias` back, unchanged.
pub(super) fn try_joint_attention<B: Backend>(
    qkv: Tensor<B, 3>,
    heads: usize,
    scale: f32,
    bias: Option<Tensor<B, 4>>,
    dropout: Option<&Dropout>,
) -> Result<Tensor<B, 3>, Unfused<B>> {
    let device = qkv.device();
    match (to_training(qkv), bias.map(to_training).transpose()) {
        (Ok(qkv), Ok(bias)) => {
            let mask = dropout.and_then(|layer| MaskDraw::of::<B>(layer, &device));
            Ok(from_training(attention(
                Projections::Joint(qkv),
                bias,
                heads,
                scale,
                mask,
            )))
        }
        (qkv, bias) => Err((
            qkv.map_or_else(|unchanged| unchanged, from_training),
            match bias {
                Ok(bias) => bias.map(from_training),
                Err(bias) => Some(bias),
            },
        )),
    }
}

/// Where the queries, keys and values come from.
enum Projections {
    /// Three tensors `[batch, tokens, features]` (boxed: the joint variant is one tensor).
    Separate(Box<[TrainingTensor; 3]>),
    /// The three column blocks of one `[batch, tokens, 3 * features]` tensor.
    Joint(TrainingTensor),
}

/// The fused attention of `projections` with its backward pass (parents: the projections'
/// tensors, then the bias if any).
fn attention(
    projections: Projections,
    bias: Option<TrainingTensor>,
    heads: usize,
    scale: f32,
    mask: Option<MaskDraw>,
) -> TrainingTensor {
    let bias_node = bias.as_ref().map(|bias| bias.node.clone());
    let bias = bias.map(|bias| contiguous(bias.primitive));
    let prepare = AttentionBackward;
    let operands = |[query, key, value]: [FlexTensor; 3], joint: bool| Operands {
        query,
        key,
        value,
        joint,
        bias,
        heads,
        scale,
        mask,
    };
    match projections {
        Projections::Separate(projections) => {
            let [query, key, value] = *projections;
            let nodes = [query.node, key.node, value.node];
            let operands = operands([query.primitive, key.primitive, value.primitive], false);
            match bias_node {
                Some(bias) => {
                    let [query, key, value] = nodes;
                    record(
                        prepare.prepare::<NoCheckpointing>([query, key, value, bias]),
                        operands,
                    )
                }
                None => record(prepare.prepare::<NoCheckpointing>(nodes), operands),
            }
        }
        Projections::Joint(qkv) => {
            let projection = contiguous(qkv.primitive);
            let features = dims(&projection)[2] / 3;
            let part = |index: usize| projection.narrow(2, index * features, features);
            let operands = operands([part(0), part(1), part(2)], true);
            let node = qkv.node;
            match bias_node {
                Some(bias) => record(prepare.prepare::<NoCheckpointing>([node, bias]), operands),
                None => record(prepare.prepare::<NoCheckpointing>([node]), operands),
            }
        }
    }
}

/// Runs the forward pass of `operands` and records its backward step on the `N` parents.
fn record<const N: usize>(
    prep: OpsPrep<AttentionBackward, Flex, AttentionState, NoCheckpointing, N>,
    operands: Operands,
) -> TrainingTensor {
    match prep.compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (output, probabilities) = operands.forward();
            prep.finish(
                AttentionState {
                    operands,
                    probabilities,
                },
                output,
            )
        }
        OpsKind::UnTracked(prep) => prep.finish(operands.forward().0),
    }
}

/// The tensors of an attention (query, key and value possibly strided views).
#[derive(Debug, Clone)]
struct Operands {
    query: FlexTensor,
    key: FlexTensor,
    value: FlexTensor,
    /// Whether query, key and value are the column blocks of one tensor (one parent).
    joint: bool,
    /// The bias, contiguous.
    bias: Option<FlexTensor>,
    heads: usize,
    scale: f32,
    mask: Option<MaskDraw>,
}

/// What the backward pass needs: the operands and the probabilities.
#[derive(Debug, Clone)]
struct AttentionState {
    operands: Operands,
    /// `P`, `[batch, heads, queries, keys]`.
    probabilities: Vec<f32>,
}

/// The sizes of an attention.
#[derive(Clone, Copy)]
struct Sizes {
    batch: usize,
    queries: usize,
    keys: usize,
    heads: usize,
    head_dim: usize,
}

impl Sizes {
    /// Values of one head's `[queries, keys]` block.
    fn block(&self) -> usize {
        self.queries * self.keys
    }

    /// Values of one batch element's `[heads, queries, keys]` probabilities.
    fn element(&self) -> usize {
        self.heads * self.block()
    }

    /// Features of a token, `heads * head_dim`.
    fn features(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Position of `[batch, head, 0, 0]` in the probabilities (the dropout mask's counter).
    fn block_start(&self, batch: usize, head: usize) -> u64 {
        ((batch * self.heads + head) * self.block()) as u64
    }
}

/// Readable views of the operands (copies of those whose strides the products cannot read).
struct Views<'a> {
    query: Rows<'a>,
    key: Rows<'a>,
    value: Rows<'a>,
    bias: Option<Bias<'a>>,
    sizes: Sizes,
    scale: f32,
    mask: Option<MaskDraw>,
}

impl Operands {
    fn sizes(&self) -> Sizes {
        let [batch, queries, features] = dims(&self.query)[..] else {
            unreachable!("attention inputs are 3-d")
        };
        let heads = self.heads;
        Sizes {
            batch,
            queries,
            keys: dims(&self.key)[1],
            heads,
            head_dim: features / heads,
        }
    }

    /// Runs `work` with readable views of the operands.
    fn with_views<R>(&self, work: impl FnOnce(&Views) -> R) -> R {
        let copies = [&self.query, &self.key, &self.value].map(Rows::copy_if_needed);
        let views = Views {
            query: Rows::of_either(&self.query, &copies[0]),
            key: Rows::of_either(&self.key, &copies[1]),
            value: Rows::of_either(&self.value, &copies[2]),
            bias: self.bias.as_ref().map(Bias::of),
            sizes: self.sizes(),
            scale: self.scale,
            mask: self.mask,
        };
        work(&views)
    }

    /// The output `[batch, queries, heads * head_dim]` and the probabilities.
    fn forward(&self) -> (FlexTensor, Vec<f32>) {
        let sizes = self.sizes();
        let mut output = parallel::zeroed(sizes.batch * sizes.queries * sizes.features());
        let mut probabilities = parallel::zeroed(sizes.batch * sizes.element());
        if !output.is_empty() && !probabilities.is_empty() {
            self.with_views(|views| {
                output
                    .par_chunks_mut(sizes.queries * sizes.features())
                    .zip(probabilities.par_chunks_mut(sizes.element()))
                    .enumerate()
                    .for_each(|(batch, (output, probabilities))| {
                        pulp::Arch::new().dispatch(ForwardTask {
                            views,
                            batch,
                            output,
                            probabilities,
                        })
                    })
            });
        }
        let shape = vec![sizes.batch, sizes.queries, sizes.features()];
        (tensor_of(output, shape), probabilities)
    }
}

/// The forward pass of one batch element, all heads.
struct ForwardTask<'a> {
    views: &'a Views<'a>,
    batch: usize,
    /// `[queries, features]`.
    output: &'a mut [f32],
    /// `[heads, queries, keys]`.
    probabilities: &'a mut [f32],
}

impl WithSimd for ForwardTask<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let views = self.views;
        let (batch, sizes, mask) = (self.batch, views.sizes, &views.mask);
        let (keys, head_dim) = (sizes.keys, sizes.head_dim);
        let mut dropped = vec![0.0f32; if mask.is_some() { sizes.block() } else { 0 }];
        for (head, probabilities) in self
            .probabilities
            .chunks_exact_mut(sizes.block())
            .enumerate()
        {
            f32_gemm(
                (sizes.queries, keys, head_dim),
                &views.query.head(batch, head, head_dim),
                &views.key.head(batch, head, head_dim).transposed(),
                probabilities,
                false,
            );
            for (row, scores) in probabilities.chunks_exact_mut(keys).enumerate() {
                let bias = views.bias.as_ref().map(|bias| bias.row(batch, head, row));
                softmax_row(scores, views.scale, bias);
            }
            let weights: &[f32] = match mask {
                Some(mask) => {
                    apply_mask(
                        mask,
                        sizes.block_start(batch, head),
                        probabilities,
                        &mut dropped,
                    );
                    &dropped
                }
                None => probabilities,
            };
            f32_gemm_into(
                (sizes.queries, head_dim, keys),
                &MatrixView::row_major(weights, keys),
                &views.value.head(batch, head, head_dim),
                (&mut self.output[head * head_dim..], sizes.features()),
                false,
                1.0,
            );
        }
    }
}

/// `scores = softmax(scores * scale + bias)` in place.
#[inline(always)]
fn softmax_row(scores: &mut [f32], scale: f32, bias: Option<&[f32]>) {
    match bias {
        Some(bias) => {
            for (score, &bias) in scores.iter_mut().zip(bias) {
                *score = *score * scale + bias;
            }
        }
        None => {
            for score in scores.iter_mut() {
                *score *= scale;
            }
        }
    }
    let max = parallel::max(scores);
    for score in scores.iter_mut() {
        *score = math::exp(*score - max);
    }
    let normalizer = 1.0 / parallel::sum(scores);
    for score in scores.iter_mut() {
        *score *= normalizer;
    }
}

/// `output = values ∘ mask`, the mask's values counted from `first`.
#[inline(always)]
fn apply_mask(mask: &MaskDraw, first: u64, values: &[f32], output: &mut [f32]) {
    for (index, (output, &value)) in output.iter_mut().zip(values).enumerate() {
        *output = value * mask.value(first + index as u64);
    }
}

/// The backward step of [`attention`] (parents: query, key, value and, with `N = 4`, bias).
#[derive(Debug)]
struct AttentionBackward;

impl<const N: usize> Backward<Flex, N> for AttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<AttentionState, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let AttentionState {
            operands,
            mut probabilities,
        } = ops.state;
        let output_gradient = contiguous(grads.consume::<Flex>(&ops.node));
        let sizes = operands.sizes();
        let features = sizes.features();
        let output_gradient = Rows::of(&output_gradient).expect("contiguous tensors have rows");
        // One batch element's backward pass, writing into `gradients`.
        let run = |views: &Views, batch, gradients, score_gradient| {
            pulp::Arch::new().dispatch(BackwardTask {
                views,
                output_gradient: &output_gradient,
                batch,
                gradients,
                score_gradient,
            })
        };
        let work = !probabilities.is_empty() && features > 0;
        // The gradients with their shapes, in the order of the projections' parents.
        let gradients = if operands.joint {
            let mut joint = parallel::zeroed(sizes.batch * sizes.keys * 3 * features);
            if work {
                operands.with_views(|views| {
                    joint
                        .par_chunks_mut(sizes.keys * 3 * features)
                        .zip(probabilities.par_chunks_mut(sizes.element()))
                        .enumerate()
                        .for_each(|(batch, (joint, probabilities))| {
                            run(views, batch, GradientRows::Joint(joint), probabilities)
                        })
                });
            }
            vec![(joint, vec![sizes.batch, sizes.keys, 3 * features])]
        } else {
            let mut query = parallel::zeroed(sizes.batch * sizes.queries * features);
            let mut key = parallel::zeroed(sizes.batch * sizes.keys * features);
            let mut value = parallel::zeroed(sizes.batch * sizes.keys * features);
            if work {
                operands.with_views(|views| {
                    query
                        .par_chunks_mut(sizes.queries * features)
                        .zip(key.par_chunks_mut(sizes.keys * features))
                        .zip(value.par_chunks_mut(sizes.keys * features))
                        .zip(probabilities.par_chunks_mut(sizes.element()))
                        .enumerate()
                        .for_each(|(batch, (((query, key), value), probabilities))| {
                            let gradients = GradientRows::Separate([query, key, value]);
                            run(views, batch, gradients, probabilities)
                        })
                });
            }
            let key_shape = dims(&operands.key);
            vec![
                (query, dims(&operands.query)),
                (key, key_shape.clone()),
                (value, key_shape),
            ]
        };
        let (projection_nodes, rest) = ops.parents.split_at(gradients.len());
        for (node, (gradient, shape)) in projection_nodes.iter().zip(gradients) {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, tensor_of(gradient, shape));
            }
        }
        if let (Some(Some(node)), Some(bias)) = (rest.first(), &operands.bias) {
            let bias_dims = Bias::of(bias).dims;
            let gradient = bias_gradient(&probabilities, sizes, bias_dims);
            grads.register::<Flex>(node.id, tensor_of(gradient, bias_dims.to_vec()));
        }
    }
}

/// One batch element's rows of the projections' gradients.
enum GradientRows<'a> {
    /// Query `[queries, features]`, key and value `[keys, features]`.
    Separate([&'a mut [f32]; 3]),
    /// `[tokens, 3 * features]`: the query, key and value columns side by side.
    Joint(&'a mut [f32]),
}

impl GradientRows<'_> {
    /// Head `head`'s columns of projection `part` (0 query, 1 key, 2 value): the buffer from
    /// its first value on, and its row stride.
    #[inline(always)]
    fn head(&mut self, part: usize, head: usize, sizes: Sizes) -> (&mut [f32], usize) {
        let (features, columns) = (sizes.features(), head * sizes.head_dim);
        match self {
            GradientRows::Separate(parts) => (&mut parts[part][columns..], features),
            GradientRows::Joint(rows) => (&mut rows[part * features + columns..], 3 * features),
        }
    }
}

/// The backward pass of one batch element, all heads.
struct BackwardTask<'a> {
    views: &'a Views<'a>,
    output_gradient: &'a Rows<'a>,
    batch: usize,
    gradients: GradientRows<'a>,
    /// The probabilities `[heads, queries, keys]` on entry, the scores' gradient `dS` on exit.
    score_gradient: &'a mut [f32],
}

impl WithSimd for BackwardTask<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, _simd: S) {
        let views = self.views;
        let (batch, sizes, mask) = (self.batch, views.sizes, &views.mask);
        let (queries, keys, head_dim) = (sizes.queries, sizes.keys, sizes.head_dim);
        let mut scratch = vec![0.0f32; sizes.block()];
        for (head, probabilities) in self
            .score_gradient
            .chunks_exact_mut(sizes.block())
            .enumerate()
        {
            let output_gradient = self.output_gradient.head(batch, head, head_dim);
            let first = sizes.block_start(batch, head);
            // dV = (P∘M)ᵀ dO.
            let weights: &[f32] = match mask {
                Some(mask) => {
                    apply_mask(mask, first, probabilities, &mut scratch);
                    &scratch
                }
                None => probabilities,
            };
            f32_gemm_into(
                (keys, head_dim, queries),
                &MatrixView::row_major(weights, keys).transposed(),
                &output_gradient,
                self.gradients.head(2, head, sizes),
                false,
                1.0,
            );
            // dP = (dO Vᵀ)∘M.
            f32_gemm(
                (queries, keys, head_dim),
                &output_gradient,
                &views.value.head(batch, head, head_dim).transposed(),
                &mut scratch,
                false,
            );
            if let Some(mask) = mask {
                for (index, gradient) in scratch.iter_mut().enumerate() {
                    *gradient *= mask.value(first + index as u64);
                }
            }
            // dS = P∘(dP − rowsum(dP∘P)), over the probabilities.
            for (probabilities, gradient) in probabilities
                .chunks_exact_mut(keys)
                .zip(scratch.chunks_exact(keys))
            {
                let dot = parallel::dot(probabilities, gradient);
                for (probability, &gradient) in probabilities.iter_mut().zip(gradient) {
                    *probability *= gradient - dot;
                }
            }
            let score_gradient = MatrixView::row_major(probabilities, keys);
            // dQ = scale · dS K, dK = scale · dSᵀ Q.
            f32_gemm_into(
                (queries, head_dim, keys),
                &score_gradient,
                &views.key.head(batch, head, head_dim),
                self.gradients.head(0, head, sizes),
                false,
                views.scale,
            );
            f32_gemm_into(
                (keys, head_dim, queries),
                &score_gradient.transposed(),
                &views.query.head(batch, head, head_dim),
                self.gradients.head(1, head, sizes),
                false,
                views.scale,
            );
        }
    }
}

/// The bias's gradient: the scores' gradient `[batch, heads, queries, keys]` summed over the
/// batch elements that share a bias (`b % bias_batch`), and over the heads or query rows
/// where the bias has one.
fn bias_gradient(score_gradient: &[f32], sizes: Sizes, bias_dims: [usize; 4]) -> Vec<f32> {
    let [bias_batch, bias_heads, bias_queries, keys] = bias_dims;
    let mut gradient = vec![0.0f32; bias_batch * bias_heads * bias_queries * keys];
    if keys == 0 {
        return gradient;
    }
    gradient
        .par_chunks_mut(keys)
        .enumerate()
        .for_each(|(row, output)| {
            let query = row % bias_queries;
            let head = row / bias_queries % bias_heads;
            let element = row / (bias_queries * bias_heads);
            let heads = if bias_heads == 1 {
                0..sizes.heads
            } else {
                head..head + 1
            };
            let queries = if bias_queries == 1 {
                0..sizes.queries
            } else {
                query..query + 1
            };
            for batch in (element..sizes.batch).step_by(bias_batch) {
                for head in heads.clone() {
                    for query in queries.clone() {
                        let start = ((batch * sizes.heads + head) * sizes.queries + query) * keys;
                        for (sum, &value) in output.iter_mut().zip(&score_gradient[start..][..keys])
                        {
                            *sum += value;
                        }
                    }
                }
            }
        });
    gradient
}
