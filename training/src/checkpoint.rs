//! Model checkpoints: vidcls run directories and the reference's PyTorch checkpoints
//! (fine-tuned classifiers or pre-training models).
//!
//! A run directory is laid out like a HuggingFace model directory:
//! - `config.json`: `{"model": <VideoModelConfig>, "training": <TrainingConfig>}` (the
//!   training part only for runs made by `vidcls finetune`);
//! - `model.safetensors`: the weights with the reference's state-dict names (PyTorch loads them
//!   with `load_state_dict(strict=True)`); for a fine-tuning run, the EMA weights of the best
//!   validation epoch (the last epoch's without validation);
//! - `raw.safetensors` (fine-tuning runs): the raw (non-EMA) weights at the end of training;
//! - the tokenizer files of the BERT directory it was trained with (`vocab.txt`,
//!   `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`, whichever exist), so
//!   that predicting needs no `--bert-dir`.
//!
//! Directories of earlier vidcls versions (`config.json` holding the model configuration
//! alone, the weights as a Burn record `model.mpk`, the tokenizer under `tokenizer/`) still
//! load. Every file is written atomically, the configuration last. A reference checkpoint
//! (`.pth` with `model_state_dict`, or a `.safetensors` state dict with the reference's names)
//! has no configuration: it is read off the tensors' shapes, with the BERT directory's
//! `config.json` for what shapes cannot tell. A reference checkpoint with the pre-training
//! heads and no classifier is a pre-training model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn_store::ModuleSnapshot;
use serde::{Deserialize, Serialize};
use vidcls_datasets::output::{PendingFile, write_atomically};
use vidcls_model::loader::{
    LoadError, TensorShapes, infer_classifier_config, infer_pretrain_config,
    is_pretrain_state_dict, load_reference_weights, reference_tensor_shapes,
    save_classifier_safetensors, save_pretrain_safetensors,
};
use vidcls_model::{BertConfig, VideoClassifier, VideoModelConfig, VideoPretrainModel};

use crate::config::{PretrainingConfig, TrainingConfig};

/// The configuration file of a run directory.
pub const CONFIG_FILE: &str = "config.json";
/// The model weights of a run directory (reference names).
pub const MODEL_FILE: &str = "model.safetensors";
/// The raw (non-EMA) weights at the end of a fine-tuning run (reference names).
pub const RAW_FILE: &str = "raw.safetensors";
/// The EMA weights at the end of the last epoch of a fine-tuning run (reference names).
pub const LAST_FILE: &str = "last.safetensors";
/// The Burn record of a run directory of earlier versions (the recorder adds `.mpk`).
const LEGACY_RECORD_STEM: &str = "model";
/// The tokenizer directory of a run directory of earlier versions.
const LEGACY_TOKENIZER_DIR: &str = "tokenizer";
/// Files of a BERT directory that make up its tokenizer (a run directory keeps those its BERT
/// directory has).
pub const TOKENIZER_FILES: [&str; 4] = [
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

type Recorder = NamedMpkFileRecorder<FullPrecisionSettings>;

/// The `config.json` of a run directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// The model.
    pub model: VideoModelConfig,
    /// How it was trained, for runs made by vidcls's training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingConfig>,
    /// The pre-training objectives, for runs made by `vidcls pretrain` (their model is a
    /// pre-training model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretraining: Option<PretrainingConfig>,
}

impl RunConfig {
    /// Reads a run directory's configuration (either layout).
    pub fn read(dir: &Path) -> Result<Self> {
        if !dir.join(CONFIG_FILE).is_file() {
            bail!(
                "{}: not a vidcls run directory (no {CONFIG_FILE})",
                dir.display()
            );
        }
        Self::read_file(&dir.join(CONFIG_FILE))
    }

    /// Reads a run configuration file (either layout).
    pub fn read_file(path: &Path) -> Result<Self> {
        let json = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&json).with_context(|| format!("{}: not JSON", path.display()))?;
        let parsed = if value.get("model").is_some() {
            serde_json::from_value(value)
        } else {
            serde_json::from_value(value).map(|model| RunConfig {
                model,
                training: None,
                pretraining: None,
            })
        };
        let config: RunConfig = parsed
            .with_context(|| format!("{}: not a vidcls run configuration", path.display()))?;
        config
            .model
            .validate()
            .map_err(|message| anyhow::anyhow!("{}: invalid model: {message}", path.display()))?;
        Ok(config)
    }

    /// Applies the training configuration's dropout override, if any, to the model.
    pub fn apply_dropout_override(&mut self) {
        if let Some(probability) = self.training.as_ref().and_then(|t| t.dropout) {
            self.model.set_dropout(probability);
        }
    }

    /// Writes the configuration into a run directory, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomically(&dir.join(CONFIG_FILE), |out| {
            serde_json::to_writer_pretty(&mut *out, self)?;
            writeln!(out)
        })?;
        Ok(())
    }
}

/// Which weights of a run directory to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunWeights {
    /// The run's model (`model.safetensors`): for a fine-tuning run, the EMA weights of the
    /// best validation epoch.
    #[default]
    Model,
    /// The EMA weights at the end of the last epoch of a fine-tuning run (`last.safetensors`).
    Last,
    /// The raw (non-EMA) weights at the end of a fine-tuning run (`raw.safetensors`).
    Raw,
}

/// A classifier read from a checkpoint.
pub struct LoadedClassifier<B: Backend> {
    /// Its configuration.
    pub config: VideoModelConfig,
    /// The model.
    pub model: VideoClassifier<B>,
    /// The tokenizer to use with it: the given BERT directory, else the run directory's copy.
    pub tokenizer_dir: Option<PathBuf>,
    /// How it was trained (frame size, text layout, ...), for a run directory of a training.
    pub training: Option<TrainingConfig>,
}

impl<B: Backend> LoadedClassifier<B> {
    /// The data settings the model expects: those it was trained with, else the reference's.
    pub fn data_settings(&self) -> TrainingConfig {
        self.training.clone().unwrap_or_else(TrainingConfig::seed)
    }
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
        load_run(path, bert_dir, RunWeights::Model, device)
    } else if path.is_file() {
        ReferenceCheckpoint::read(path, bert_dir)?.classifier(device)
    } else {
        bail!(
            "{}: no such checkpoint file or run directory",
            path.display()
        )
    }
}

/// Loads a classifier (as [`load_classifier`], with the chosen weights of a run directory)
/// or, from a reference checkpoint with the pre-training heads and no classifier, a
/// pre-training model.
pub fn load_model<B: Backend>(
    path: &Path,
    bert_dir: Option<&Path>,
    weights: RunWeights,
    device: &B::Device,
) -> Result<LoadedModel<B>> {
    if path.is_file() {
        ensure!(
            weights == RunWeights::Model,
            "{}: a checkpoint file has one set of weights (choosing them is for run directories)",
            path.display()
        );
        let checkpoint = ReferenceCheckpoint::read(path, bert_dir)?;
        if is_pretrain_state_dict(&checkpoint.shapes) {
            let model = checkpoint.pretrain(device)?;
            return Ok(LoadedModel::Pretrain(Box::new(model)));
        }
        let classifier = checkpoint.classifier(device)?;
        return Ok(LoadedModel::Classifier(Box::new(classifier)));
    }
    if !path.is_dir() {
        bail!(
            "{}: no such checkpoint file or run directory",
            path.display()
        );
    }
    if RunConfig::read(path)?.pretraining.is_some() {
        return Ok(LoadedModel::Pretrain(Box::new(load_pretrain_run(
            path, weights, device,
        )?)));
    }
    let classifier = load_run(path, bert_dir, weights, device)?;
    Ok(LoadedModel::Classifier(Box::new(classifier)))
}

/// The model configuration of a checkpoint: a run directory's, or the one read off a
/// reference checkpoint's tensors (a pre-training checkpoint gives the encoder of a classifier
/// with the default 200 classes).
pub fn checkpoint_model_config(path: &Path, bert_dir: Option<&Path>) -> Result<VideoModelConfig> {
    if path.is_dir() {
        return Ok(RunConfig::read(path)?.model);
    }
    let checkpoint = ReferenceCheckpoint::read(path, bert_dir)?;
    let infer = if is_pretrain_state_dict(&checkpoint.shapes) {
        infer_pretrain_config
    } else {
        infer_classifier_config
    };
    infer(&checkpoint.shapes, checkpoint.bert_config.as_ref())
        .with_context(|| path.display().to_string())
}

/// Loads the classifier of a run directory (either layout), with the chosen weights.
pub fn load_run<B: Backend>(
    dir: &Path,
    bert_dir: Option<&Path>,
    weights: RunWeights,
    device: &B::Device,
) -> Result<LoadedClassifier<B>> {
    let RunConfig {
        model: config,
        training,
        pretraining,
    } = RunConfig::read(dir)?;
    ensure!(
        pretraining.is_none(),
        "{}: a pre-training run has no classifier (fine-tune it with `vidcls finetune --init {}`, \
         or export it with `vidcls export`)",
        dir.display(),
        dir.display()
    );
    let weights_path = weights_file(dir, weights);
    let legacy_record = dir.join(LEGACY_RECORD_STEM);
    let model = if weights_path.is_file() {
        let mut model = config.init_classifier::<B>(device);
        load_reference_weights(&mut model, &weights_path)
            .with_context(|| format!("{}", weights_path.display()))?;
        model
    } else if weights == RunWeights::Model && legacy_record.with_extension("mpk").is_file() {
        load_legacy_record(&config, &legacy_record, device)?
    } else {
        bail!("{}: no such weights file", weights_path.display());
    };
    let legacy_tokenizer = dir.join(LEGACY_TOKENIZER_DIR);
    let saved_tokenizer = if has_tokenizer(dir) {
        Some(dir.to_path_buf())
    } else {
        legacy_tokenizer.is_dir().then_some(legacy_tokenizer)
    };
    Ok(LoadedClassifier {
        config,
        model,
        tokenizer_dir: bert_dir.map(Path::to_path_buf).or(saved_tokenizer),
        training,
    })
}

/// The weights file of a run directory that `weights` names.
fn weights_file(dir: &Path, weights: RunWeights) -> PathBuf {
    dir.join(match weights {
        RunWeights::Model => MODEL_FILE,
        RunWeights::Last => LAST_FILE,
        RunWeights::Raw => RAW_FILE,
    })
}

/// Loads the pre-training model of a run directory made by `vidcls pretrain`, with the chosen
/// weights.
pub fn load_pretrain_run<B: Backend>(
    dir: &Path,
    weights: RunWeights,
    device: &B::Device,
) -> Result<VideoPretrainModel<B>> {
    let config = RunConfig::read(dir)?;
    ensure!(
        config.pretraining.is_some(),
        "{}: not a pre-training run",
        dir.display()
    );
    let path = weights_file(dir, weights);
    let mut model = config.model.init_pretrain::<B>(device);
    load_reference_weights(&mut model, &path).with_context(|| path.display().to_string())?;
    Ok(model)
}

/// Whether a directory holds tokenizer files.
fn has_tokenizer(dir: &Path) -> bool {
    ["vocab.txt", "tokenizer.json"]
        .iter()
        .any(|name| dir.join(name).is_file())
}

/// Loads the Burn record (`model.mpk`) of a run directory of earlier versions.
fn load_legacy_record<B: Backend>(
    config: &VideoModelConfig,
    record: &Path,
    device: &B::Device,
) -> Result<VideoClassifier<B>> {
    let initial = config.init_classifier::<B>(device);
    let expected = parameter_shapes(&initial);
    let model = initial
        .load_file(record.to_path_buf(), &Recorder::new(), device)
        .with_context(|| format!("{}.mpk: cannot read the model record", record.display()))?;
    let found = parameter_shapes(&model);
    if let Some(((name, want), (_, got))) = expected.iter().zip(&found).find(|(a, b)| a != b) {
        bail!(
            "{}.mpk does not match its {CONFIG_FILE}: parameter {name} has shape {got:?}, \
             expected {want:?}",
            record.display(),
        );
    }
    Ok(model)
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
            training: None,
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

/// Writes a run directory (created if needed; files already there are replaced): the
/// tokenizer files of `tokenizer_dir` if given, the weights as `model.safetensors`, then
/// `config.json`.
pub fn save_run<B: Backend>(
    dir: &Path,
    config: &RunConfig,
    model: &VideoClassifier<B>,
    tokenizer_dir: Option<&Path>,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if let Some(source) = tokenizer_dir {
        copy_tokenizer(source, dir)?;
    }
    save_weights(&dir.join(MODEL_FILE), model)?;
    config.write(dir)
}

/// A model that a run directory holds as a safetensors state dict with the reference's names.
pub trait ReferenceModel {
    /// Writes the state dict to `path` (in place: [`save_weights`] writes atomically).
    fn write_state_dict(&self, path: &Path) -> Result<(), LoadError>;
}

impl<B: Backend> ReferenceModel for VideoClassifier<B> {
    fn write_state_dict(&self, path: &Path) -> Result<(), LoadError> {
        save_classifier_safetensors(self, path)
    }
}

impl<B: Backend> ReferenceModel for VideoPretrainModel<B> {
    fn write_state_dict(&self, path: &Path) -> Result<(), LoadError> {
        save_pretrain_safetensors(self, path)
    }
}

/// Writes a model's weights as a safetensors file with the reference's names, atomically.
pub fn save_weights<M: ReferenceModel>(path: &Path, model: &M) -> Result<()> {
    let pending = PendingFile::create(path)?;
    model
        .write_state_dict(pending.temp_path())
        .with_context(|| format!("writing {}", path.display()))?;
    pending.commit(true)?;
    Ok(())
}

/// Copies the tokenizer files of a BERT directory into `dir`, each atomically.
pub fn copy_tokenizer(source: &Path, dir: &Path) -> Result<()> {
    if source == dir {
        return Ok(());
    }
    let mut copied = 0;
    for name in TOKENIZER_FILES {
        let file = source.join(name);
        if file.is_file() {
            let pending = PendingFile::create(&dir.join(name))?;
            std::fs::copy(&file, pending.temp_path())
                .with_context(|| format!("copying {}", file.display()))?;
            pending.commit(true)?;
            copied += 1;
        }
    }
    ensure!(
        copied > 0,
        "{}: no tokenizer files (vocab.txt or tokenizer.json)",
        source.display()
    );
    Ok(())
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
