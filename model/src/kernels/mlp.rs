//! A transformer's feed-forward block with its residual connection,
//! `residual + fc2(gelu(fc1(input)))`, fused into one pass in bf16 inference on the CPU.

use burn::nn::Linear;
use burn::prelude::*;

use super::bf16_gemm::{Output, mlp_bf16};
use super::flex::{contiguous, dims, from_flex, into_values, tensor_of, to_flex, values};
use super::linear::{linear_gelu, linear_residual};
use super::packed_weights::packed_weight;
use super::precision::MatmulPrecision;

/// `residual + regularize(fc2(gelu(fc1(input))))` with the erf GELU.
///
/// `regularize` is a dropout or stochastic depth, the identity outside training with
/// autodiff. With bf16 products on a CPU that has them (Flex, no autodiff) this is one pass
/// over blocks of rows ([`mlp_bf16`]: the hidden activations stay in the cache, never written
/// in f32); otherwise [`linear_gelu`] then [`linear_residual`].
///
/// # Shapes
/// - input: `[..., d_input]`
/// - residual, output: `[..., d_output]`
pub fn mlp<B: Backend, const D: usize>(
    fc1: &Linear<B>,
    fc2: &Linear<B>,
    input: Tensor<B, D>,
    residual: Tensor<B, D>,
    regularize: impl FnOnce(Tensor<B, D>) -> Tensor<B, D>,
) -> Tensor<B, D> {
    match fused(fc1, fc2, input, residual) {
        Ok(output) => output,
        Err((input, residual)) => {
            linear_residual(fc2, linear_gelu(fc1, input), residual, regularize)
        }
    }
}

/// The fused pass, or the inputs back when it does not apply.
#[allow(clippy::type_complexity)]
fn fused<B: Backend, const D: usize>(
    fc1: &Linear<B>,
    fc2: &Linear<B>,
    input: Tensor<B, D>,
    residual: Tensor<B, D>,
) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
    let bf16 = MatmulPrecision::current().effective() == MatmulPrecision::Bf16;
    let Some(first_bias) = fc1.bias.as_ref().filter(|_| bf16) else {
        return Err((input, residual));
    };
    let tensors = (
        to_flex(fc1.weight.val()),
        to_flex(first_bias.val()),
        to_flex(fc2.weight.val()),
    );
    let (Ok(first), Ok(first_bias), Ok(second)) = tensors else {
        return Err((input, residual));
    };
    let second_bias = match fc2.bias.as_ref().map(|bias| to_flex(bias.val())) {
        Some(Ok(bias)) => Some(contiguous(bias)),
        Some(Err(_)) => return Err((input, residual)),
        None => None,
    };
    let [k, hidden] = dims(&first)[..] else {
        unreachable!("linear weights are matrices")
    };
    if k == 0 || hidden == 0 {
        return Err((input, residual));
    }
    let packed = (packed_weight(&first), packed_weight(&second));
    let (Some(first), Some(second)) = packed else {
        return Err((input, residual));
    };
    let (input, residual) = match (to_flex(input), to_flex(residual)) {
        (Ok(input), Ok(residual)) => (contiguous(input), residual),
        (input, residual) => {
            let back = |tensor: Result<_, Tensor<B, D>>| tensor.map_or_else(|t| t, from_flex);
            return Err((back(input), back(residual)));
        }
    };
    let mut shape = dims(&input);
    assert_eq!(
        shape[D - 1],
        k,
        "feed-forward input has {} features, fc1 {k}",
        shape[D - 1]
    );
    let m = shape[..D - 1].iter().product();
    shape[D - 1] = second.n();
    assert_eq!(
        dims(&residual),
        shape,
        "residual and feed-forward output differ in shape"
    );
    let mut output = into_values(residual);
    mlp_bf16(
        m,
        values(&input),
        (&first, values(&contiguous(first_bias))),
        (&second, second_bias.as_ref().map(values)),
        Output::Add(&mut output),
    );
    Ok(from_flex(tensor_of(output, shape)))
}
