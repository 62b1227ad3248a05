//! `vidcls finetune`: fine-tune a classifier on labeled videos with the reference's recipe.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail};
use burn::prelude::*;
use clap::{Args, ValueEnum};
use vidcls_datasets::dataset::VideoDataset;
use vidcls_datasets::tokenizer::TextEncoder;
use vidcls_training::checkpoint::RunConfig;
use vidcls_training::config::{Adversarial, Preset, TrainingConfig};
use vidcls_training::data::{open_dataset, text_encoder};
use vidcls_training::finetune::{FinetuneJob, Validation, finetune};
use vidcls_training::launch::InitialWeights;
use vidcls_training::launch::RunSummary;

use super::flags;
use super::train_args::{RunArgs, check_frame_size, print_summary};
use super::visual_args::VisualArgs;
use crate::device::{BackendTask, Workload, run_with_precision, select_devices};

/// Adversarial training on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AdversarialArg {
    /// Fast Gradient Method (the reference's default).
    Fgm,
    /// Projected Gradient Descent.
    Pgd,
    /// None.
    None,
}

/// Arguments of `vidcls finetune`.
#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// A dataset in the competition's layout: trains on `annotations/labeled.json` with
    /// `zip_frames/labeled` (and uses `bert/` as --bert-dir when present, as `vidcls synth`
    /// writes it).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["annotations", "frames", "features"])]
    pub data: Option<PathBuf>,
    /// Labeled annotation file (with --frames or --features).
    #[arg(long, value_name = "FILE")]
    pub annotations: Option<PathBuf>,
    /// Directory of raw frame zips of the annotation file's videos.
    #[arg(long, value_name = "DIR", conflicts_with = "features")]
    pub frames: Option<PathBuf>,
    /// Zip of pre-extracted features of the annotation file's videos.
    #[arg(long, value_name = "ZIP")]
    pub features: Option<PathBuf>,
    /// Validation annotation file (same visual source); replaces the split of --val-ratio.
    #[arg(long, value_name = "FILE")]
    pub val_annotations: Option<PathBuf>,
    /// Share of the labeled videos held out for validation, stratified by category (preset
    /// default: seed 0.02, tiny 0.1); 0 = no validation (the last EMA weights are kept).
    #[arg(long, value_name = "R", value_parser = flags::rate)]
    pub val_ratio: Option<f64>,
    /// The run's model, weights, directory, optimizer, data layout and device.
    #[command(flatten)]
    pub run: RunArgs,
    /// Adversarial training on the word embeddings.
    #[arg(long, value_enum)]
    pub adversarial: Option<AdversarialArg>,
    /// FGM's perturbation size (default 1.0).
    #[arg(long, value_parser = flags::non_negative)]
    pub fgm_eps: Option<f64>,
    /// PGD's attack steps (default 3).
    #[arg(long, value_parser = flags::positive)]
    pub pgd_steps: Option<usize>,
    /// PGD's step size (default 0.3).
    #[arg(long, value_parser = flags::non_negative)]
    pub pgd_alpha: Option<f64>,
    /// Radius of PGD's perturbation ball (default 1.0).
    #[arg(long, value_parser = flags::non_negative)]
    pub pgd_eps: Option<f64>,
    /// Decay of the EMA of the weights (0 = no EMA).
    #[arg(long, value_parser = flags::rate)]
    pub ema_decay: Option<f64>,
    /// Label smoothing of the cross-entropy.
    #[arg(long, value_parser = flags::rate)]
    pub label_smoothing: Option<f64>,
    /// Do not repeat the videos of rare categories.
    #[arg(long)]
    pub no_resample: bool,
    /// Keep the visual backbone fixed.
    #[arg(long)]
    pub freeze_visual: bool,
}

impl FinetuneArgs {
    /// The labeled annotations and their visual source.
    fn data(&self) -> Result<(PathBuf, VisualArgs)> {
        match (&self.data, &self.annotations) {
            (Some(dir), _) => Ok((
                dir.join("annotations/labeled.json"),
                VisualArgs {
                    frames: Some(dir.join("zip_frames/labeled")),
                    features: None,
                },
            )),
            (None, Some(annotations)) => {
                if self.frames.is_none() && self.features.is_none() {
                    bail!("--annotations needs --frames DIR or --features ZIP");
                }
                Ok((
                    annotations.clone(),
                    VisualArgs {
                        frames: self.frames.clone(),
                        features: self.features.clone(),
                    },
                ))
            }
            (None, None) => {
                bail!("give --data DIR, or --annotations FILE with --frames or --features")
            }
        }
    }

    /// The training configuration: the base, then the flags.
    fn training(&self, base: TrainingConfig) -> TrainingConfig {
        let mut config = base;
        self.run.apply(&mut config);
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(value) = self.$field { config.$field = value; } )* };
        }
        set!(ema_decay, label_smoothing, val_ratio);
        config.resample &= !self.no_resample;
        config.freeze_visual |= self.freeze_visual;
        if let Some(kind) = self.adversarial {
            config.adversarial = match (kind, config.adversarial) {
                (AdversarialArg::None, _) => Adversarial::None,
                (AdversarialArg::Fgm, current @ Adversarial::Fgm { .. }) => current,
                (AdversarialArg::Fgm, _) => Adversarial::FGM,
                (AdversarialArg::Pgd, current @ Adversarial::Pgd { .. }) => current,
                (AdversarialArg::Pgd, _) => Adversarial::PGD,
            };
        }
        config.adversarial = match config.adversarial {
            Adversarial::Fgm { eps } => Adversarial::Fgm {
                eps: self.fgm_eps.unwrap_or(eps),
            },
            Adversarial::Pgd { steps, alpha, eps } => Adversarial::Pgd {
                steps: self.pgd_steps.unwrap_or(steps),
                alpha: self.pgd_alpha.unwrap_or(alpha),
                eps: self.pgd_eps.unwrap_or(eps),
            },
            Adversarial::None => Adversarial::None,
        };
        config
    }

    /// The run configuration of a new run.
    fn run_config(&self, bert_dir: &Path, tokenizer: &TextEncoder) -> Result<RunConfig> {
        let file = self.run.config_file()?;
        let model = self.run.model(file.as_ref(), bert_dir, tokenizer)?;
        let base = file
            .and_then(|file| file.training)
            .unwrap_or_else(|| Preset::from(self.run.preset).training());
        let mut config = RunConfig {
            model,
            training: Some(self.training(base)),
            pretraining: None,
        };
        config.apply_dropout_override();
        Ok(config)
    }
}

/// Runs `vidcls finetune`.
pub fn run(args: &FinetuneArgs) -> Result<()> {
    let summary = run_with_precision(
        args.run.device,
        args.run.precision,
        Workload::Training,
        Finetune { args },
    )?;
    print_summary("finetune", &args.run.out, &summary);
    Ok(())
}

struct Finetune<'a> {
    args: &'a FinetuneArgs,
}

impl BackendTask for Finetune<'_> {
    type Output = RunSummary;

    fn run<B: Backend>(self, _device: B::Device) -> Result<RunSummary> {
        let args = self.args;
        let (bert_dir, config, training) = args
            .run
            .prepare(args.data.as_deref(), |bert_dir, tokenizer| {
                args.run_config(bert_dir, tokenizer)
            })?;
        let text = text_encoder(&bert_dir, &training)?;
        let pad_id = text.special_tokens().pad;
        let text = Arc::new(text);
        let (annotations, visual) = args.data()?;
        let feature_dim = config.model.encoder.swin.num_features();
        let open = |annotations: &Path| -> Result<VideoDataset> {
            let source = visual.source_with_feature_dim(feature_dim)?;
            open_dataset(annotations, source, text.clone(), &training, true)
        };
        check_frame_size(&config, &visual)?;
        let labeled = open(&annotations)?;
        let validation = match &args.val_annotations {
            Some(path) => Validation::Dataset(open(path)?),
            None => Validation::Split,
        };
        let job = FinetuneJob {
            run_dir: args.run.out.clone(),
            config,
            labeled,
            validation,
            tokenizer_dir: bert_dir.clone(),
            pad_id,
            init: InitialWeights {
                bert_dir: Some(bert_dir),
                swin_weights: args.run.swin_weights.clone(),
                checkpoint: args.run.init.clone(),
            },
            resume: args.run.resume,
            workers: args.run.workers,
            dashboard: args.run.dashboard(),
            loss_scale: args.run.initial_loss_scale(),
        };
        finetune::<B>(job, &select_devices::<B>(&args.run.devices)?)
    }
}
