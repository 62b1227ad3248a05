//! The flags that `vidcls finetune` and `vidcls pretrain` share: model and configuration,
//! initial weights, run directory, optimizer and schedule, data layout, device and resume.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use vidcls_datasets::tokenizer::TextEncoder;
use vidcls_model::{BertConfig, VideoModelConfig};
use vidcls_training::checkpoint::{RunConfig, checkpoint_model_config};
use vidcls_training::config::{OptimizerKind, Preset, TrainingConfig};
use vidcls_training::launch::RunSummary;
use vidcls_training::strategy::epoch_summary;

use super::flags;
use super::preset::PresetArg;
use super::visual_args::VisualArgs;
use crate::device::DeviceKind;
use vidcls_model::kernels::MatmulPrecision;

/// The optimizer on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// The reference's BertAdam (no bias correction, its double schedule).
    Bertadam,
    /// AdamW with bias correction and a linear warm-up/decay.
    Adamw,
}

/// Flags of a training run.
#[derive(Args, Debug)]
pub struct RunArgs {
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
    /// Start from a checkpoint: a vidcls run directory (fine-tuning or pre-training) or a
    /// reference checkpoint (fine-tuned classifier or pre-training model). What the checkpoint
    /// and the trained model share is loaded, the rest starts fresh; the model configuration
    /// is read from it.
    #[arg(long, value_name = "CHECKPOINT")]
    pub init: Option<PathBuf>,
    /// The run directory to write.
    #[arg(long = "output", visible_alias = "out", value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// Passes over the training videos.
    #[arg(long, value_parser = flags::positive)]
    pub epochs: Option<usize>,
    /// Stop after this many optimizer steps (the schedule then spans them).
    #[arg(long, value_parser = flags::positive)]
    pub max_steps: Option<usize>,
    /// Videos per optimizer step (a batch is always counted in videos).
    #[arg(long, value_parser = flags::positive)]
    pub batch_size: Option<usize>,
    /// Peak learning rate (0 keeps the initial weights: a way to evaluate them).
    #[arg(long, value_parser = flags::non_negative)]
    pub lr: Option<f64>,
    /// Warm-up steps of the linear schedule (reference: 1000).
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// Warm-up share of BertAdam's schedule factor (reference: 0.1).
    #[arg(long, value_parser = flags::rate)]
    pub warmup_ratio: Option<f64>,
    /// Decoupled weight decay (not for biases and BERT LayerNorm weights).
    #[arg(long, value_parser = flags::non_negative)]
    pub weight_decay: Option<f64>,
    /// Seed of the data order, dropout, masks, initial weights and the validation videos.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Batches in annotation order (no shuffling).
    #[arg(long)]
    pub no_shuffle: bool,
    /// Overrides every dropout and stochastic-depth probability of the model (0 = off).
    #[arg(long, value_parser = flags::rate)]
    pub dropout: Option<f64>,
    /// The optimizer.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,
    /// Side of the frames the model sees (a divisor of 224; preset default: seed 224, tiny 32).
    #[arg(long, value_name = "PX", value_parser = flags::positive)]
    pub frame_size: Option<usize>,
    /// Frame slots per video (preset default: 8).
    #[arg(long, value_name = "N", value_parser = flags::positive)]
    pub max_frames: Option<usize>,
    /// The most text ids per video of the compact text layout (tiny preset: 192); an error
    /// with the seed preset, whose reference layout is always 388 ids.
    #[arg(long, value_name = "N", value_parser = flags::positive)]
    pub max_text_len: Option<usize>,
    /// Optimizer steps between resumable checkpoints (0 = epoch ends only).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Device to train on.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Precision of the forward passes' matrix products (weights, gradients and optimizer
    /// state stay f32; see `vidcls predict --precision`). Meant for CUDA: on the CPU, `bf16`
    /// and `f16` run slower than f32.
    #[arg(long, value_enum, default_value_t = MatmulPrecision::F32)]
    pub precision: MatmulPrecision,
    /// Dynamic loss scaling, as PyTorch's GradScaler: the losses are multiplied by a scale
    /// before the backward passes so that small gradients survive f16, a step whose gradients
    /// overflow is skipped and halves the scale, 2000 steps without overflow double it. The
    /// initial scale, or `off` (default: 65536 with `--precision f16`, off otherwise).
    #[arg(long, value_name = "SCALE|off", value_parser = flags::loss_scale)]
    pub loss_scale: Option<flags::LossScale>,
    /// Train on these devices of --device at once, by index (`0,1,2,3`): each step's batch is
    /// shared out among them and their gradients summed on the first, which also holds the
    /// optimizer, the EMA and validation (default: the first device).
    #[arg(long, value_delimiter = ',', value_name = "INDICES")]
    pub devices: Vec<usize>,
    /// Preprocessing threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Continue the interrupted run in --output from its last checkpoint (its configuration is
    /// used; the data flags must name the same data).
    #[arg(long)]
    pub resume: bool,
}

impl RunArgs {
    /// The BERT directory: --bert-dir, else the dataset's `bert/` (`data`), else the tokenizer
    /// of the run being resumed or of the run directory given to --init.
    pub fn bert_dir(&self, data: Option<&Path>) -> Option<PathBuf> {
        let has_vocab =
            |dir: &Path| dir.join("vocab.txt").is_file() || dir.join("tokenizer.json").is_file();
        self.bert_dir
            .clone()
            .or_else(|| {
                data.map(|dir| dir.join("bert"))
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

    /// The BERT directory (see [`bert_dir`](Self::bert_dir)), the run configuration (the run
    /// directory's when resuming, else what `new` makes with the tokenizer) and its training
    /// part.
    pub fn prepare(
        &self,
        data: Option<&Path>,
        new: impl FnOnce(&Path, &TextEncoder) -> Result<RunConfig>,
    ) -> Result<(PathBuf, RunConfig, TrainingConfig)> {
        let bert_dir = self.bert_dir(data).context(
            "no tokenizer: give --bert-dir (a HuggingFace BERT directory with vocab.txt)",
        )?;
        let config = if self.resume {
            RunConfig::read(&self.out)?
        } else {
            new(&bert_dir, &TextEncoder::from_dir(&bert_dir)?)?
        };
        let training = config
            .training
            .clone()
            .context("the run configuration has no training part")?;
        Ok((bert_dir, config, training))
    }

    /// Sets the values of the flags given in `config`.
    pub fn apply(&self, config: &mut TrainingConfig) {
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
        config.shuffle &= !self.no_shuffle;
        if let Some(optimizer) = self.optimizer {
            config.optimizer = match optimizer {
                OptimizerArg::Bertadam => OptimizerKind::BertAdam,
                OptimizerArg::Adamw => OptimizerKind::AdamW,
            };
        }
    }

    /// The configuration file given to --config, if any.
    pub fn config_file(&self) -> Result<Option<RunConfig>> {
        self.config.as_deref().map(RunConfig::read_file).transpose()
    }

    /// The model of a new run: the --config file's, else --init's, else the preset's (with
    /// the BERT directory's `config.json` for the seed preset).
    pub fn model(
        &self,
        file: Option<&RunConfig>,
        bert_dir: &Path,
        tokenizer: &TextEncoder,
    ) -> Result<VideoModelConfig> {
        let preset = Preset::from(self.preset);
        Ok(match (file, &self.init) {
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
        })
    }

    /// The initial scale of dynamic loss scaling, if the run scales its losses.
    pub fn initial_loss_scale(&self) -> Option<f32> {
        flags::initial_loss_scale(self.loss_scale, self.precision)
    }

    /// Whether burn-train's dashboard can own the terminal.
    pub fn dashboard(&self) -> bool {
        std::io::stdout().is_terminal()
    }
}

/// Refuses frames of another size than the model takes (the training configuration's
/// `frame_side` against the backbone's input size).
pub fn check_frame_size(config: &RunConfig, visual: &VisualArgs) -> Result<()> {
    let swin = &config.model.encoder.swin;
    let side = config
        .training
        .as_ref()
        .map_or(swin.img_size, |training| training.frame_side);
    if visual.frames.is_some() && swin.img_size != side {
        bail!(
            "the model takes {0}x{0} frames but the training configuration makes {1}x{1} ones \
             (--frame-size)",
            swin.img_size,
            side
        );
    }
    Ok(())
}

/// Prints what a training run (`vidcls <command>`) did and where its model is.
pub fn print_summary(command: &str, out: &Path, summary: &RunSummary) {
    let report = &summary.report;
    if report.interrupted {
        println!(
            "interrupted after step {}: continue with `vidcls {command} ... --output {} --resume`",
            report.steps,
            out.display()
        );
        return;
    }
    println!(
        "trained {} steps on {} videos per epoch ({} validation videos)",
        report.steps, summary.train_videos, summary.validation_videos
    );
    for record in &report.history {
        println!("  {}", epoch_summary(record));
    }
    let model = out.join("model.safetensors");
    match (report.best_mean_f1, report.best_valid_loss) {
        (Some(best), _) => println!(
            "best validation mean_f1 {best:.4}: {} (EMA weights)",
            model.display()
        ),
        (None, Some(best)) => println!("lowest validation loss {best:.4}: {}", model.display()),
        (None, None) => println!("no validation: {} holds the last weights", model.display()),
    }
}
