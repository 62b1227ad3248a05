//! Model checkpoints: vidcls run directories (classifiers) and the reference's PyTorch
//! checkpoints (fine-tuned classifiers or pre-training models).
//!
//! A run directory holds
//! - `config.json`: the [`VideoModelConfig`] as JSON;
//! - `model.mpk`: the Burn record of the [`VideoClassifier`] (named MessagePack, full precision);
//! - `tokenizer/` (optional): the vocabulary files of the BERT directory the model was trained
//!   with (`vocab.txt`, `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`,
//!   whichever exist), so that predicting needs no `--bert-dir`.
//!
//! Each file is written to a temporary name in the directory and renamed into place, the
//! configuration last. A reference checkpoint (`.pth` with `model_state_dict`, or a
//! `.safetensors` state dict with the reference's names) has no configuration: it is read off
//! the tensors' shapes, with the BERT directory's `config.json` for what shapes cannot tell. A
//! reference checkpoint with the pre-training heads and no classifier is a pre-training model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::store::ModuleSnapshot;
use vidcls_model::loader::{
    LoadError, TensorShapes, infer_classifier_config, infer_pretrain_config,
    is_pretrain_state_dict, load_reference_weights, reference_tensor_shapes,
};
use vidcls_model::{BertConfig, VideoClassifier, VideoModelConfig, VideoPretrainModel};

use crate::output::write_atomically;

/// The configuration file of a run directory.
pub const CONFIG_FILE: &str = "config.json";
/// The record file of a run directory (the recorder adds the `.mpk` extension).
const RECORD_STEM: &str = "model";
/// The tokenizer directory of a run directory.
pub const TOKENIZER_DIR: &str = "tokenizer";
/// Files of a BERT directory that make up its tokenizer.
const TOKENIZER_FILES: [&str; 4] = [
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

type Recorder = NamedMpkFileRecorder<FullPrecisionSettings>;

/// A classifier read from a checkpoint.
pub struct LoadedClassifier<B: Backend> {
    /// Its configuration.
    pub config: VideoModelConfig,
    /// The model.
    pub model: VideoClassifier<B>,
    /// The tokenizer to use with it: the given BERT directory, else the run directory's copy.
    pub tokenizer_dir: Option<PathBuf>,
}

/// A model read from a checkpoint.
pub enum LoadedModel<B: Backend> {
    /// A classifier (run directory or reference checkpoint).
    Classifier(Box<LoadedClassifier<B>>),
    /// A pre-training model (reference checkpoint).
    Pretrain(Box<VideoPretrainModel<B>>),
}

/// Loads a classifier from a run directory or a reference checkpoint file.
///
/// `bert_dir` is the BERT directory of the model: its tokenizer is the one to use (for a run
/// directory it replaces the saved copy), and for a reference checkpoint its `config.json`, if
/// any, gives the attention heads (see [`infer_classifier_config`]).
pub fn load_classifier<B: Backend>(
    path: &Path,
    bert_dir: Option<&Path>,
    device: &B::Device,
) -> Result<LoadedClassifier<B>> {
    if path.is_dir() {
        load_run(path, bert_dir, device)
    } else if path.is_file() {
        ReferenceCheckpoint::read(path, bert_dir)?.classifier(device)
    } else {
        bail!(
            "{}: no such checkpoint file or run directory",
            path.display()
        )
    }
}

/// Loads a classifier (as [`load_classifier`]) or, from a reference checkpoint with the
/// pre-training heads and no classifier, a pre-training model.
pub fn load_model<B: Backend>(
    path: &Path,
    bert_dir: Option<&Path>,
    device: &B::Device,
) -> Result<LoadedModel<B>> {
    if path.is_file() {
        let checkpoint = ReferenceCheckpoint::read(path, bert_dir)?;
        if is_pretrain_state_dict(&checkpoint.shapes) {
            let model = checkpoint.pretrain(device)?;
            return Ok(LoadedModel::Pretrain(Box::new(model)));
        }
        let classifier = checkpoint.classifier(device)?;
        return Ok(LoadedModel::Classifier(Box::new(classifier)));
    }
    let classifier = load_classifier(path, bert_dir, device)?;
    Ok(LoadedModel::Classifier(Box::new(classifier)))
}

fn load_run<B: Backend>(
    dir: &Path,
    bert_dir: Option<&Path>,
    device: &B::Device,
) -> Result<LoadedClassifier<B>> {
    let config_path = dir.join(CONFIG_FILE);
    let config_json = std::fs::read_to_string(&config_path).with_context(|| {
        format!(
            "{}: not a vidcls run directory (no readable {CONFIG_FILE})",
            dir.display()
        )
    })?;
    let config: VideoModelConfig = serde_json::from_str(&config_json)
        .with_context(|| format!("{}: not a model configuration", config_path.display()))?;
    let record = dir.join(RECORD_STEM);
    let initial = config.init_classifier::<B>(device);
    let expected = parameter_shapes(&initial);
    let model = initial
        .load_file(record.clone(), &Recorder::new(), device)
        .with_context(|| format!("{}.mpk: cannot read the model record", record.display()))?;
    let found = parameter_shapes(&model);
    if let Some(((name, want), (_, got))) = expected.iter().zip(&found).find(|(a, b)| a != b) {
        bail!(
            "{}.mpk does not match {}: parameter {name} has shape {got:?}, expected {want:?}",
            record.display(),
            config_path.display()
        );
    }
    let saved_tokenizer = dir.join(TOKENIZER_DIR);
    Ok(LoadedClassifier {
        config,
        model,
        tokenizer_dir: bert_dir
            .map(Path::to_path_buf)
            .or_else(|| saved_tokenizer.is_dir().then_some(saved_tokenizer)),
    })
}

/// A reference checkpoint file, its tensor shapes read, its weights not yet.
struct ReferenceCheckpoint<'a> {
    path: &'a Path,
    bert_dir: Option<&'a Path>,
    bert_config: Option<BertConfig>,
    shapes: TensorShapes,
}

impl<'a> ReferenceCheckpoint<'a> {
    fn read(path: &'a Path, bert_dir: Option<&'a Path>) -> Result<Self> {
        let bert_config = match bert_dir.map(|dir| dir.join("config.json")) {
            Some(file) if file.is_file() => Some(
                BertConfig::load_hf(&file)
                    .with_context(|| format!("{}: not a BERT configuration", file.display()))?,
            ),
            _ => None,
        };
        Ok(Self {
            path,
            bert_dir,
            bert_config,
            shapes: reference_tensor_shapes(path)?,
        })
    }

    fn classifier<B: Backend>(self, device: &B::Device) -> Result<LoadedClassifier<B>> {
        let (config, model) = self.load(infer_classifier_config, |config| {
            config.init_classifier::<B>(device)
        })?;
        Ok(LoadedClassifier {
            config,
            model,
            tokenizer_dir: self.bert_dir.map(Path::to_path_buf),
        })
    }

    fn pretrain<B: Backend>(self, device: &B::Device) -> Result<VideoPretrainModel<B>> {
        let (_, model) = self.load(infer_pretrain_config, |config| {
            config.init_pretrain::<B>(device)
        })?;
        Ok(model)
    }

    /// The configuration (read off the tensors by `infer`) and the loaded weights of the model
    /// that `init` builds from it.
    fn load<B: Backend, M: ModuleSnapshot<B>>(
        &self,
        infer: fn(&TensorShapes, Option<&BertConfig>) -> Result<VideoModelConfig, LoadError>,
        init: impl FnOnce(&VideoModelConfig) -> M,
    ) -> Result<(VideoModelConfig, M)> {
        let context = || self.path.display().to_string();
        let config = infer(&self.shapes, self.bert_config.as_ref()).with_context(context)?;
        let mut model = init(&config);
        load_reference_weights(&mut model, self.path).with_context(context)?;
        Ok((config, model))
    }
}

/// Writes a run directory (created if needed; files already there are replaced).
///
/// `tokenizer_dir`, if given, is the BERT directory whose tokenizer files are copied.
pub fn save_run<B: Backend>(
    dir: &Path,
    config: &VideoModelConfig,
    model: &VideoClassifier<B>,
    tokenizer_dir: Option<&Path>,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(dir)
        .with_context(|| format!("cannot create a temporary directory in {}", dir.display()))?;
    let staged_record = staging.path().join(RECORD_STEM);
    model
        .clone()
        .save_file(staged_record.clone(), &Recorder::new())
        .with_context(|| format!("writing the model record in {}", dir.display()))?;

    if let Some(source) = tokenizer_dir {
        let staged_tokenizer = staging.path().join(TOKENIZER_DIR);
        std::fs::create_dir(&staged_tokenizer)?;
        let mut copied = 0;
        for name in TOKENIZER_FILES {
            let file = source.join(name);
            if file.is_file() {
                std::fs::copy(&file, staged_tokenizer.join(name))
                    .with_context(|| format!("copying {}", file.display()))?;
                copied += 1;
            }
        }
        ensure!(
            copied > 0,
            "{}: no tokenizer files (vocab.txt or tokenizer.json)",
            source.display()
        );
        let target = dir.join(TOKENIZER_DIR);
        if target.is_dir() {
            std::fs::remove_dir_all(&target)
                .with_context(|| format!("cannot replace {}", target.display()))?;
        }
        std::fs::rename(&staged_tokenizer, &target)
            .with_context(|| format!("cannot move the tokenizer into {}", target.display()))?;
    }
    let record_file = |base: &Path| base.join(RECORD_STEM).with_extension("mpk");
    std::fs::rename(record_file(staging.path()), record_file(dir))
        .with_context(|| format!("cannot move the model record into {}", dir.display()))?;
    write_atomically(&dir.join(CONFIG_FILE), |out| {
        serde_json::to_writer_pretty(&mut *out, config)?;
        writeln!(out)?;
        Ok(())
    })
}

/// The shapes of a module's parameters with their paths, in visiting order.
fn parameter_shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>)> {
    let mut visitor = ShapeVisitor::default();
    module.visit(&mut visitor);
    visitor.shapes
}

#[derive(Default)]
struct ShapeVisitor {
    path: Vec<String>,
    shapes: Vec<(String, Vec<usize>)>,
}

impl ShapeVisitor {
    fn push(&mut self, dims: Vec<usize>) {
        self.shapes.push((self.path.join("."), dims));
    }
}

impl<B: Backend> ModuleVisitor<B> for ShapeVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.push(param.lazy_shape().to_vec());
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
        self.push(param.lazy_shape().to_vec());
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, Bool>>) {
        self.push(param.lazy_shape().to_vec());
    }
}
