//! The exponential moving average of the weights (REFERENCE.md, "Fine-tuning": decay 0.999
//! over all trainable parameters, updated after every optimizer step; validation and saving
//! use it while training goes on with the raw weights).

use std::collections::HashMap;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use vidcls_model::kernels::weighted_sum;
use vidcls_model::loader::reference_parameter_names;

/// The shadow weights, by reference parameter name, flattened.
#[derive(Debug, Clone)]
pub struct Ema<B: Backend> {
    decay: f64,
    shadow: HashMap<String, Tensor<B, 1>>,
}

impl<B: Backend> Ema<B> {
    /// A shadow of the trainable parameters (those that require gradients) of `model`,
    /// starting as a copy of their values.
    pub fn new<AB, M>(decay: f64, model: &M) -> Self
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        let shadow = parameters(model, true)
            .into_iter()
            .map(|(name, value)| (name, value.inner()))
            .collect();
        Ema { decay, shadow }
    }

    /// A shadow holding the values that `saved` (e.g. the EMA weights of an interrupted run)
    /// has for the trainable parameters of `model`.
    pub fn resumed<AB, M>(decay: f64, model: &M, saved: &M::InnerModule) -> Self
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        let trainable = parameters(model, true);
        let shadow = parameters(saved, false)
            .into_iter()
            .filter(|(name, _)| trainable.contains_key(name))
            .collect();
        Ema { decay, shadow }
    }

    /// The decay.
    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// `shadow = decay * shadow + (1 - decay) * weights`, with the weights of `model` (an
    /// inference copy of the trained model: `model.valid()`).
    pub fn update<M: Module<B>>(&mut self, model: &M) {
        let names = reference_parameter_names(model);
        let mut updater = Updater {
            names: &names,
            ema: self,
        };
        model.visit(&mut updater);
    }

    /// `model` with its shadowed parameters replaced by the shadow values.
    pub fn apply<M: Module<B>>(&self, model: M) -> M {
        let names = reference_parameter_names(&model);
        model.map(&mut Applier {
            names: &names,
            ema: self,
        })
    }
}

/// The values of the float parameters of `model` (only those that require gradients if
/// `trainable_only`), flattened, by reference name.
fn parameters<B: Backend, M: Module<B>>(
    model: &M,
    trainable_only: bool,
) -> HashMap<String, Tensor<B, 1>> {
    let names = reference_parameter_names(model);
    let mut collector = Collector {
        names: &names,
        trainable_only,
        values: HashMap::new(),
    };
    model.visit(&mut collector);
    collector.values
}

/// Collects parameter values by reference name.
struct Collector<'a, B: Backend> {
    names: &'a HashMap<ParamId, String>,
    trainable_only: bool,
    values: HashMap<String, Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Collector<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        if self.trainable_only && !value.is_require_grad() {
            return;
        }
        if let Some(name) = self.names.get(&param.id) {
            self.values
                .insert(name.clone(), value.detach().flatten(0, D - 1));
        }
    }
}

struct Updater<'a, B: Backend> {
    names: &'a HashMap<ParamId, String>,
    ema: &'a mut Ema<B>,
}

impl<B: Backend> ModuleVisitor<B> for Updater<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let decay = self.ema.decay;
        let Some(shadow) = self
            .names
            .get(&param.id)
            .and_then(|name| self.ema.shadow.get_mut(name))
        else {
            return;
        };
        let value = param.val().flatten::<1>(0, D - 1);
        *shadow = weighted_sum(shadow.clone(), decay, value, 1.0 - decay);
    }
}

struct Applier<'a, B: Backend> {
    names: &'a HashMap<ParamId, String>,
    ema: &'a Ema<B>,
}

impl<B: Backend> ModuleMapper<B> for Applier<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tensor = match self
            .names
            .get(&id)
            .and_then(|name| self.ema.shadow.get(name))
        {
            Some(shadow) => shadow.clone().reshape(tensor.shape()),
            None => tensor,
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}
