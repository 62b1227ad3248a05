//! The element-wise arithmetic of one Adam step (BertAdam or AdamW) in one pass: the new
//! moments and the new parameter from the parameter, its gradient and the old moments.
//!
//! Burn's composition makes about a dozen passes over every parameter (scale, add, square,
//! root, divide, ... each writing a new tensor); the seed model has 160 million parameters,
//! so those passes took about 5% of a CPU training step. The fused pass performs the same
//! `f32` operations in the same order (no fused multiply-add), so its results are identical
//! to the composition's, bit for bit.

use burn::prelude::*;
use rayon::prelude::*;

use super::flex::{contiguous, from_flex, from_flex_or_unchanged, tensor_of, to_flex, values};
use super::parallel::{TASK_VALUES, zeroed};

/// The hyper-parameters of one Adam step of one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamArithmetic {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Learning rate.
    pub lr: f64,
    /// Weight decay of this parameter (0 when it does not decay).
    pub decay: f64,
    /// `None`: BertAdam (`p -= lr (m / (sqrt(v) + eps) + decay p)`); `Some((1 - b1^t,
    /// 1 - b2^t))`: AdamW with these bias corrections (`p -= lr decay p`, then
    /// `p -= lr m_hat / (sqrt(v_hat) + eps)`).
    pub bias_correction: Option<(f64, f64)>,
}

/// A parameter and its Adam moments, flattened.
#[derive(Debug, Clone)]
pub struct AdamTensors<B: Backend> {
    /// The parameter.
    pub param: Tensor<B, 1>,
    /// First moment.
    pub exp_avg: Tensor<B, 1>,
    /// Second moment.
    pub exp_avg_sq: Tensor<B, 1>,
}

/// One Adam step: the new parameter and moments from `param`, `grad` and the old `moments`
/// (`None` on the first step: zero moments).
pub fn adam_step<B: Backend>(
    arithmetic: &AdamArithmetic,
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    moments: Option<(Tensor<B, 1>, Tensor<B, 1>)>,
) -> AdamTensors<B> {
    let flex = (
        to_flex(param),
        to_flex(grad),
        moments.map(|(m, v)| (to_flex(m), to_flex(v))),
    );
    match flex {
        (Ok(param), Ok(grad), None) => flex_adam_step(arithmetic, param, grad, None),
        (Ok(param), Ok(grad), Some((Ok(m), Ok(v)))) => {
            flex_adam_step(arithmetic, param, grad, Some((m, v)))
        }
        (param, grad, moments) => {
            let tensor = from_flex_or_unchanged;
            let moments = moments.map(|(m, v)| (tensor(m), tensor(v)));
            composed_adam_step(arithmetic, tensor(param), tensor(grad), moments)
        }
    }
}

/// [`adam_step`] with Burn operations.
fn composed_adam_step<B: Backend>(
    arithmetic: &AdamArithmetic,
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    moments: Option<(Tensor<B, 1>, Tensor<B, 1>)>,
) -> AdamTensors<B> {
    let AdamArithmetic {
        beta1,
        beta2,
        eps,
        lr,
        decay,
        bias_correction,
    } = *arithmetic;
    let (exp_avg, exp_avg_sq) = match moments {
        Some((exp_avg, exp_avg_sq)) => (
            exp_avg.mul_scalar(beta1) + grad.clone().mul_scalar(1.0 - beta1),
            exp_avg_sq.mul_scalar(beta2) + grad.clone().mul(grad).mul_scalar(1.0 - beta2),
        ),
        None => (
            grad.clone().mul_scalar(1.0 - beta1),
            grad.clone().mul(grad).mul_scalar(1.0 - beta2),
        ),
    };
    let param = match bias_correction {
        None => {
            let mut update = exp_avg.clone() / (exp_avg_sq.clone().sqrt().add_scalar(eps));
            if decay > 0.0 {
                update = update + param.clone().mul_scalar(decay);
            }
            param - update.mul_scalar(lr)
        }
        Some((correction1, correction2)) => {
            let decayed = if decay > 0.0 {
                param.mul_scalar(1.0 - lr * decay)
            } else {
                param
            };
            let denominator = exp_avg_sq
                .clone()
                .div_scalar(correction2)
                .sqrt()
                .add_scalar(eps);
            decayed - (exp_avg.clone() / denominator).mul_scalar(lr / correction1)
        }
    };
    AdamTensors {
        param,
        exp_avg,
        exp_avg_sq,
    }
}

/// The fused pass of [`adam_step`] on Flex tensors: the composition's `f32` operations, with
/// its scalars rounded to `f32` as Burn rounds them.
fn flex_adam_step<B: Backend>(
    arithmetic: &AdamArithmetic,
    param: burn_flex::FlexTensor,
    grad: burn_flex::FlexTensor,
    moments: Option<(burn_flex::FlexTensor, burn_flex::FlexTensor)>,
) -> AdamTensors<B> {
    let &AdamArithmetic {
        lr,
        decay,
        bias_correction,
        ..
    } = arithmetic;
    let [param, grad] = [param, grad].map(contiguous);
    let moments = moments.map(|(m, v)| (contiguous(m), contiguous(v)));
    let len = values(&param).len();
    let (mut new_param, mut new_m, mut new_v) = (zeroed(len), zeroed(len), zeroed(len));
    let (b1, c1) = (arithmetic.beta1 as f32, (1.0 - arithmetic.beta1) as f32);
    let (b2, c2) = (arithmetic.beta2 as f32, (1.0 - arithmetic.beta2) as f32);
    let eps = arithmetic.eps as f32;
    let moment = |i: usize, g: f32, old: Option<(&[f32], &[f32])>| match old {
        Some((m, v)) => (m[i] * b1 + g * c1, v[i] * b2 + (g * g) * c2),
        None => (g * c1, (g * g) * c2),
    };
    let old = moments.as_ref().map(|(m, v)| (values(m), values(v)));
    let (p, g) = (values(&param), values(&grad));
    // The rule's scalars: BertAdam's decay, or AdamW's kept fraction, second correction and
    // step size.
    let decay_f32 = (decay > 0.0).then_some(decay as f32);
    let adamw = bias_correction.map(|(correction1, correction2)| {
        let keep = (decay > 0.0).then_some((1.0 - lr * decay) as f32);
        (keep, correction2 as f32, (lr / correction1) as f32)
    });
    let lr = lr as f32;
    new_param
        .par_chunks_mut(TASK_VALUES)
        .zip(new_m.par_chunks_mut(TASK_VALUES))
        .zip(new_v.par_chunks_mut(TASK_VALUES))
        .enumerate()
        .for_each(|(chunk, ((out_p, out_m), out_v))| {
            let start = chunk * TASK_VALUES;
            let old = old.map(|(m, v)| (&m[start..], &v[start..]));
            let (p, g) = (&p[start..], &g[start..]);
            match adamw {
                None => {
                    for i in 0..out_p.len() {
                        let (m, v) = moment(i, g[i], old);
                        let mut update = m / (v.sqrt() + eps);
                        if let Some(decay) = decay_f32 {
                            update += p[i] * decay;
                        }
                        (out_p[i], out_m[i], out_v[i]) = (p[i] - update * lr, m, v);
                    }
                }
                Some((keep, correction2, step)) => {
                    for i in 0..out_p.len() {
                        let (m, v) = moment(i, g[i], old);
                        let decayed = keep.map_or(p[i], |keep| p[i] * keep);
                        let denominator = (v / correction2).sqrt() + eps;
                        (out_p[i], out_m[i], out_v[i]) = (decayed - (m / denominator) * step, m, v);
                    }
                }
            }
        });
    let tensor = |values| from_flex(tensor_of(values, vec![len]));
    AdamTensors {
        param: tensor(new_param),
        exp_avg: tensor(new_m),
        exp_avg_sq: tensor(new_v),
    }
}
