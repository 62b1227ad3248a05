//! A whole fine-tuning run: the split and resampling of the labeled videos, the initial
//! weights, burn-train's Learner with its metrics and dashboard, and the run directory.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use burn::backend::Autodiff;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::prelude::*;
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric};
use vidcls_datasets::dataset::VideoDataset;
use vidcls_datasets::split::{resample, stratified_split};
use vidcls_model::VideoClassifier;
use vidcls_model::loader::load_reference_weights;

use crate::checkpoint::{MODEL_FILE, RunConfig, RunWeights, load_run};
use crate::ema::Ema;
use crate::launch::{
    InitialWeights, Launch, RunSummary, cache_visual, launch, load_shared_weights, main_device,
    open_run, resume_point,
};
use crate::metrics::{VideosPerSecond, WbdcMetric, WbdcScore};
use crate::optim::{AdamOptimizer, AdamSettings};
use crate::run::RunFiles;
use crate::schedule::LrSchedule;
use crate::step::{FinetuneModel, Objective};
use crate::strategy::TrainPlan;

/// Where the validation videos come from.
pub enum Validation {
    /// A stratified share of the labeled videos (the configuration's `val_ratio`; 0 = none).
    Split,
    /// Another labeled annotation file.
    Dataset(VideoDataset),
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
    /// The initial scale of dynamic loss scaling (see `loss_scale`), if the losses are scaled.
    pub loss_scale: Option<f32>,
}

/// Runs a fine-tuning job on the devices `devices` of backend `B` (see [`launch`]).
pub fn finetune<B: Backend>(job: FinetuneJob, devices: &[B::Device]) -> Result<RunSummary> {
    let device = main_device(devices)?;
    let training = job
        .config
        .training
        .clone()
        .context("the run configuration has no training part")?;
    training
        .validate()
        .map_err(|message| anyhow::anyhow!("invalid training configuration: {message}"))?;
    let resume_point = resume_point::<B>(&job.run_dir, job.resume, device)?;

    // The data: split, resampling; small visual inputs stay in memory after the first epoch.
    let labeled = cache_visual(job.labeled);
    let labels = labeled
        .labels()
        .context("the training annotations have no labels")?
        .to_vec();
    ensure!(!labels.is_empty(), "no labeled videos to train on");
    let (train, validation) = match job.validation {
        Validation::Dataset(dataset) => ((0..labels.len()).collect(), Some(cache_visual(dataset))),
        Validation::Split if training.val_ratio > 0.0 => {
            let split = stratified_split(&labels, training.val_ratio, training.split_seed);
            let validation = labeled.select(split.validation);
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
        dataset: labeled,
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
    let validation_videos = validation.as_ref().map_or(0, |v| v.len());

    let (mut files, start) = open_run(
        &job.run_dir,
        &job.config,
        &job.tokenizer_dir,
        resume_point.as_ref(),
        job.dashboard,
    )?;
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
    let objective = Objective {
        label_smoothing: training.label_smoothing,
        adversarial: training.adversarial,
    };
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
                let trained = FinetuneModel::new(classifier.clone(), objective);
                let saved = FinetuneModel::new(ema_model, objective);
                ema = Some(Ema::resumed(training.ema_decay, &trained, &saved));
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
    let model = FinetuneModel::new(classifier, objective);
    files.log(&format!(
        "model: {} parameters; training: {}",
        model.classifier.num_params(),
        serde_json::to_string(&training)?
    ));
    let train_videos = plan.train.len();
    let run = Launch {
        model,
        optimizer,
        schedule,
        plan,
        validation,
        ema_decay: training.ema_decay,
        ema,
        start,
        files,
        loss_scale: job.loss_scale,
        dashboard: job.dashboard,
        log_every: training.log_every,
    };
    let report = launch(run, devices, |mut supervised| {
        supervised = supervised
            .metric_train_numeric(LossMetric::new())
            .metric_train_numeric(AccuracyMetric::new())
            .metric_train_numeric(LearningRateMetric::new())
            .metric_train_numeric(VideosPerSecond::default())
            .metric_valid_numeric(LossMetric::new())
            .metric_valid_numeric(AccuracyMetric::new());
        for score in WbdcScore::ALL {
            supervised = supervised.metric_valid_numeric(WbdcMetric::new(score));
        }
        supervised
    })?;
    Ok(RunSummary {
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
    init.load_backbones(&mut classifier, files)?;
    let Some(path) = &init.checkpoint else {
        return Ok(classifier);
    };
    let pretraining_run = path.is_dir() && RunConfig::read(path)?.pretraining.is_some();
    if path.is_dir() && !pretraining_run {
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
    // A reference checkpoint, or the weights of a pre-training run (reference names too).
    let path = &if pretraining_run {
        path.join(MODEL_FILE)
    } else {
        path.clone()
    };
    load_shared_weights(
        &mut classifier,
        path,
        &["classifier."],
        "its encoder and video_dense; the classifier starts fresh",
        files,
    )?;
    Ok(classifier)
}
