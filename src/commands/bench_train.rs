//! `vidcls bench train`: throughput of full fine-tuning steps (forward, loss, backward, the
//! adversarial passes, BertAdam and the EMA update; with f16 products, loss scaling as in
//! `finetune`) on random inputs.

use anyhow::Result;
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::train::Learner;
use clap::{Args, ValueEnum};
use serde::Serialize;
use vidcls_datasets::batcher::{VideoBatch, VisualBatch};
use vidcls_training::config::{Adversarial, Preset, TrainingConfig};
use vidcls_training::ema::Ema;
use vidcls_training::loss_scale::LossScaler;
use vidcls_training::optim::{AdamOptimizer, AdamSettings};
use vidcls_training::schedule::LrSchedule;
use vidcls_training::step::{FinetuneModel, Objective};
use vidcls_training::update::train_update;

use super::bench_infer::{Inputs, ModelBenchArgs, time};
use super::flags;
use crate::device::{BackendTask, Workload, run_with_precision, select_devices};
use vidcls_model::kernels::MatmulPrecision;

/// Adversarial training of the measured steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchAdversarial {
    /// FGM (the reference's): two forward/backward passes per step.
    Fgm,
    /// PGD (3 attack steps): four passes per step.
    Pgd,
    /// One pass per step.
    None,
}

/// Arguments of `vidcls bench train`.
#[derive(Args, Debug)]
pub struct TrainBenchArgs {
    #[command(flatten)]
    pub model: ModelBenchArgs,
    /// Adversarial training.
    #[arg(long, value_enum, default_value_t = BenchAdversarial::Fgm)]
    pub adversarial: BenchAdversarial,
    /// Share each step's batch out among these devices of --device (see `finetune --devices`).
    #[arg(long, value_delimiter = ',', value_name = "INDICES")]
    pub devices: Vec<usize>,
    /// Precision of the forward passes' matrix products (see `vidcls finetune --precision`).
    #[arg(long, value_enum, default_value_t = MatmulPrecision::F32)]
    pub precision: MatmulPrecision,
    /// Dynamic loss scaling's initial scale, or `off` (see `vidcls finetune --loss-scale`;
    /// default: 65536 with `--precision f16`, off otherwise).
    #[arg(long, value_name = "SCALE|off", value_parser = flags::loss_scale)]
    pub loss_scale: Option<flags::LossScale>,
}

impl TrainBenchArgs {
    /// The initial loss scale of the measured steps, if they scale their losses.
    fn initial_loss_scale(&self) -> Option<f32> {
        flags::initial_loss_scale(self.loss_scale, self.precision)
    }
}

/// What `bench train` measured.
#[derive(Serialize)]
struct TrainReport {
    preset: String,
    device: String,
    devices: usize,
    precision: &'static str,
    /// Dynamic loss scaling's initial scale (none: off).
    loss_scale: Option<f32>,
    batch_size: usize,
    frames: usize,
    text_len: usize,
    adversarial: String,
    iterations: usize,
    seconds_per_step: f64,
    videos_per_s: f64,
    threads: usize,
}

struct TrainBench<'a> {
    args: &'a TrainBenchArgs,
    training: TrainingConfig,
}

impl BackendTask for TrainBench<'_> {
    type Output = f64;

    fn run<B: Backend>(self, _device: B::Device) -> Result<f64> {
        let args = &self.args.model;
        let devices = select_devices::<B>(&self.args.devices)?;
        let device = devices[0].clone();
        let config = args.model()?;
        let inputs = Inputs::<Autodiff<B>>::random(&config, args.shape(), &device);
        let labels = Tensor::<Autodiff<B>, 1>::random(
            [args.batch_size],
            Distribution::Uniform(0.0, config.num_classes as f64),
            &device,
        )
        .int()
        .clamp(0, config.num_classes as i64 - 1);
        let batch = VideoBatch {
            visual: VisualBatch::Frames(inputs.frames),
            frame_mask: inputs.frame_mask.int(),
            input_ids: inputs.input_ids,
            attention_mask: inputs.text_mask.int(),
            labels: Some(labels),
            ids: Vec::new(),
            issues: Vec::new(),
        };
        let training = &self.training;
        let model = FinetuneModel::new(
            config.init_classifier::<Autodiff<B>>(&device),
            Objective {
                label_smoothing: training.label_smoothing,
                adversarial: training.adversarial,
            },
        );
        let mut ema = Ema::new(training.ema_decay, &model.classifier);
        // Mid-schedule, so that the learning rate is not 0.
        let schedule = LrSchedule::new(training, 100_000).at_step(50_000);
        let optimizer = AdamOptimizer::new(AdamSettings::from_config(training));
        let mut learner = Learner::new(model, optimizer, schedule);
        let mut scaler = self.args.initial_loss_scale().map(LossScaler::new);
        let seconds = time::<_, Autodiff<B>>(args.iterations, &device, || {
            let output = train_update(&mut learner, batch.clone(), &devices, scaler.as_mut());
            ema.update(&learner.model().valid().classifier);
            output.item.loss.into_data()
        });
        Ok(seconds)
    }
}

/// Runs `vidcls bench train`.
pub fn run(train_args: &TrainBenchArgs) -> Result<()> {
    let args = &train_args.model;
    let mut training = Preset::from(args.preset).training();
    training.adversarial = match train_args.adversarial {
        BenchAdversarial::Fgm => Adversarial::FGM,
        BenchAdversarial::Pgd => Adversarial::PGD,
        BenchAdversarial::None => Adversarial::None,
    };
    let seconds = run_with_precision(
        args.device,
        train_args.precision,
        Workload::Training,
        TrainBench {
            args: train_args,
            training,
        },
    )?;
    let report = TrainReport {
        preset: format!("{:?}", args.preset).to_lowercase(),
        device: format!("{:?}", args.device).to_lowercase(),
        devices: train_args.devices.len().max(1),
        precision: train_args.precision.name(),
        loss_scale: train_args.initial_loss_scale(),
        batch_size: args.batch_size,
        frames: args.frames,
        text_len: args.text_len,
        adversarial: format!("{:?}", train_args.adversarial).to_lowercase(),
        iterations: args.iterations,
        seconds_per_step: seconds,
        videos_per_s: args.batch_size as f64 / seconds,
        threads: rayon::current_num_threads(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} model, batch {}, {} frames, {} ids, {} adversarial, {} x{}, {}: {:.3} s/step, {:.3} videos/s",
            report.preset,
            report.batch_size,
            report.frames,
            report.text_len,
            report.adversarial,
            report.device,
            report.devices,
            report.precision,
            report.seconds_per_step,
            report.videos_per_s
        );
    }
    Ok(())
}
