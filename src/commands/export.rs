//! `vidcls export`: a checkpoint as a safetensors state dict with the reference's names
//! (loadable by the PyTorch reference with `strict=True`): a classifier (run directory or
//! reference checkpoint) or a pre-training model (reference checkpoint); or a classifier as a
//! vidcls run directory.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::{Args, ValueEnum};
use vidcls_model::loader::{save_classifier_safetensors, save_pretrain_safetensors};

use crate::device::{BackendTask, DeviceKind, run_on};
use vidcls_datasets::output::{PendingDir, PendingFile, check_output};
use vidcls_training::checkpoint::{
    LoadedClassifier, LoadedModel, RunConfig, RunWeights, load_model, save_run,
};

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A safetensors state dict with the reference's names (Swin buffers included).
    Safetensors,
    /// A vidcls run directory (configuration, Burn record, tokenizer if known); classifiers only.
    Run,
}

/// Arguments of `vidcls export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Checkpoint: a vidcls run directory, or a reference checkpoint of a fine-tuned classifier
    /// or of a pre-training model.
    #[arg(long, value_name = "PATH")]
    pub checkpoint: PathBuf,
    /// BERT directory of the model: its `config.json` gives the attention heads of a reference
    /// checkpoint, and `--format run` copies its tokenizer.
    #[arg(long, value_name = "DIR")]
    pub bert_dir: Option<PathBuf>,
    /// The file (or run directory, which must not exist or be empty) to write.
    #[arg(long, value_name = "PATH")]
    pub output: PathBuf,
    /// Replace the output file if it exists (a run directory is never replaced).
    #[arg(long)]
    pub overwrite: bool,
    /// What to write.
    #[arg(long, value_enum, default_value_t = ExportFormat::Safetensors)]
    pub format: ExportFormat,
    /// Which weights of a fine-tuning run directory: its model (the EMA weights of the best
    /// validation epoch, what `predict` uses), the EMA weights of its last epoch, or its raw
    /// (non-EMA) weights at the end.
    #[arg(long, value_enum, default_value_t = WeightsArg::Ema)]
    pub weights: WeightsArg,
}

/// `--weights` of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WeightsArg {
    /// The run's model (`model.safetensors`).
    Ema,
    /// The EMA weights of the last epoch (`last.safetensors`).
    Last,
    /// The raw weights at the end of training (`raw.safetensors`).
    Raw,
}

impl From<WeightsArg> for RunWeights {
    fn from(weights: WeightsArg) -> Self {
        match weights {
            WeightsArg::Ema => RunWeights::Model,
            WeightsArg::Last => RunWeights::Last,
            WeightsArg::Raw => RunWeights::Raw,
        }
    }
}

/// Runs `vidcls export`.
pub fn run(args: &ExportArgs) -> Result<()> {
    let mut inputs = vec![args.checkpoint.as_path()];
    inputs.extend(args.bert_dir.as_deref());
    // A run directory is refused by PendingDir unless it is empty: no overwrite check here.
    let overwrite = args.overwrite || args.format == ExportFormat::Run;
    check_output(&args.output, &inputs, overwrite)?;
    run_on(DeviceKind::Cpu, Export { args })?;
    log::info!("wrote {}", args.output.display());
    Ok(())
}

struct Export<'a> {
    args: &'a ExportArgs,
}

impl BackendTask for Export<'_> {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let args = self.args;
        let model = load_model::<B>(
            &args.checkpoint,
            args.bert_dir.as_deref(),
            args.weights.into(),
            &device,
        )?;
        match args.format {
            ExportFormat::Safetensors => {
                if args.output.is_dir() {
                    bail!("{} is a directory", args.output.display());
                }
                let pending = PendingFile::create(&args.output)?;
                match model {
                    LoadedModel::Classifier(loaded) => {
                        save_classifier_safetensors(&loaded.model, pending.temp_path())?
                    }
                    LoadedModel::Pretrain(model) => {
                        save_pretrain_safetensors(&model, pending.temp_path())?
                    }
                }
                pending.commit(true)?;
                Ok(())
            }
            ExportFormat::Run => {
                let LoadedModel::Classifier(loaded) = model else {
                    bail!(
                        "{} is a pre-training checkpoint: run directories hold classifiers only \
                         (export it with --format safetensors)",
                        args.checkpoint.display()
                    );
                };
                let LoadedClassifier {
                    config,
                    model,
                    tokenizer_dir,
                    training,
                } = *loaded;
                if args.output.exists() && !args.output.is_dir() {
                    bail!("{} exists and is not a directory", args.output.display());
                }
                let config = RunConfig {
                    model: config,
                    training,
                    pretraining: None,
                };
                let pending = PendingDir::create(&args.output)
                    .with_context(|| args.output.display().to_string())?;
                save_run(
                    pending.temp_path(),
                    &config,
                    &model,
                    tokenizer_dir.as_deref(),
                )?;
                pending.commit()?;
                Ok(())
            }
        }
    }
}
