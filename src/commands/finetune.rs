//! `vidcls finetune`: fine-tune a classifier on labeled videos with the reference's recipe.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::{Args, ValueEnum};
use vidcls_datasets::dataset::VideoDataset;
use vidcls_datasets::tokenizer::TextEncoder;
use vidcls_model::BertConfig;
use vidcls_training::checkpoint::{RunConfig, checkpoint_model_config};
use vidcls_training::config::{Adversarial, OptimizerKind, Preset, TrainingConfig};
use vidcls_training::data::{open_dataset, text_encoder};
use vidcls_training::finetune::{
    FinetuneJob, FinetuneSummary, InitialWeights, Validation, finetune,
};
use vidcls_training::strategy::epoch_summary;

use super::preset::PresetArg;
use super::visual_args::VisualArgs;
use crate::device::{BackendTask, DeviceKind, run_on};

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

/// The optimizer on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// The reference's BertAdam (no bias correction, its double schedule).
    Bertadam,
    /// AdamW with bias correction and a linear warm-up/decay.
    Adamw,
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
    #[arg(long, value_name = "R")]
    pub val_ratio: Option<f64>,
    /// Model and training defaults.
    #[arg(long, value_enum, default_value_t = PresetArg::Seed)]
    pub preset: PresetArg,
    /// A run configuration (`{"model": ..., "training": ...}`, as a run directory's
    /// `config.json`), instead of the preset; flags still override its training values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HuggingFace BERT directory: its tokenizer, its `config.json` (seed preset) and its
    /// weights (if any) for the text encoder.
    #[arg(long, value_name = "DIR")]
    pub bert_dir: Option<PathBuf>,
    /// Official Swin checkpoint for the visual backbone (`swin_tiny_patch4_window7_224.pth`).
    #[arg(long, value_name = "FILE")]
    pub swin_weights: Option<PathBuf>,
    /// Start from a checkpoint: a vidcls run directory, or a reference checkpoint of a
    /// fine-tuned classifier or of a pre-training model (its encoder; the classifier starts
    /// fresh). The model configuration is read from it.
    #[arg(long, value_name = "CHECKPOINT")]
    pub init: Option<PathBuf>,
    /// The run directory to write.
    #[arg(long, value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// Passes over the training videos.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many optimizer steps (the schedule then spans them).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Videos per optimizer step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Warm-up steps of the linear schedule (reference: 1000).
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// Warm-up share of BertAdam's schedule factor (reference: 0.1).
    #[arg(long)]
    pub warmup_ratio: Option<f64>,
    /// Decoupled weight decay (not for biases and BERT LayerNorm weights).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Seed of the data order, dropout, initial weights and the validation split.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Adversarial training on the word embeddings.
    #[arg(long, value_enum)]
    pub adversarial: Option<AdversarialArg>,
    /// FGM's perturbation size (default 1.0).
    #[arg(long)]
    pub fgm_eps: Option<f64>,
    /// PGD's attack steps (default 3).
    #[arg(long)]
    pub pgd_steps: Option<usize>,
    /// PGD's step size (default 0.3).
    #[arg(long)]
    pub pgd_alpha: Option<f64>,
    /// Radius of PGD's perturbation ball (default 1.0).
    #[arg(long)]
    pub pgd_eps: Option<f64>,
    /// Decay of the EMA of the weights (0 = no EMA).
    #[arg(long)]
    pub ema_decay: Option<f64>,
    /// Label smoothing of the cross-entropy.
    #[arg(long)]
    pub label_smoothing: Option<f64>,
    /// Do not repeat the videos of rare categories.
    #[arg(long)]
    pub no_resample: bool,
    /// Batches in annotation order (no shuffling).
    #[arg(long)]
    pub no_shuffle: bool,
    /// Overrides every dropout and stochastic-depth probability of the model (0 = off).
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Keep the visual backbone fixed.
    #[arg(long)]
    pub freeze_visual: bool,
    /// The optimizer.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,
    /// Side of the frames the model sees (a divisor of 224; preset default: seed 224, tiny 32).
    #[arg(long, value_name = "PX")]
    pub frame_size: Option<usize>,
    /// Frame slots per video (preset default: 8).
    #[arg(long, value_name = "N")]
    pub max_frames: Option<usize>,
    /// The most text ids per video of the compact text layout (tiny preset: 192); an error
    /// with the seed preset, whose reference layout is always 388 ids.
    #[arg(long, value_name = "N")]
    pub max_text_len: Option<usize>,
    /// Optimizer steps between resumable checkpoints (0 = epoch ends only).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Device to train on.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Preprocessing threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Continue the interrupted run in --out from its last checkpoint (its configuration is
    /// used; the data flags must name the same data).
    #[arg(long)]
    pub resume: bool,
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

    /// The BERT directory: --bert-dir, else the dataset's `bert/`, else the tokenizer of the
    /// run being resumed or of the run directory given to --init.
    fn bert_dir(&self) -> Option<PathBuf> {
        let has_vocab =
            |dir: &Path| dir.join("vocab.txt").is_file() || dir.join("tokenizer.json").is_file();
        self.bert_dir
            .clone()
            .or_else(|| {
                self.data
                    .as_ref()
                    .map(|dir| dir.join("bert"))
                    .filter(|dir| has_vocab(dir))
            })
            .or_else(|| {
                self.resume
                    .then(|| self.out.clone())
                    .filter(|dir| has_vocab(dir))
            })
            .or_else(|| {
                self.init
                    .clone()
                    .filter(|dir| dir.is_dir() && has_vocab(dir))
            })
    }

    /// The training configuration: the base, then the flags.
    fn training(&self, base: TrainingConfig) -> TrainingConfig {
        let mut config = base;
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(value) = self.$field { config.$field = value; } )* };
        }
        set!(
            epochs,
            batch_size,
            lr,
            warmup_steps,
            warmup_ratio,
            weight_decay,
            seed,
            ema_decay,
            label_smoothing,
            val_ratio,
            max_frames,
            max_text_len,
            checkpoint_every
        );
        if let Some(side) = self.frame_size {
            config.frame_side = side;
        }
        if self.max_steps.is_some() {
            config.max_steps = self.max_steps;
        }
        if self.dropout.is_some() {
            config.dropout = self.dropout;
        }
        if let Some(seed) = self.seed {
            config.split_seed = seed;
        }
        config.resample &= !self.no_resample;
        config.shuffle &= !self.no_shuffle;
        config.freeze_visual |= self.freeze_visual;
        if let Some(optimizer) = self.optimizer {
            config.optimizer = match optimizer {
                OptimizerArg::Bertadam => OptimizerKind::BertAdam,
                OptimizerArg::Adamw => OptimizerKind::AdamW,
            };
        }
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
        let preset = Preset::from(self.preset);
        let file = match &self.config {
            Some(path) => Some(RunConfig::read_file(path)?),
            None => None,
        };
        let model = match (&file, &self.init) {
            (Some(file), _) => file.model.clone(),
            (None, Some(init)) => checkpoint_model_config(init, Some(bert_dir))?,
            (None, None) => {
                let mut model = preset.model(tokenizer.vocab_size());
                let hf_config = bert_dir.join("config.json");
                if preset == Preset::Seed && hf_config.is_file() {
                    model.encoder.two_stream.bert =
                        BertConfig::load_hf(&hf_config).with_context(|| {
                            format!("{}: not a BERT configuration", hf_config.display())
                        })?;
                }
                model
            }
        };
        let base = file
            .and_then(|file| file.training)
            .unwrap_or_else(|| preset.training());
        let mut config = RunConfig {
            model,
            training: Some(self.training(base)),
        };
        config.apply_dropout_override();
        Ok(config)
    }
}

/// Runs `vidcls finetune`.
pub fn run(args: &FinetuneArgs) -> Result<()> {
    let summary = run_on(args.device, Finetune { args })?;
    let report = &summary.report;
    if report.interrupted {
        println!(
            "interrupted after step {}: continue with `vidcls finetune ... --out {} --resume`",
            report.steps,
            args.out.display()
        );
        return Ok(());
    }
    println!(
        "fine-tuned {} steps on {} training videos per epoch ({} validation videos)",
        report.steps, summary.train_videos, summary.validation_videos
    );
    for record in &report.history {
        println!("  {}", epoch_summary(record));
    }
    match report.best_mean_f1 {
        Some(best) => println!(
            "best validation mean_f1 {best:.4}: {} (EMA weights)",
            args.out.join("model.safetensors").display()
        ),
        None => println!(
            "no validation: {} holds the last EMA weights",
            args.out.join("model.safetensors").display()
        ),
    }
    Ok(())
}

struct Finetune<'a> {
    args: &'a FinetuneArgs,
}

impl BackendTask for Finetune<'_> {
    type Output = FinetuneSummary;

    fn run<B: Backend>(self, device: B::Device) -> Result<FinetuneSummary> {
        let args = self.args;
        let bert_dir = args.bert_dir().context(
            "no tokenizer: give --bert-dir (a HuggingFace BERT directory with vocab.txt)",
        )?;
        let config = if args.resume {
            RunConfig::read(&args.out)?
        } else {
            args.run_config(&bert_dir, &TextEncoder::from_dir(&bert_dir)?)?
        };
        let training = config
            .training
            .clone()
            .context("the run configuration has no training part")?;
        let text = text_encoder(&bert_dir, &training)?;
        let pad_id = text.special_tokens().pad;
        let text = Arc::new(text);
        let (annotations, visual) = args.data()?;
        let feature_dim = config.model.encoder.swin.num_features();
        let open = |annotations: &Path| -> Result<VideoDataset> {
            let source = visual.source_with_feature_dim(feature_dim)?;
            open_dataset(annotations, source, text.clone(), &training, true)
        };
        let swin = &config.model.encoder.swin;
        if visual.frames.is_some() && swin.img_size != training.frame_side {
            bail!(
                "the model takes {0}x{0} frames but the training configuration makes {1}x{1} ones \
                 (--frame-size)",
                swin.img_size,
                training.frame_side
            );
        }
        let labeled = open(&annotations)?;
        let validation = match &args.val_annotations {
            Some(path) => Validation::Dataset(open(path)?),
            None => Validation::Split,
        };
        let job = FinetuneJob {
            run_dir: args.out.clone(),
            config,
            labeled,
            validation,
            tokenizer_dir: bert_dir.clone(),
            pad_id,
            init: InitialWeights {
                bert_dir: Some(bert_dir),
                swin_weights: args.swin_weights.clone(),
                checkpoint: args.init.clone(),
            },
            resume: args.resume,
            workers: args.workers,
            dashboard: std::io::stdout().is_terminal(),
        };
        finetune::<B>(job, &device)
    }
}
