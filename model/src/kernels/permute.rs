//! Reordering the tokens of every sequence by one permutation (Swin's cyclic shift and window
//! partition, and their inverse): on the CPU a multi-threaded copy of whole rows, and under
//! training (`Autodiff<Flex>`) a backward pass of its own that applies the inverse permutation
//! to the gradient, the same copy again.
//!
//! Burn's `select` does the same forward, but its backward pass adds the gradient into a
//! tensor of zeros one value at a time, with index arithmetic per value, on one thread: in a
//! seed training step that was about a tenth of the time the rayon threads sat idle.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::flex::{
    contiguous, dims, from_flex, from_training, tensor_of, to_flex, to_training, values,
};
use super::linear_training::TrainingTensor;
use super::parallel::{self, TASK_VALUES};

/// `tokens.select(1, order)` where `order` is a permutation of the tokens: token `i` of every
/// sequence of the output is token `order[i]` of the input.
///
/// # Shapes
/// - tokens, output: `[batch, tokens, features]`
/// - order: `[tokens]`
pub fn permute_tokens<B: Backend>(tokens: Tensor<B, 3>, order: Tensor<B, 1, Int>) -> Tensor<B, 3> {
    let len = tokens.dims()[1];
    let tokens = match to_training(tokens) {
        Ok(tokens) => match permutation(&order, len) {
            Some(order) => return from_training(training_permute(tokens, order)),
            None => from_training(tokens),
        },
        Err(tokens) => tokens,
    };
    let tokens = match to_flex(tokens) {
        Ok(tokens) => match permutation(&order, len) {
            Some(order) => return from_flex(gather_rows(&contiguous(tokens), &order)),
            None => from_flex(tokens),
        },
        Err(tokens) => tokens,
    };
    tokens.select(1, order)
}

/// `order`'s values when they are a permutation of `0..len` (read on the CPU backends only).
fn permutation<B: Backend>(order: &Tensor<B, 1, Int>, len: usize) -> Option<Vec<usize>> {
    let data = order.to_data().convert::<i64>();
    let mut seen = vec![false; len];
    let order = data
        .iter::<i64>()
        .map(|index| {
            let index = usize::try_from(index).ok().filter(|&index| index < len)?;
            (!std::mem::replace(&mut seen[index], true)).then_some(index)
        })
        .collect::<Option<Vec<usize>>>()?;
    (order.len() == len).then_some(order)
}

/// `[batch, tokens, features]` with row `i` of every sequence copied from row `order[i]` of
/// `tokens` (contiguous).
fn gather_rows(tokens: &FlexTensor, order: &[usize]) -> FlexTensor {
    let shape = dims(tokens);
    let [_, len, features] = shape[..] else {
        unreachable!("tokens are 3-d")
    };
    let input = values(tokens);
    let mut output = parallel::zeroed(input.len());
    if features > 0 && len > 0 {
        let rows_per_task = (TASK_VALUES / features).max(1);
        output
            .par_chunks_mut(rows_per_task * features)
            .enumerate()
            .for_each(|(task, rows)| {
                for (offset, row) in rows.chunks_exact_mut(features).enumerate() {
                    let row_index = task * rows_per_task + offset;
                    let (sequence, token) = (row_index / len, row_index % len);
                    let source = (sequence * len + order[token]) * features;
                    row.copy_from_slice(&input[source..source + features]);
                }
            });
    }
    tensor_of(output, shape)
}

/// [`permute_tokens`] under training, with its backward pass.
fn training_permute(tokens: TrainingTensor, order: Vec<usize>) -> TrainingTensor {
    let output = gather_rows(&contiguous(tokens.primitive), &order);
    match PermuteBackward
        .prepare::<NoCheckpointing>([tokens.node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(order, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// The backward step of [`training_permute`]: the gradient of token `order[i]` is the output
/// gradient of token `i`, a gather by the inverse permutation.
#[derive(Debug)]
struct PermuteBackward;

impl Backward<Flex, 1> for PermuteBackward {
    /// The forward pass's `order`.
    type State = Vec<usize>;

    fn backward(self, ops: Ops<Vec<usize>, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let gradient = contiguous(grads.consume::<Flex>(&ops.node));
        let [Some(node)] = ops.parents else {
            return;
        };
        let mut inverse = vec![0; ops.state.len()];
        for (position, &token) in ops.state.iter().enumerate() {
            inverse[token] = position;
        }
        grads.register::<Flex>(node.id, gather_rows(&gradient, &inverse));
    }
}
