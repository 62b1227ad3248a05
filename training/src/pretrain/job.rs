//! A whole pre-training run: the held-out validation videos, the initial weights, the MLM +
//! ITM model on burn-train's Learner with its metrics and dashboard, and the run directory (as
//! for fine-tuning; its `model.safetensors` is the pre-training model of the lowest validation
//! loss, with the reference's names).

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use burn::backend::Autodiff;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::{LearningRateMetric, LossMetric};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use vidcls_datasets::dataset::VideoDataset;
use vidcls_datasets::tokenizer::SpecialTokens;
use vidcls_model::VideoPretrainModel;
use vidcls_model::loader::load_reference_weights;

use super::masking::MlmMasking;
use super::output::{PretrainMetric, PretrainScore};
use super::step::{PretrainModel, PretrainObjective};
use crate::checkpoint::{MODEL_FILE, RunConfig};
use crate::launch::{
    InitialWeights, Launch, RunSummary, cache_visual, launch, load_shared_weights, main_device,
    open_run, resume_point,
};
use crate::metrics::VideosPerSecond;
use crate::optim::{AdamOptimizer, AdamSettings};
use crate::run::RunFiles;
use crate::schedule::LrSchedule;
use crate::strategy::TrainPlan;

/// Everything a pre-training run needs.
pub struct PretrainJob {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The model, training and pre-training configuration.
    pub config: RunConfig,
    /// The videos (frames already at the configuration's size); labels are not used.
    pub videos: VideoDataset,
    /// The BERT directory whose tokenizer the data uses (copied into the run directory).
    pub tokenizer_dir: PathBuf,
    /// The special tokens of that tokenizer.
    pub special: SpecialTokens,
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

/// The training and validation videos: `validation` of them, drawn with `seed`, are held out.
pub fn split_videos(videos: usize, validation: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..videos).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut held_out = order.split_off(videos - validation.min(videos));
    held_out.sort_unstable();
    order.sort_unstable();
    (order, held_out)
}

/// Runs a pre-training job on the devices `devices` of backend `B` (see [`launch`]).
pub fn pretrain<B: Backend>(job: PretrainJob, devices: &[B::Device]) -> Result<RunSummary> {
    let device = main_device(devices)?;
    let training = job
        .config
        .training
        .clone()
        .context("the run configuration has no training part")?;
    let pretraining = job
        .config
        .pretraining
        .clone()
        .context("the run configuration has no pre-training part")?;
    training
        .validate()
        .and_then(|()| pretraining.validate())
        .map_err(|message| anyhow::anyhow!("invalid training configuration: {message}"))?;
    let resume_point = resume_point::<B>(&job.run_dir, job.resume, device)?;

    let videos = cache_visual(job.videos);
    ensure!(!videos.is_empty(), "no videos to pre-train on");
    let (train, held_out) = split_videos(
        videos.len(),
        pretraining.validation_videos(videos.len()),
        training.split_seed,
    );
    let validation = (!held_out.is_empty()).then(|| videos.select(held_out));
    let validation_videos = validation.as_ref().map_or(0, |v| v.len());
    let plan = TrainPlan {
        dataset: videos,
        train,
        batch_size: training.batch_size,
        shuffle: training.shuffle,
        seed: training.seed,
        epochs: training.epochs,
        max_steps: training.max_steps,
        checkpoint_every: training.checkpoint_every,
        pad_id: job.special.pad,
        workers: job.workers,
    };

    let (mut files, start) = open_run(
        &job.run_dir,
        &job.config,
        &job.tokenizer_dir,
        resume_point.as_ref(),
        job.dashboard,
    )?;
    files.log(&format!(
        "{} {}: {} training videos, {} validation videos, {} steps per epoch, {} steps in all",
        if job.resume {
            "resuming"
        } else {
            "pre-training"
        },
        job.run_dir.display(),
        plan.train.len(),
        validation_videos,
        plan.steps_per_epoch(),
        plan.total_steps(),
    ));

    Autodiff::<B>::seed(device, training.seed);
    let mut model = job.config.model.init_pretrain::<Autodiff<B>>(device);
    let mut optimizer = AdamOptimizer::<Autodiff<B>>::new(AdamSettings::from_config(&training));
    match &resume_point {
        Some(point) => {
            load_reference_weights(&mut model, &point.raw_weights)
                .with_context(|| point.raw_weights.display().to_string())?;
            optimizer = optimizer.with_state(point.moments.clone(), point.state.step);
        }
        None => model = initial_weights(model, &job.init, &mut files)?,
    }
    let model = PretrainModel::new(
        freeze_visual(model),
        PretrainObjective {
            masking: MlmMasking {
                probability: pretraining.mask_prob,
                special: job.special,
                vocab_size: job.config.model.encoder.two_stream.bert.vocab_size,
            },
            itm_weight: pretraining.itm_weight,
        },
    );
    let schedule = LrSchedule::new(&training, plan.total_steps()).at_step(start.step);
    files.log(&format!(
        "model: {} parameters; training: {}; pre-training: {}",
        model.model.num_params(),
        serde_json::to_string(&training)?,
        serde_json::to_string(&pretraining)?
    ));
    let train_videos = plan.train.len();
    let run = Launch {
        model,
        optimizer,
        schedule,
        plan,
        validation,
        ema_decay: 0.0,
        ema: None,
        start,
        files,
        loss_scale: job.loss_scale,
        dashboard: job.dashboard,
        log_every: training.log_every,
    };
    let report = launch(run, devices, |mut supervised| {
        supervised = supervised
            .metric_train_numeric(LossMetric::new())
            .metric_valid_numeric(LossMetric::new());
        for score in PretrainScore::ALL {
            supervised = supervised
                .metric_train_numeric(PretrainMetric::new(score))
                .metric_valid_numeric(PretrainMetric::new(score));
        }
        supervised
            .metric_train_numeric(LearningRateMetric::new())
            .metric_train_numeric(VideosPerSecond::default())
    })?;
    Ok(RunSummary {
        report,
        train_videos,
        validation_videos,
    })
}

/// The model with its visual backbone frozen: no gradients and no optimizer state (the
/// training step runs it outside the autodiff graph, so it has no backward pass either).
fn freeze_visual<B: AutodiffBackend>(mut model: VideoPretrainModel<B>) -> VideoPretrainModel<B> {
    model.encoder.visual_backbone = model.encoder.visual_backbone.no_grad();
    model
}

/// The heads of the pre-training model, which a checkpoint of a classifier does not have.
const PRETRAINING_HEADS: [&str; 3] = ["mlm_head.", "itm_head.", "nsp_head."];

/// Loads the initial weights into a freshly initialised pre-training model: BERT, Swin, then
/// the checkpoint (a run directory's `model.safetensors` or a reference checkpoint, of a
/// classifier or a pre-training model: what the two models share).
fn initial_weights<B: Backend>(
    mut model: VideoPretrainModel<B>,
    init: &InitialWeights,
    files: &mut RunFiles,
) -> Result<VideoPretrainModel<B>> {
    init.load_backbones(&mut model, files)?;
    let Some(path) = &init.checkpoint else {
        return Ok(model);
    };
    let file = if path.is_dir() {
        path.join(MODEL_FILE)
    } else {
        path.clone()
    };
    load_shared_weights(
        &mut model,
        &file,
        &PRETRAINING_HEADS,
        "its encoder; the pre-training heads start fresh",
        files,
    )?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_videos_are_drawn_once_and_apart() {
        let (train, validation) = split_videos(100, 10, 7);
        assert_eq!((train.len(), validation.len()), (90, 10));
        let mut all: Vec<usize> = train.iter().chain(&validation).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_ne!(
            validation,
            (90..100).collect::<Vec<_>>(),
            "not a random draw"
        );
        assert_eq!(split_videos(100, 10, 7), (train, validation));
        assert_eq!(split_videos(5, 0, 7).1, Vec::<usize>::new());
    }
}
