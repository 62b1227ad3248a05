//! What fine-tuning and pre-training runs share around their training loop: the run
//! directory's checks and files, the resume point, the data kept in memory, and burn-train's
//! `SupervisedTraining` with the loop as its custom strategy.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail, ensure};
use burn::backend::Autodiff;
use burn::data::dataset::Dataset;
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::train::logger::InMemoryMetricLogger;
use burn::train::{InferenceStep, Learner, SupervisedTraining, TrainStep, TrainingStrategy};
use burn_store::ModuleSnapshot;
use vidcls_datasets::batcher::VideoBatch;
use vidcls_datasets::dataset::VideoDataset;
use vidcls_datasets::loader::VideoLoader;
use vidcls_model::kernels::MatmulPrecision;
use vidcls_model::loader::{load_hf_bert, load_official_swin, load_reference_weights_partial};

use crate::checkpoint::{MODEL_FILE, ReferenceModel, RunConfig, copy_tokenizer};
use crate::loss_scale::{LossScaler, ScalesLoss};
use crate::optim::AdamOptimizer;
use crate::renderer::PlainRenderer;
use crate::resume::{RESUME_DIR, ResumePoint, ResumeState, load_resume_point};
use crate::run::RunFiles;
use crate::schedule::LrSchedule;
use crate::strategy::{FitReport, RunComponents, StepOutput, TrainPlan, TrainStrategy};

/// The most memory that decoded frames (or features) may take to be kept between epochs.
const VISUAL_CACHE_BYTES: usize = 4 << 30;

/// The weights a run starts from, before training (ignored on resume).
#[derive(Debug, Clone, Default)]
pub struct InitialWeights {
    /// A HuggingFace BERT directory whose weights (if it has any) initialise the text side.
    pub bert_dir: Option<PathBuf>,
    /// An official Swin checkpoint for the visual backbone.
    pub swin_weights: Option<PathBuf>,
    /// A checkpoint to start from: a vidcls run directory, a reference fine-tuning checkpoint
    /// (all weights), or a reference pre-training checkpoint (the encoder and `video_dense`;
    /// the classifier starts fresh). Applied after the BERT and Swin weights.
    pub checkpoint: Option<PathBuf>,
}

impl InitialWeights {
    /// Loads the BERT directory's weights (if it has any) into the text side and the Swin
    /// checkpoint into the visual backbone of `model`, logging what it loaded.
    pub fn load_backbones<B: Backend, M: ModuleSnapshot<B>>(
        &self,
        model: &mut M,
        files: &mut RunFiles,
    ) -> Result<()> {
        if let Some(dir) = &self.bert_dir
            && ["model.safetensors", "pytorch_model.bin"]
                .iter()
                .any(|name| dir.join(name).is_file())
        {
            load_hf_bert(model, dir).with_context(|| dir.display().to_string())?;
            files.log(&format!("text encoder initialised from {}", dir.display()));
        }
        if let Some(path) = &self.swin_weights {
            load_official_swin(model, path).with_context(|| path.display().to_string())?;
            files.log(&format!(
                "visual backbone initialised from {}",
                path.display()
            ));
        }
        Ok(())
    }
}

/// Loads what `model` shares with the reference-named state dict `file` (a reference
/// checkpoint or a run directory's weights): every parameter must be found except those under
/// `fresh` (module paths), which keep their initial values (`what` says so in the log).
pub fn load_shared_weights<B: Backend, M: ModuleSnapshot<B>>(
    model: &mut M,
    file: &Path,
    fresh: &[&str],
    what: &str,
    files: &mut RunFiles,
) -> Result<()> {
    let result =
        load_reference_weights_partial(model, file).with_context(|| file.display().to_string())?;
    let missing: Vec<&String> = result
        .missing
        .iter()
        .map(|(name, _)| name)
        .filter(|name| !fresh.iter().any(|prefix| name.starts_with(prefix)))
        .collect();
    ensure!(
        missing.is_empty(),
        "{}: weights missing for {:?}",
        file.display(),
        missing.into_iter().take(5).collect::<Vec<_>>()
    );
    files.log(&format!(
        "initialised from {}{}",
        file.display(),
        if result.missing.is_empty() {
            String::new()
        } else {
            format!(" ({what})")
        }
    ));
    Ok(())
}

/// What a finished (or interrupted) run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The fit's report.
    pub report: FitReport,
    /// Training videos per epoch (after resampling).
    pub train_videos: usize,
    /// Validation videos.
    pub validation_videos: usize,
}

/// The resume point of `run_dir` when resuming (an error without one); otherwise `None`, after
/// checking that `run_dir` holds no run yet.
pub fn resume_point<B: Backend>(
    run_dir: &Path,
    resume: bool,
    device: &B::Device,
) -> Result<Option<ResumePoint<B>>> {
    if resume {
        let point = load_resume_point::<B>(run_dir, device)?;
        ensure!(
            point.is_some(),
            "{}: no resume point (resume/latest) to continue from",
            run_dir.display()
        );
        return Ok(point);
    }
    if run_dir.join(MODEL_FILE).exists() || run_dir.join(RESUME_DIR).exists() {
        bail!(
            "{} already holds a run: continue it with --resume, or choose another --output",
            run_dir.display()
        );
    }
    Ok(None)
}

/// The dataset with its visual inputs kept in memory after the first epoch, if they fit in
/// [`VISUAL_CACHE_BYTES`].
pub fn cache_visual(dataset: VideoDataset) -> VideoDataset {
    let bytes = dataset.visual_values_per_video() * std::mem::size_of::<f32>() * dataset.len();
    if bytes <= VISUAL_CACHE_BYTES {
        dataset.with_visual_cache()
    } else {
        dataset
    }
}

/// Opens the run directory: its log, the tokenizer files and the configuration; on resume,
/// `steps.csv` cut back to the resume point. Returns the files and where the run starts.
pub fn open_run<B: Backend>(
    run_dir: &Path,
    config: &RunConfig,
    tokenizer_dir: &Path,
    resume_point: Option<&ResumePoint<B>>,
    dashboard: bool,
) -> Result<(RunFiles, ResumeState)> {
    let files = RunFiles::open(run_dir, !dashboard)?;
    copy_tokenizer(tokenizer_dir, run_dir)?;
    config.write(run_dir)?;
    let start = match resume_point {
        Some(point) => {
            files.truncate_steps(point.state.step)?;
            point.state.clone()
        }
        None => ResumeState::start(),
    };
    Ok((files, start))
}

/// A training loop ready to run: everything [`launch`] needs.
pub struct Launch<B: Backend, M> {
    /// The model to train.
    pub model: M,
    /// Its optimizer (state already restored on resume).
    pub optimizer: AdamOptimizer<Autodiff<B>>,
    /// The learning-rate schedule at the starting step.
    pub schedule: LrSchedule,
    /// The training data and run length.
    pub plan: TrainPlan,
    /// The validation videos.
    pub validation: Option<VideoDataset>,
    /// EMA decay (0 = none).
    pub ema_decay: f64,
    /// The EMA of an interrupted run.
    pub ema: Option<crate::ema::Ema<B>>,
    /// Where the run starts.
    pub start: ResumeState,
    /// The run directory's files.
    pub files: RunFiles,
    /// The initial scale of dynamic loss scaling (see `loss_scale`), if the losses are scaled;
    /// a resumed run that scaled its losses goes on from its own state.
    pub loss_scale: Option<f32>,
    /// burn-train's terminal dashboard (else plain lines every `log_every` steps).
    pub dashboard: bool,
    /// Steps between plain log lines.
    pub log_every: usize,
}

/// The first of `devices`, which holds the model, the optimizer, the EMA and validation.
pub fn main_device<D>(devices: &[D]) -> Result<&D> {
    devices.first().context("no device to train on")
}

/// Trains: builds burn-train's `SupervisedTraining` around the run's loop (with the metrics
/// that `metrics` registers) and launches it. Returns the fit's report; a run that failed is an
/// error (also written to the log). With several `devices`, each step's batch is shared out
/// among them (see `data_parallel`).
pub fn launch<B, M>(
    mut run: Launch<B, M>,
    devices: &[B::Device],
    metrics: impl FnOnce(
        SupervisedTraining<RunComponents<Autodiff<B>, M>>,
    ) -> SupervisedTraining<RunComponents<Autodiff<B>, M>>,
) -> Result<FitReport>
where
    B: Backend,
    M: TrainStep<Input = VideoBatch<Autodiff<B>>>
        + AutodiffModule<Autodiff<B>>
        + ScalesLoss
        + core::fmt::Display
        + 'static,
    <M as TrainStep>::Output: StepOutput,
    M::InnerModule: InferenceStep<Input = VideoBatch<B>> + ReferenceModel,
    <M::InnerModule as InferenceStep>::Output: StepOutput,
{
    let device = main_device(devices)?;
    let plan = run.plan;
    let pad_id = plan.pad_id;
    let validation = run.validation.map(|dataset| {
        VideoLoader::<B>::new(
            dataset,
            pad_id,
            plan.batch_size,
            plan.workers,
            device.clone(),
        )
    });
    let epochs = plan.epochs;
    let first_train = plan.loader::<Autodiff<B>>(run.start.epoch, 0, device);
    let first_valid = validation.clone().unwrap_or_else(|| {
        VideoLoader::new(
            plan.dataset.select(Vec::new()),
            pad_id,
            1,
            1,
            device.clone(),
        )
    });
    let precision = MatmulPrecision::current();
    if precision != MatmulPrecision::F32 {
        run.files.log(&format!(
            "the forward passes' matrix products run in {} (weights, gradients and optimizer \
             state in f32)",
            precision.name()
        ));
    }
    run.start.loss_scaler = run.loss_scale.map(|initial| {
        run.start
            .loss_scaler
            .unwrap_or_else(|| LossScaler::new(initial))
    });
    if let Some(scaler) = &run.start.loss_scaler {
        run.files.log(&format!(
            "dynamic loss scaling: losses multiplied by {} before the backward passes, halved \
             after an overflow (the step is skipped), doubled after {} steps without one",
            scaler.scale, scaler.growth_interval
        ));
    }
    let run_dir = run.files.dir().to_path_buf();
    let report = Arc::new(Mutex::new(FitReport::default()));
    let files = Arc::new(Mutex::new(run.files));
    let strategy = TrainStrategy::<Autodiff<B>, M> {
        plan,
        validation,
        ema_decay: run.ema_decay,
        start: run.start,
        ema: Mutex::new(run.ema),
        optimizer: run.optimizer.clone(),
        files: files.clone(),
        report: report.clone(),
        devices: devices.to_vec(),
        precision,
        model: std::marker::PhantomData,
    };
    let learner = Learner::new(run.model, run.optimizer, run.schedule);
    let mut supervised =
        SupervisedTraining::new(&run_dir, Arc::new(first_train), Arc::new(first_valid))
            .with_application_logger(None)
            .with_metric_logger(InMemoryMetricLogger::new())
            .with_training_strategy(TrainingStrategy::Custom(Arc::new(strategy)))
            .num_epochs(epochs);
    supervised = metrics(supervised);
    if !run.dashboard {
        supervised = supervised.renderer(PlainRenderer::new(run.log_every));
    }
    supervised.launch(learner);

    let report = report.lock().expect("report").clone();
    let mut files = files.lock().expect("run files");
    files.set_echo(true);
    if let Some(error) = &report.error {
        files.log(&format!("error: {error}"));
        bail!("{error}");
    }
    Ok(report)
}
