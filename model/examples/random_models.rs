//! Writes vidcls's own random initialisation of the models of a configuration: the weights that
//! `scripts/make_export_fixtures.py` exports with `vidcls export` and loads back into the
//! PyTorch reference.
//!
//! - `<out>/classifier/`: a vidcls run directory (`config.json`, `model.mpk`) of the classifier;
//! - `<out>/pretrain.safetensors`: the pre-training model, written by
//!   [`save_pretrain_safetensors`] (vidcls has no native pre-training checkpoint yet).
//!
//! Every parameter is vidcls's initialisation plus Gaussian noise drawn by the seeded backend,
//! so that LayerNorm scales and zero-initialised biases differ from one tensor to the next too
//! and any mis-mapped tensor changes the outputs.
//!
//! ```sh
//! cargo run --release -p vidcls-model --example random_models -- CONFIG_JSON OUT_DIR [SEED]
//! ```

use std::error::Error;
use std::path::PathBuf;

use burn::backend::Flex;
use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::Distribution;
use vidcls_model::VideoModelConfig;
use vidcls_model::loader::save_pretrain_safetensors;

/// Adds `N(0, 0.2²)` to vectors and `N(0, 1 / rows)` to matrices and higher-rank tensors, and
/// numbers the parameters in order (their ids are random otherwise), so that the same seed gives
/// the same files.
#[derive(Default)]
struct Noise {
    params: u64,
}

impl<B: Backend> ModuleMapper<B> for Noise {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (_, tensor, mapper) = param.consume();
        self.params += 1;
        let std = if D == 1 {
            0.2
        } else {
            1.0 / (tensor.dims()[0] as f64).sqrt()
        };
        let noise = Tensor::random(
            tensor.shape(),
            Distribution::Normal(0.0, std),
            &tensor.device(),
        );
        Param::from_mapped_value(ParamId::from(self.params), tensor + noise, mapper)
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, out, seed) = match args.as_slice() {
        [config, out] => (config, PathBuf::from(out), 2022),
        [config, out, seed] => (config, PathBuf::from(out), seed.parse()?),
        _ => return Err("usage: random_models CONFIG_JSON OUT_DIR [SEED]".into()),
    };
    let config = VideoModelConfig::load(config)?;
    let device = Default::default();
    Flex::seed(&device, seed);

    let run = out.join("classifier");
    std::fs::create_dir_all(&run)?;
    let classifier = config
        .init_classifier::<Flex>(&device)
        .map(&mut Noise::default());
    classifier.save_file(
        run.join("model"),
        &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
    )?;
    std::fs::write(
        run.join("config.json"),
        serde_json::to_string_pretty(&config)? + "\n",
    )?;

    let pretrain = config
        .init_pretrain::<Flex>(&device)
        .map(&mut Noise::default());
    save_pretrain_safetensors(&pretrain, out.join("pretrain.safetensors"))?;
    Ok(())
}
