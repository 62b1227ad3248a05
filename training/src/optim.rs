//! The optimizers of fine-tuning and pre-training: the reference's BertAdam and standard AdamW,
//! with the reference's no-decay rule, which is stated by parameter name.
//!
//! Burn's optimizers see tensors, not names, so this one keeps its state by the reference's
//! state-dict name of each parameter ([`reference_parameter_names`]): the no-decay rule is
//! read off those names, and the state survives a reload that gives parameters new ids.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use burn::module::{AutodiffModule, ModuleMapper, Param, ParamId};
use burn::optim::{GradientsParams, LearningRate, MultiGradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::Device;
use burn::tensor::backend::AutodiffBackend;
use vidcls_model::kernels::{AdamArithmetic, AdamTensors, adam_step};
use vidcls_model::loader::reference_parameter_names;

use crate::config::{OptimizerKind, TrainingConfig};

/// Whether the reference decays a parameter: not when its name contains `bias` or
/// `LayerNorm.weight` (so BERT's LayerNorm weights do not decay, while the Swin norms, named
/// `norm`, `norm1`, `norm2`, do; the Swin relative-position bias tables do not).
pub fn decays(reference_name: &str) -> bool {
    !(reference_name.contains("bias") || reference_name.contains("LayerNorm.weight"))
}

/// The hyper-parameters of [`AdamOptimizer`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamSettings {
    /// BertAdam or AdamW.
    pub kind: OptimizerKind,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay of the parameters that [`decays`].
    pub weight_decay: f64,
}

impl AdamSettings {
    /// The settings of a training configuration.
    pub fn from_config(config: &TrainingConfig) -> Self {
        AdamSettings {
            kind: config.optimizer,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.adam_eps,
            weight_decay: config.weight_decay,
        }
    }
}

/// The Adam moments of one parameter, flattened, in Burn's layout.
#[derive(Debug, Clone)]
pub struct Moments<B: Backend> {
    /// First moment.
    pub exp_avg: Tensor<B, 1>,
    /// Second moment.
    pub exp_avg_sq: Tensor<B, 1>,
}

/// BertAdam or AdamW (see [`AdamSettings`]), with state kept by reference parameter name.
///
/// - BertAdam (the reference's): `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
///   `p -= lr (m / (sqrt(v) + eps) + wd p)`; no bias correction, no gradient clipping.
/// - AdamW: `p -= lr wd p`, then `p -= lr m_hat / (sqrt(v_hat) + eps)` with bias-corrected
///   moments (PyTorch's `AdamW`).
///
/// Clones share their state: burn-train's `Learner` owns the optimizer and offers no access
/// to it, so the training loop keeps a clone to save the moments in its resume points.
#[derive(Debug, Clone)]
pub struct AdamOptimizer<B: AutodiffBackend> {
    settings: AdamSettings,
    state: Arc<Mutex<AdamState<B::InnerBackend>>>,
}

/// The moments by reference parameter name, and the steps taken.
#[derive(Debug)]
struct AdamState<B: Backend> {
    moments: HashMap<String, Moments<B>>,
    steps: usize,
}

impl<B: AutodiffBackend> AdamOptimizer<B> {
    /// A fresh optimizer (zero moments).
    pub fn new(settings: AdamSettings) -> Self {
        AdamOptimizer {
            settings,
            state: Arc::new(Mutex::new(AdamState {
                moments: HashMap::new(),
                steps: 0,
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, AdamState<B::InnerBackend>> {
        // The state stays consistent even if a thread panicked while holding it: each update
        // replaces whole entries.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> usize {
        self.state().steps
    }

    /// The moments, by reference parameter name.
    pub fn moments(&self) -> HashMap<String, Moments<B::InnerBackend>> {
        self.state().moments.clone()
    }

    /// Replaces the state (moments by reference name and the step count), e.g. on resume.
    pub fn with_state(
        self,
        moments: HashMap<String, Moments<B::InnerBackend>>,
        steps: usize,
    ) -> Self {
        *self.state() = AdamState { moments, steps };
        self
    }

    fn step_with<M: AutodiffModule<B>, G: GradientSource<B>>(
        &mut self,
        lr: LearningRate,
        module: M,
        grads: &mut G,
    ) -> M {
        let names = reference_parameter_names(&module);
        self.state().steps += 1;
        let mut mapper = AdamMapper {
            optimizer: self,
            names: &names,
            grads,
            lr,
        };
        module.map(&mut mapper)
    }

    /// The new value of one parameter.
    fn update<const D: usize>(
        &mut self,
        name: &str,
        lr: f64,
        param: Tensor<B::InnerBackend, D>,
        grad: Tensor<B::InnerBackend, D>,
    ) -> Tensor<B::InnerBackend, D> {
        let AdamSettings {
            kind,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.settings;
        let shape = param.shape();
        let numel = shape.num_elements();
        let param = param.reshape([numel]);
        let grad = grad.reshape([numel]);
        let mut state = self.state();
        let arithmetic = AdamArithmetic {
            beta1,
            beta2,
            eps,
            lr,
            decay: if decays(name) { weight_decay } else { 0.0 },
            bias_correction: match kind {
                OptimizerKind::BertAdam => None,
                OptimizerKind::AdamW => {
                    let t = state.steps as i32;
                    Some((1.0 - beta1.powi(t), 1.0 - beta2.powi(t)))
                }
            },
        };
        let moments = state
            .moments
            .remove(name)
            .map(|moments| (moments.exp_avg, moments.exp_avg_sq));
        let AdamTensors {
            param: updated,
            exp_avg,
            exp_avg_sq,
        } = adam_step(&arithmetic, param, grad, moments);
        state.moments.insert(
            name.to_string(),
            Moments {
                exp_avg,
                exp_avg_sq,
            },
        );
        updated.reshape(shape)
    }
}

/// Where a step's gradients come from: one backward pass, or several devices' passes.
trait GradientSource<B: AutodiffBackend> {
    /// Takes the gradient of a parameter, moved to `device`.
    fn take<const D: usize>(
        &mut self,
        id: ParamId,
        device: &Device<B::InnerBackend>,
    ) -> Option<Tensor<B::InnerBackend, D>>;
}

impl<B: AutodiffBackend> GradientSource<B> for GradientsParams {
    fn take<const D: usize>(
        &mut self,
        id: ParamId,
        device: &Device<B::InnerBackend>,
    ) -> Option<Tensor<B::InnerBackend, D>> {
        self.remove::<B::InnerBackend, D>(id)
            .map(|grad| grad.to_device(device))
    }
}

impl<B: AutodiffBackend> GradientSource<B> for MultiGradientsParams {
    fn take<const D: usize>(
        &mut self,
        id: ParamId,
        device: &Device<B::InnerBackend>,
    ) -> Option<Tensor<B::InnerBackend, D>> {
        self.remove::<B::InnerBackend, D>(id)
            .map(|(grad, _)| grad.to_device(device))
    }
}

/// Applies one optimizer step to every float parameter that has a gradient.
struct AdamMapper<'a, B: AutodiffBackend, G> {
    optimizer: &'a mut AdamOptimizer<B>,
    names: &'a HashMap<ParamId, String>,
    grads: &'a mut G,
    lr: LearningRate,
}

impl<B: AutodiffBackend, G: GradientSource<B>> ModuleMapper<B> for AdamMapper<'_, B, G> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let device = tensor.clone().inner().device();
        let update = self
            .names
            .get(&id)
            .and_then(|name| Some((name, self.grads.take::<D>(id, &device)?)));
        let tensor = match update {
            Some((name, grad)) => {
                let require_grad = tensor.is_require_grad();
                let updated = self.optimizer.update(name, self.lr, tensor.inner(), grad);
                let updated = Tensor::from_inner(updated);
                if require_grad {
                    updated.require_grad()
                } else {
                    updated
                }
            }
            None => tensor,
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// The saved state of an [`AdamOptimizer`]: the step count and, by reference parameter name,
/// the flattened first and second moments.
pub type AdamRecord<B> = (usize, Vec<(String, Tensor<B, 1>, Tensor<B, 1>)>);

impl<B: AutodiffBackend, M: AutodiffModule<B>> Optimizer<M, B> for AdamOptimizer<B> {
    type Record = AdamRecord<B>;

    fn step(&mut self, lr: LearningRate, module: M, mut grads: GradientsParams) -> M {
        self.step_with(lr, module, &mut grads)
    }

    fn step_multi(&mut self, lr: LearningRate, module: M, mut grads: MultiGradientsParams) -> M {
        self.step_with(lr, module, &mut grads)
    }

    fn to_record(&self) -> Self::Record {
        let state = self.state();
        let mut moments: Vec<_> = state
            .moments
            .iter()
            .map(|(name, moments)| {
                (
                    name.clone(),
                    Tensor::from_inner(moments.exp_avg.clone()),
                    Tensor::from_inner(moments.exp_avg_sq.clone()),
                )
            })
            .collect();
        moments.sort_by(|a, b| a.0.cmp(&b.0));
        (state.steps, moments)
    }

    fn load_record(self, (steps, moments): Self::Record) -> Self {
        let moments = moments
            .into_iter()
            .map(|(name, exp_avg, exp_avg_sq)| {
                let moments = Moments {
                    exp_avg: exp_avg.inner(),
                    exp_avg_sq: exp_avg_sq.inner(),
                };
                (name, moments)
            })
            .collect();
        self.with_state(moments, steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_no_decay_rule_follows_reference_names() {
        assert!(!decays("encoder.bert.embeddings.LayerNorm.weight"));
        assert!(!decays("encoder.bert.encoder.layer.0.output.dense.bias"));
        assert!(!decays(
            "visual_backbone.layers.0.blocks.0.attn.relative_position_bias_table"
        ));
        assert!(decays("visual_backbone.layers.0.blocks.0.norm1.weight"));
        assert!(decays("visual_backbone.norm.weight"));
        assert!(decays("encoder.bert.embeddings.word_embeddings.weight"));
    }
}
