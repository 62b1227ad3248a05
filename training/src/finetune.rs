//! A whole fine-tuning run: the split and resampling of the labeled videos, the initial
//! weights, burn-train's Learner with its metrics and dashboard, and the run directory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail, ensure};
use burn::backend::Autodiff;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::prelude::*;
use burn::train::logger::InMemoryMetricLogger;
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining, TrainingStrategy};
use vidcls_datasets::dataset::VideoDataset;
use vidcls_datasets::loader::VideoLoader;
use vidcls_datasets::split::{resample, stratified_split};
use vidcls_model::VideoClassifier;
use vidcls_model::loader::{
    load_hf_bert, load_official_swin, load_reference_weights, load_reference_weights_partial,
};

use crate::checkpoint::{MODEL_FILE, RunConfig, RunWeights, copy_tokenizer, load_run};
use crate::ema::Ema;
use crate::metrics::{VideosPerSecond, WbdcMetric, WbdcScore};
use crate::optim::{AdamOptimizer, AdamSettings};
use crate::renderer::PlainRenderer;
use crate::resume::{ResumeState, load_resume_point};
use crate::run::RunFiles;
use crate::schedule::LrSchedule;
use crate::step::{FinetuneModel, Objective};
use crate::strategy::{FinetuneStrategy, FitReport, TrainPlan};

/// The most memory that decoded frames (or features) may take to be kept between epochs.
const VISUAL_CACHE_BYTES: usize = 4 << 30;

/// Where the validation videos come from.
pub enum Validation {
    /// A stratified share of the labeled videos (the configuration's `val_ratio`; 0 = none).
    Split,
    /// Another labeled annotation file.
    Dataset(VideoDataset),
}

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

/// Everything a fine-tuning run needs.
pub struct FinetuneJob {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The model and training configuration.
    pub config: RunConfig,
    /// The labeled videos (frames already at the configuration's size).
    pub labeled: VideoDataset,
    /// The validation videos.
    pub validation: Validation,
    /// The BERT directory whose tokenizer the data uses (copied into the run directory).
    pub tokenizer_dir: PathBuf,
    /// `[PAD]` id of that tokenizer.
    pub pad_id: u32,
    /// The initial weights.
    pub init: InitialWeights,
    /// Continue the interrupted run in `run_dir`.
    pub resume: bool,
    /// Preprocessing threads (0 = one per core).
    pub workers: usize,
    /// burn-train's terminal dashboard (else plain lines on stdout).
    pub dashboard: bool,
}

/// What a finished (or interrupted) run reports.
#[derive(Debug, Clone)]
pub struct FinetuneSummary {
    /// The fit's report.
    pub report: FitReport,
    /// Training videos per epoch (after resampling).
    pub train_videos: usize,
    /// Validation videos.
    pub validation_videos: usize,
}

/// Runs a fine-tuning job on device `device` of backend `B`.
pub fn finetune<B: Backend>(job: FinetuneJob, device: &B::Device) -> Result<FinetuneSummary> {
    let training = job
        .config
        .training
        .clone()
        .context("the run configuration has no training part")?;
    training
        .validate()
        .map_err(|message| anyhow::anyhow!("invalid training configuration: {message}"))?;
    let resume_point = if job.resume {
        let point = load_resume_point::<B>(&job.run_dir, device)?;
        ensure!(
            point.is_some(),
            "{}: no resume point (resume/latest) to continue from",
            job.run_dir.display()
        );
        point
    } else {
        if job.run_dir.join(MODEL_FILE).exists() || job.run_dir.join("resume").exists() {
            bail!(
                "{} already holds a run: continue it with --resume, or choose another --out",
                job.run_dir.display()
            );
        }
        None
    };

    // The data: split, resampling, loaders; small visual inputs stay in memory after the first
    // epoch.
    let feature_dim = job.config.model.encoder.swin.num_features();
    let cache = |dataset: VideoDataset| {
        let bytes = dataset.visual_bytes_per_video(feature_dim) * dataset.len();
        if bytes <= VISUAL_CACHE_BYTES {
            dataset.with_visual_cache()
        } else {
            dataset
        }
    };
    let job = FinetuneJob {
        labeled: cache(job.labeled),
        validation: match job.validation {
            Validation::Dataset(dataset) => Validation::Dataset(cache(dataset)),
            Validation::Split => Validation::Split,
        },
        ..job
    };
    let labels = job
        .labeled
        .labels()
        .context("the training annotations have no labels")?
        .to_vec();
    ensure!(!labels.is_empty(), "no labeled videos to train on");
    let (train, validation_set) = match job.validation {
        Validation::Dataset(dataset) => ((0..labels.len()).collect(), Some(dataset)),
        Validation::Split if training.val_ratio > 0.0 => {
            let split = stratified_split(&labels, training.val_ratio, training.split_seed);
            let validation = job.labeled.select(split.validation);
            (split.train, Some(validation))
        }
        Validation::Split => ((0..labels.len()).collect(), None),
    };
    let train = if training.resample {
        resample(&train, &labels)
    } else {
        train
    };
    let plan = TrainPlan {
        dataset: job.labeled.clone(),
        train,
        batch_size: training.batch_size,
        shuffle: training.shuffle,
        seed: training.seed,
        epochs: training.epochs,
        max_steps: training.max_steps,
        checkpoint_every: training.checkpoint_every,
        pad_id: job.pad_id,
        workers: job.workers,
    };
    let validation_videos = validation_set.as_ref().map_or(0, |v| v.len());
    let validation = validation_set.map(|dataset| {
        VideoLoader::<B>::new(
            dataset,
            job.pad_id,
            training.batch_size,
            job.workers,
            device.clone(),
        )
    });

    // The run directory and its log.
    let mut files = RunFiles::open(&job.run_dir, !job.dashboard)?;
    copy_tokenizer(&job.tokenizer_dir, &job.run_dir)?;
    job.config.write(&job.run_dir)?;
    let start = match &resume_point {
        Some(point) => {
            files.truncate_steps(point.state.step)?;
            point.state.clone()
        }
        None => ResumeState::start(),
    };
    files.log(&format!(
        "{} {}: {} training videos per epoch{}, {} validation videos, {} steps per epoch, \
         {} steps in all",
        if job.resume {
            "resuming"
        } else {
            "fine-tuning"
        },
        job.run_dir.display(),
        plan.train.len(),
        if training.resample {
            " (after resampling)"
        } else {
            ""
        },
        validation_videos,
        plan.steps_per_epoch(),
        plan.total_steps(),
    ));

    // The model, optimizer and schedule.
    Autodiff::<B>::seed(device, training.seed);
    let mut classifier = job.config.model.init_classifier::<Autodiff<B>>(device);
    let mut optimizer = AdamOptimizer::<Autodiff<B>>::new(AdamSettings::from_config(&training));
    let mut ema = None;
    match &resume_point {
        Some(point) => {
            load_reference_weights(&mut classifier, &point.raw_weights)
                .with_context(|| point.raw_weights.display().to_string())?;
            if training.freeze_visual {
                classifier = freeze_visual(classifier);
            }
            if let Some(path) = &point.ema_weights {
                let mut ema_model = job.config.model.init_classifier::<B>(device);
                load_reference_weights(&mut ema_model, path)
                    .with_context(|| path.display().to_string())?;
                ema = Some(Ema::resumed(training.ema_decay, &classifier, &ema_model));
            }
            optimizer = optimizer.with_state(point.moments.clone(), point.state.step);
        }
        None => {
            classifier = initial_weights(classifier, &job.init, device, &mut files)?;
            if training.freeze_visual {
                classifier = freeze_visual(classifier);
            }
        }
    }
    let schedule = LrSchedule::new(&training, plan.total_steps()).at_step(start.step);
    let model = FinetuneModel {
        classifier,
        objective: Objective {
            label_smoothing: training.label_smoothing,
            adversarial: training.adversarial,
        },
    };
    files.log(&format!(
        "model: {} parameters; training: {}",
        model.classifier.num_params(),
        serde_json::to_string(&training)?
    ));
    let learner = Learner::new(model, optimizer.clone(), schedule);

    let report = Arc::new(Mutex::new(FitReport::default()));
    let files = Arc::new(Mutex::new(files));
    let first_train = plan.loader::<Autodiff<B>>(start.epoch, 0, device);
    let first_valid = validation.clone().unwrap_or_else(|| {
        VideoLoader::new(
            job.labeled.select(Vec::new()),
            job.pad_id,
            1,
            1,
            device.clone(),
        )
    });
    let train_videos = plan.train.len();
    let strategy = FinetuneStrategy::<Autodiff<B>> {
        plan,
        validation,
        ema_decay: training.ema_decay,
        start,
        ema: Mutex::new(ema),
        optimizer,
        files: files.clone(),
        report: report.clone(),
        device: device.clone(),
    };
    let mut supervised =
        SupervisedTraining::new(&job.run_dir, Arc::new(first_train), Arc::new(first_valid))
            .with_application_logger(None)
            .with_metric_logger(InMemoryMetricLogger::new())
            .with_training_strategy(TrainingStrategy::Custom(Arc::new(strategy)))
            .num_epochs(training.epochs)
            .metric_train_numeric(LossMetric::new())
            .metric_train_numeric(AccuracyMetric::new())
            .metric_train_numeric(LearningRateMetric::new())
            .metric_train_numeric(VideosPerSecond::default())
            .metric_valid_numeric(LossMetric::new())
            .metric_valid_numeric(AccuracyMetric::new());
    for score in WbdcScore::ALL {
        supervised = supervised.metric_valid_numeric(WbdcMetric::new(score));
    }
    if !job.dashboard {
        supervised = supervised.renderer(PlainRenderer::new(training.log_every));
    }
    supervised.launch(learner);

    let report = report.lock().expect("report").clone();
    let mut files = files.lock().expect("run files");
    files.set_echo(true);
    if let Some(error) = &report.error {
        files.log(&format!("error: {error}"));
        bail!("{error}");
    }
    Ok(FinetuneSummary {
        report,
        train_videos,
        validation_videos,
    })
}

/// The classifier with its visual backbone fixed: no gradients, so no backward pass through
/// it and no optimizer state.
fn freeze_visual<B: burn::tensor::backend::AutodiffBackend>(
    mut classifier: VideoClassifier<B>,
) -> VideoClassifier<B> {
    classifier.encoder.visual_backbone = classifier.encoder.visual_backbone.no_grad();
    classifier
}

/// Loads the initial weights into a freshly initialised classifier.
fn initial_weights<B: Backend>(
    mut classifier: VideoClassifier<B>,
    init: &InitialWeights,
    device: &B::Device,
    files: &mut RunFiles,
) -> Result<VideoClassifier<B>> {
    if let Some(dir) = &init.bert_dir
        && ["model.safetensors", "pytorch_model.bin"]
            .iter()
            .any(|name| dir.join(name).is_file())
    {
        load_hf_bert(&mut classifier, dir).with_context(|| dir.display().to_string())?;
        files.log(&format!("text encoder initialised from {}", dir.display()));
    }
    if let Some(path) = &init.swin_weights {
        load_official_swin(&mut classifier, path).with_context(|| path.display().to_string())?;
        files.log(&format!(
            "visual backbone initialised from {}",
            path.display()
        ));
    }
    let Some(path) = &init.checkpoint else {
        return Ok(classifier);
    };
    if path.is_dir() {
        let loaded = load_run::<B>(path, None, RunWeights::Model, device)?;
        let mut model = loaded.model;
        // The run's configuration must be the one being trained.
        ensure!(
            model.num_params() == classifier.num_params(),
            "{}: its model differs from the configured one",
            path.display()
        );
        std::mem::swap(&mut model, &mut classifier);
        files.log(&format!("initialised from the run {}", path.display()));
        return Ok(classifier);
    }
    let result = load_reference_weights_partial(&mut classifier, path)
        .with_context(|| path.display().to_string())?;
    let classifier_missing = result
        .missing
        .iter()
        .all(|(name, _)| name.starts_with("classifier."));
    ensure!(
        classifier_missing,
        "{}: weights missing for {:?}",
        path.display(),
        result
            .missing
            .iter()
            .map(|(name, _)| name)
            .filter(|name| !name.starts_with("classifier."))
            .take(5)
            .collect::<Vec<_>>()
    );
    files.log(&format!(
        "initialised from {}{}",
        path.display(),
        if result.missing.is_empty() {
            ""
        } else {
            " (its encoder and video_dense; the classifier starts fresh)"
        }
    ));
    Ok(classifier)
}
