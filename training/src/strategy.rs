//! The training loop of fine-tuning and pre-training, as burn-train's custom learning
//! strategy: per step the learner's schedule, train step (with the adversarial passes) and
//! optimizer step, then the EMA update; per epoch a validation of the EMA weights over the
//! whole validation set, the run directory's files and the best model (highest mean F1 when
//! classifying, else lowest validation loss); resumable checkpoints every few steps.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use burn::data::dataloader::{DataLoader, Progress};
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::train::{
    ClassificationOutput, InferenceStep, Interrupter, Learner, LearningComponentsMarker,
    SupervisedLearningStrategy, SupervisedTrainingEventProcessor, TrainLoader, TrainStep,
    TrainingComponents, ValidLoader,
};
use burn::train::{EventProcessorTraining, LearnerEvent, TrainingItem};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use vidcls_datasets::batcher::VideoBatch;
use vidcls_datasets::dataset::VideoDataset;
use vidcls_datasets::loader::VideoLoader;
use vidcls_model::kernels::MatmulPrecision;

use crate::checkpoint::{LAST_FILE, MODEL_FILE, RAW_FILE, ReferenceModel, save_weights};
use crate::data_parallel::weighted_sum;
use crate::ema::Ema;
use crate::loss_scale::ScalesLoss;
use crate::metric::{Scores, score};
use crate::optim::AdamOptimizer;
use crate::pretrain::output::{PretrainOutput, PretrainStats};
use crate::renderer::format_duration;
use crate::resume::{ResumeState, save_resume_point};
use crate::run::{EpochRecord, RunFiles};
use crate::schedule::LrSchedule;
use crate::update::train_update;

/// burn-train's components of a run training `M` on the autodiff backend `B`.
pub type RunComponents<B, M> = LearningComponentsMarker<B, LrSchedule, M, AdamOptimizer<B>>;

/// What one batch adds to an epoch's validation numbers.
pub enum ValidationBatch {
    /// A classifier's batch: its mean loss, arg-max classes and true classes.
    Classification {
        /// Mean loss of the batch.
        loss: f64,
        /// Arg-max classes.
        predictions: Vec<usize>,
        /// True classes.
        labels: Vec<usize>,
    },
    /// A pre-training batch.
    Pretrain(PretrainStats),
}

/// A step's output as the training loop reads it.
pub trait StepOutput {
    /// The loss of the step (read from the device).
    fn loss_value(&self) -> f64;
    /// What the batch adds to the validation numbers.
    fn validation_batch(&self) -> ValidationBatch;
    /// The output of a batch from the outputs of its shards, in order (see `data_parallel`),
    /// on the device of the first.
    ///
    /// # Panics
    /// If `shards` is empty.
    fn merge(shards: Vec<Self>) -> Self
    where
        Self: Sized;
}

impl<B: Backend> StepOutput for ClassificationOutput<B> {
    fn loss_value(&self) -> f64 {
        self.loss.clone().into_scalar().elem()
    }

    fn validation_batch(&self) -> ValidationBatch {
        let to_usize = |data: TensorData| -> Vec<usize> {
            data.convert::<i64>()
                .into_vec::<i64>()
                .unwrap_or_default()
                .into_iter()
                .map(|v| v as usize)
                .collect()
        };
        ValidationBatch::Classification {
            loss: self.loss_value(),
            predictions: to_usize(self.output.clone().argmax(1).into_data()),
            labels: to_usize(self.targets.clone().into_data()),
        }
    }

    fn merge(shards: Vec<Self>) -> Self {
        let videos: usize = shards.iter().map(|shard| shard.targets.dims()[0]).sum();
        let device = shards[0].loss.device();
        let share = |shard: &Self| shard.targets.dims()[0] as f64 / videos.max(1) as f64;
        ClassificationOutput::new(
            weighted_sum(
                shards
                    .iter()
                    .map(|shard| (share(shard), shard.loss.clone())),
            ),
            Tensor::cat(
                shards
                    .iter()
                    .map(|shard| shard.output.clone().to_device(&device))
                    .collect(),
                0,
            ),
            Tensor::cat(
                shards
                    .iter()
                    .map(|shard| shard.targets.clone().to_device(&device))
                    .collect(),
                0,
            ),
        )
    }
}

impl<B: Backend> StepOutput for PretrainOutput<B> {
    fn loss_value(&self) -> f64 {
        self.loss.clone().into_scalar().elem()
    }

    fn validation_batch(&self) -> ValidationBatch {
        ValidationBatch::Pretrain(self.clone().stats())
    }

    fn merge(shards: Vec<Self>) -> Self {
        let videos: usize = shards.iter().map(|shard| shard.videos).sum();
        let share = |shard: &Self| shard.videos as f64 / videos.max(1) as f64;
        let mean = |value: fn(&Self) -> &Tensor<B, 1>| {
            weighted_sum(
                shards
                    .iter()
                    .map(|shard| (share(shard), value(shard).clone())),
            )
        };
        let total = |value: fn(&Self) -> &Tensor<B, 1>| {
            weighted_sum(shards.iter().map(|shard| (1.0, value(shard).clone())))
        };
        PretrainOutput {
            loss: mean(|shard| &shard.loss),
            mlm_loss: mean(|shard| &shard.mlm_loss),
            itm_loss: mean(|shard| &shard.itm_loss),
            mlm_hits: total(|shard| &shard.mlm_hits),
            mlm_tokens: shards.iter().map(|shard| shard.mlm_tokens).sum(),
            itm_hits: total(|shard| &shard.itm_hits),
            videos,
        }
    }
}

/// The validation numbers of an epoch.
#[derive(Debug, Clone, Copy, Default)]
struct Validation {
    /// Mean loss over the batches.
    loss: f64,
    /// The competition's numbers (classifiers).
    scores: Option<Scores>,
    /// The pre-training numbers (mean losses, summed hits).
    pretrain: Option<PretrainStats>,
}

impl Validation {
    /// The numbers of an epoch's batches.
    fn of(batches: Vec<ValidationBatch>) -> Option<Self> {
        let count = batches.len();
        if count == 0 {
            return None;
        }
        let (mut loss, mut predictions, mut labels) = (0.0, Vec::new(), Vec::new());
        let mut pretrain: Option<PretrainStats> = None;
        for batch in batches {
            match batch {
                ValidationBatch::Classification {
                    loss: batch_loss,
                    predictions: p,
                    labels: l,
                } => {
                    loss += batch_loss;
                    predictions.extend(p);
                    labels.extend(l);
                }
                ValidationBatch::Pretrain(stats) => {
                    loss += stats.loss;
                    let sum = pretrain.get_or_insert_default();
                    sum.loss += stats.loss;
                    sum.mlm_loss += stats.mlm_loss;
                    sum.itm_loss += stats.itm_loss;
                    sum.mlm_hits += stats.mlm_hits;
                    sum.mlm_tokens += stats.mlm_tokens;
                    sum.itm_hits += stats.itm_hits;
                    sum.videos += stats.videos;
                }
            }
        }
        let mean = |sum: f64| sum / count as f64;
        Some(Validation {
            loss: mean(loss),
            scores: (!labels.is_empty()).then(|| score(&labels, &predictions)),
            pretrain: pretrain.map(|sum| PretrainStats {
                loss: mean(sum.loss),
                mlm_loss: mean(sum.mlm_loss),
                itm_loss: mean(sum.itm_loss),
                ..sum
            }),
        })
    }
}

/// The order of the training videos and the length of the run.
#[derive(Clone)]
pub struct TrainPlan {
    /// All labeled videos.
    pub dataset: VideoDataset,
    /// The training videos as indices of `dataset`, repeats included (resampling).
    pub train: Vec<usize>,
    /// Videos per step.
    pub batch_size: usize,
    /// Shuffle every epoch.
    pub shuffle: bool,
    /// Seed of the order and of the dropout masks.
    pub seed: u64,
    /// Planned epochs.
    pub epochs: usize,
    /// Stop after this many steps.
    pub max_steps: Option<usize>,
    /// Optimizer steps between resumable checkpoints (0 = epoch ends only).
    pub checkpoint_every: usize,
    /// `[PAD]` id of the tokenizer.
    pub pad_id: u32,
    /// Preprocessing threads.
    pub workers: usize,
}

impl TrainPlan {
    /// Steps of a full epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.train.len().div_ceil(self.batch_size)
    }

    /// Steps of the whole run (the schedule's `T`).
    pub fn total_steps(&self) -> usize {
        let planned = self.steps_per_epoch() * self.epochs;
        self.max_steps.map_or(planned, |max| max.min(planned))
    }

    /// The training videos of `epoch` (1-based) in their order: shuffled with a generator
    /// seeded by the seed and the epoch, so the order of an epoch needs no saved state.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order = self.train.clone();
        if self.shuffle {
            let mut rng = StdRng::seed_from_u64(
                self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            order.shuffle(&mut rng);
        }
        order
    }

    /// The loader of `epoch`, from its `skip`-th video on.
    pub fn loader<B: Backend>(
        &self,
        epoch: usize,
        skip: usize,
        device: &B::Device,
    ) -> VideoLoader<B> {
        let order: Vec<usize> = self.epoch_order(epoch).into_iter().skip(skip).collect();
        VideoLoader::new(
            self.dataset.select(order),
            self.pad_id,
            self.batch_size,
            self.workers,
            device.clone(),
        )
    }
}

/// The result of a fit, left for the caller.
#[derive(Debug, Clone, Default)]
pub struct FitReport {
    /// Finished epochs.
    pub history: Vec<EpochRecord>,
    /// Optimizer steps done.
    pub steps: usize,
    /// The best validation mean F1 (classifiers).
    pub best_mean_f1: Option<f64>,
    /// The lowest validation loss (pre-training).
    pub best_valid_loss: Option<f64>,
    /// Whether the run stopped early (interrupted).
    pub interrupted: bool,
    /// An error that ended the run.
    pub error: Option<String>,
}

/// The training strategy (see the module documentation) of model `M`.
pub struct TrainStrategy<B: AutodiffBackend, M: AutodiffModule<B>> {
    /// The training data and run length.
    pub plan: TrainPlan,
    /// The validation videos (EMA weights), if any.
    pub validation: Option<VideoLoader<B::InnerBackend>>,
    /// EMA decay (0 = no EMA).
    pub ema_decay: f64,
    /// Where the run resumes.
    pub start: ResumeState,
    /// The EMA to continue from (resume), else it starts as a copy of the weights.
    pub ema: Mutex<Option<Ema<B::InnerBackend>>>,
    /// A clone of the learner's optimizer (clones share their state), for resume points.
    pub optimizer: AdamOptimizer<B>,
    /// The run directory's files.
    pub files: Arc<Mutex<RunFiles>>,
    /// The report of the fit.
    pub report: Arc<Mutex<FitReport>>,
    /// The devices: the first holds the model, the optimizer, the EMA and validation; with
    /// more, each step's batch is shared out among them (see `data_parallel`).
    pub devices: Vec<B::Device>,
    /// The precision of the forward passes' products (per thread: the fit runs in it wherever
    /// burn-train calls it from).
    pub precision: MatmulPrecision,
    /// The trained model's type.
    pub model: std::marker::PhantomData<M>,
}

/// The state of a fit in progress.
struct Fit<B: AutodiffBackend, M>
where
    M: TrainStep + AutodiffModule<B> + core::fmt::Display + 'static,
    M::InnerModule: InferenceStep,
{
    learner: Learner<RunComponents<B, M>>,
    ema: Option<Ema<B::InnerBackend>>,
    state: ResumeState,
    epoch_started: Instant,
}

impl<B, M> TrainStrategy<B, M>
where
    B: AutodiffBackend,
    M: TrainStep<Input = VideoBatch<B>>
        + AutodiffModule<B>
        + ScalesLoss
        + core::fmt::Display
        + 'static,
    <M as TrainStep>::Output: StepOutput,
    M::InnerModule: InferenceStep<Input = VideoBatch<B::InnerBackend>> + ReferenceModel,
    <M::InnerModule as InferenceStep>::Output: StepOutput,
{
    fn log(&self, message: &str) {
        self.files.lock().expect("run files").log(message);
    }

    /// Saves the resume point of `fit`.
    fn checkpoint(&self, fit: &Fit<B, M>) -> Result<()> {
        let raw = fit.learner.model().valid();
        let ema = fit.ema.as_ref().map(|ema| ema.apply(raw.clone()));
        let dir = self.files.lock().expect("run files").dir().to_path_buf();
        save_resume_point(&dir, &fit.state, &raw, ema.as_ref(), &self.optimizer)
    }

    /// Validates the EMA weights, or `None` without validation.
    fn validate(
        &self,
        model: &M::InnerModule,
        epoch: usize,
        epochs: usize,
        processor: &mut SupervisedTrainingEventProcessor<RunComponents<B, M>>,
    ) -> Option<Validation> {
        let loader = self.validation.as_ref()?;
        if loader.num_items() == 0 {
            return None;
        }
        // Random choices of a validation pass (pre-training's masks) are the same every epoch.
        // (The autodiff backend seeds its inner backend's generator.)
        B::seed(&self.devices[0], self.plan.seed);
        let mut iterator = loader.iter();
        let mut batches = Vec::new();
        let mut iteration = 0;
        while let Some(batch) = iterator.next() {
            iteration += 1;
            let output = model.step(batch);
            batches.push(output.validation_batch());
            let item = TrainingItem {
                item: output,
                progress: iterator.progress(),
                global_progress: Progress::new(epoch, epochs),
                iteration: Some(iteration),
                lr: None,
            };
            processor.process_valid(LearnerEvent::ProcessedItem(item));
        }
        processor.process_valid(LearnerEvent::EndEpoch(epoch));
        Validation::of(batches)
    }

    /// Closes an epoch: validation, the epoch's record and files, the best model, the resume
    /// point.
    fn end_epoch(
        &self,
        fit: &mut Fit<B, M>,
        processor: &mut SupervisedTrainingEventProcessor<RunComponents<B, M>>,
    ) -> Result<()> {
        let epoch = fit.state.epoch;
        processor.process_train(LearnerEvent::EndEpoch(epoch));
        let raw = fit.learner.model().valid();
        let evaluated = match &fit.ema {
            Some(ema) => ema.apply(raw.clone()),
            None => raw.clone(),
        };
        let validation = self.validate(&evaluated, epoch, self.plan.epochs, processor);
        let record = EpochRecord {
            epoch,
            steps: fit.state.step,
            train_loss: fit.state.epoch_loss_sum / fit.state.batches_done.max(1) as f64,
            valid_loss: validation.map(|v| v.loss),
            scores: validation.and_then(|v| v.scores),
            pretrain: validation.and_then(|v| v.pretrain),
            seconds: fit.epoch_started.elapsed().as_secs_f64(),
        };
        self.log(&epoch_summary(&record));
        let dir = self.files.lock().expect("run files").dir().to_path_buf();
        save_weights(&dir.join(LAST_FILE), &evaluated)?;
        save_weights(&dir.join(RAW_FILE), &raw)?;
        let best = match (&record.scores, record.valid_loss) {
            (Some(scores), _) => fit
                .state
                .best_mean_f1
                .is_none_or(|best| scores.mean_f1 > best)
                .then(|| {
                    fit.state.best_mean_f1 = Some(scores.mean_f1);
                    "best validation mean_f1 so far"
                }),
            (None, Some(loss)) => fit
                .state
                .best_valid_loss
                .is_none_or(|best| loss < best)
                .then(|| {
                    fit.state.best_valid_loss = Some(loss);
                    "lowest validation loss so far"
                }),
            (None, None) => Some(""),
        };
        if let Some(why) = best {
            save_weights(&dir.join(MODEL_FILE), &evaluated)?;
            if !why.is_empty() {
                self.log(&format!("epoch {epoch}: {why}, saved as {MODEL_FILE}"));
            }
        }
        fit.state.history.push(record);
        {
            let files = self.files.lock().expect("run files");
            files.write_metrics(&fit.state.history)?;
            crate::plot::draw_curves(
                &files.dir().join(crate::run::CURVES_FILE),
                &fit.state.history,
            )?;
        }
        fit.state.epoch += 1;
        fit.state.batches_done = 0;
        fit.state.epoch_loss_sum = 0.0;
        fit.epoch_started = Instant::now();
        self.checkpoint(fit)
    }
    /// The training loop; errors end it.
    fn run(
        &self,
        fit: &mut Fit<B, M>,
        interrupter: &Interrupter,
        processor: &mut SupervisedTrainingEventProcessor<RunComponents<B, M>>,
    ) -> Result<bool> {
        let plan = &self.plan;
        let total = plan.total_steps();
        let mut reported = HashSet::new();
        let steps_per_epoch = plan.steps_per_epoch();
        while fit.state.epoch <= plan.epochs && fit.state.step < total {
            let epoch = fit.state.epoch;
            let skip = fit.state.batches_done * plan.batch_size;
            let loader = plan.loader::<B>(epoch, skip, &self.devices[0]);
            self.log(&format!(
                "epoch {epoch}/{}: {} videos in {} steps{}",
                plan.epochs,
                plan.train.len(),
                steps_per_epoch,
                if skip > 0 {
                    format!(", resuming after step {}", fit.state.step)
                } else {
                    String::new()
                }
            ));
            let mut iterator = loader.iter();
            let started = Instant::now();
            let mut waited = Duration::ZERO;
            loop {
                let asked = Instant::now();
                let Some(batch) = iterator.next() else { break };
                waited += asked.elapsed();
                for issue in &batch.issues {
                    // Once per run is enough: the same videos come back every epoch.
                    if reported.insert(issue.clone()) {
                        self.log(&format!("warning: {issue}"));
                    }
                }
                // Dropout masks depend on the seed and the step only, so a resumed run draws
                // the same ones.
                B::seed(
                    &self.devices[0],
                    plan.seed.wrapping_add(fit.state.step as u64),
                );
                let output = train_update(
                    &mut fit.learner,
                    batch,
                    &self.devices,
                    fit.state.loss_scaler.as_mut(),
                );
                if let (Some(scale), Some(scaler)) = (output.overflowed_at, &fit.state.loss_scaler)
                {
                    self.log(&format!(
                        "step {}: gradients overflowed at loss scale {scale}: optimizer step \
                         skipped, loss scale now {}",
                        fit.state.step + 1,
                        scaler.scale
                    ));
                }
                if let Some(ema) = &mut fit.ema {
                    ema.update(&fit.learner.model().valid());
                }
                fit.state.step += 1;
                fit.state.batches_done += 1;
                let loss = output.item.loss_value();
                anyhow::ensure!(
                    loss.is_finite(),
                    "the training loss became {loss} at step {}: lower --lr?",
                    fit.state.step
                );
                fit.state.epoch_loss_sum += loss;
                let lr = fit.learner.lr_current();
                self.files.lock().expect("run files").append_step(
                    fit.state.step,
                    epoch,
                    loss,
                    lr,
                )?;
                let mut progress = iterator.progress();
                progress.items_processed += skip;
                progress.items_total += skip;
                processor.process_train(LearnerEvent::ProcessedItem(TrainingItem {
                    item: output.item,
                    progress,
                    global_progress: Progress::new(epoch, plan.epochs),
                    iteration: Some(fit.state.step),
                    lr: Some(lr),
                }));
                let stop = interrupter.should_stop() || fit.state.step >= total;
                if plan.checkpoint_every > 0
                    && fit.state.step.is_multiple_of(plan.checkpoint_every)
                    && !stop
                    && fit.state.batches_done < steps_per_epoch
                {
                    self.checkpoint(fit)?;
                }
                if interrupter.should_stop() {
                    self.log(&format!(
                        "interrupted at step {}: resume with --resume",
                        fit.state.step
                    ));
                    self.checkpoint(fit)?;
                    return Ok(true);
                }
                if fit.state.step >= total {
                    break;
                }
            }
            drop(iterator);
            let elapsed = started.elapsed().as_secs_f64();
            self.log(&format!(
                "epoch {epoch}: the steps waited {:.1} s of {elapsed:.1} s for data ({:.1}%)",
                waited.as_secs_f64(),
                100.0 * waited.as_secs_f64() / elapsed.max(f64::EPSILON)
            ));
            self.end_epoch(fit, processor)?;
        }
        Ok(false)
    }
}

impl<B, M> SupervisedLearningStrategy<RunComponents<B, M>> for TrainStrategy<B, M>
where
    B: AutodiffBackend,
    M: TrainStep<Input = VideoBatch<B>>
        + AutodiffModule<B>
        + ScalesLoss
        + core::fmt::Display
        + 'static,
    <M as TrainStep>::Output: StepOutput,
    M::InnerModule: InferenceStep<Input = VideoBatch<B::InnerBackend>> + ReferenceModel,
    <M::InnerModule as InferenceStep>::Output: StepOutput,
{
    fn fit(
        &self,
        components: TrainingComponents<RunComponents<B, M>>,
        learner: Learner<RunComponents<B, M>>,
        _dataloader_train: TrainLoader<RunComponents<B, M>>,
        _dataloader_valid: ValidLoader<RunComponents<B, M>>,
        _starting_epoch: usize,
    ) -> (M, SupervisedTrainingEventProcessor<RunComponents<B, M>>) {
        let resumed_ema = self.ema.lock().expect("ema").take();
        let ema = match resumed_ema {
            Some(ema) => Some(ema),
            None => (self.ema_decay > 0.0).then(|| Ema::new(self.ema_decay, &learner.model())),
        };
        let mut fit = Fit {
            learner,
            ema,
            state: self.start.clone(),
            epoch_started: Instant::now(),
        };
        let TrainingComponents {
            event_processor: mut processor,
            interrupter,
            ..
        } = components;
        let outcome = self
            .precision
            .scope(|| self.run(&mut fit, &interrupter, &mut processor));
        let mut report = self.report.lock().expect("report");
        report.history = fit.state.history.clone();
        report.steps = fit.state.step;
        report.best_mean_f1 = fit.state.best_mean_f1;
        report.best_valid_loss = fit.state.best_valid_loss;
        match outcome {
            Ok(interrupted) => report.interrupted = interrupted,
            Err(error) => report.error = Some(format!("{error:#}")),
        }
        (fit.learner.model(), processor)
    }
}

/// One line about a finished epoch.
pub fn epoch_summary(record: &EpochRecord) -> String {
    let validation = match (&record.valid_loss, &record.scores, &record.pretrain) {
        (Some(loss), Some(scores), _) => format!(
            ", validation loss {loss:.4} mean_f1 {:.4} (lv1 acc {:.4}, lv2 acc {:.4})",
            scores.mean_f1, scores.lv1_acc, scores.lv2_acc
        ),
        (Some(loss), None, Some(stats)) => format!(
            ", validation loss {loss:.4} (mlm loss {:.4} acc {:.4}, itm loss {:.4} acc {:.4})",
            stats.mlm_loss,
            stats.mlm_accuracy(),
            stats.itm_loss,
            stats.itm_accuracy()
        ),
        _ => String::new(),
    };
    format!(
        "epoch {} done after step {} in {}: train loss {:.4}{validation}",
        record.epoch,
        record.steps,
        format_duration(record.seconds),
        record.train_loss
    )
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;

    use super::*;

    fn values<const D: usize>(tensor: Tensor<Flex, D>) -> Vec<f32> {
        tensor.into_data().convert::<f32>().into_vec().unwrap()
    }

    #[test]
    fn classification_shards_merge_into_the_batch() {
        let device = Default::default();
        let shard = |loss: f32, logits: [[f32; 2]; 2], targets: [i64; 2], videos: usize| {
            ClassificationOutput::<Flex>::new(
                Tensor::from_floats([loss], &device),
                Tensor::from_floats(logits, &device).slice(0..videos),
                Tensor::from_ints(targets, &device).slice(0..videos),
            )
        };
        // 2 + 1 videos: the batch's mean loss weights the shards' means 2/3 and 1/3.
        let merged = StepOutput::merge(vec![
            shard(0.3, [[1.0, 2.0], [3.0, 4.0]], [1, 0], 2),
            shard(0.9, [[5.0, 6.0], [0.0, 0.0]], [1, 0], 1),
        ]);
        assert!((merged.loss_value() - 0.5).abs() < 1e-6);
        assert_eq!(values(merged.output), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let targets: Vec<i64> = merged
            .targets
            .into_data()
            .convert::<i64>()
            .into_vec()
            .unwrap();
        assert_eq!(targets, [1, 0, 1]);
    }

    #[test]
    fn pretraining_shards_merge_into_the_batch() {
        let device = Default::default();
        let scalar = |value: f32| Tensor::<Flex, 1>::from_floats([value], &device);
        let shard = |loss: f32, hits: f32, tokens: usize, videos: usize| PretrainOutput {
            loss: scalar(loss),
            mlm_loss: scalar(loss / 2.0),
            itm_loss: scalar(loss / 4.0),
            mlm_hits: scalar(hits),
            mlm_tokens: tokens,
            itm_hits: scalar(hits / 2.0),
            videos,
        };
        let stats = StepOutput::merge(vec![shard(1.0, 4.0, 10, 3), shard(2.0, 6.0, 5, 1)]).stats();
        // Losses weighted by videos (3/4, 1/4), hits and counts summed.
        assert!((stats.loss - 1.25).abs() < 1e-6, "{stats:?}");
        assert!((stats.mlm_loss - 0.625).abs() < 1e-6, "{stats:?}");
        assert!((stats.itm_loss - 0.3125).abs() < 1e-6, "{stats:?}");
        assert_eq!((stats.mlm_hits, stats.mlm_tokens), (10.0, 15));
        assert_eq!((stats.itm_hits, stats.videos), (5.0, 4));
    }
}
