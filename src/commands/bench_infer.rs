//! `vidcls bench infer`: throughput of the classifier's forward pass on random inputs.

use std::time::Instant;

use anyhow::{Result, ensure};
use burn::prelude::*;
use burn::tensor::Distribution;
use clap::Args;
use serde::Serialize;
use vidcls_datasets::tokenizer::SEED_LEN;
use vidcls_model::bert::additive_attention_mask;
use vidcls_model::{VideoClassifier, VideoModelConfig, VisualInput};

use vidcls_training::config::Preset;

use super::flags;
use super::preset::PresetArg;
use crate::device::{BackendTask, DeviceKind, Workload, effective_precision, run_with_precision};
use vidcls_model::kernels::MatmulPrecision;

/// The vocabulary of the benchmarked models: the reference BERT's.
pub(super) const REFERENCE_VOCAB: usize = 21128;
use crate::flops::classifier_flops;

/// What `bench infer` and `bench train` measure on: model size, inputs, repetitions.
#[derive(Args, Debug)]
pub struct ModelBenchArgs {
    /// Model sizes (and, for `bench train`, the preset's training settings).
    #[arg(long, value_enum, default_value_t = PresetArg::Seed)]
    pub preset: PresetArg,
    /// Videos per batch.
    #[arg(long, default_value_t = 2, value_parser = flags::positive)]
    pub batch_size: usize,
    /// Frame slots per video (all real frames).
    #[arg(long = "num-frames", visible_alias = "frames", default_value_t = 8, value_parser = flags::positive)]
    pub frames: usize,
    /// Text ids per video (all real tokens).
    #[arg(long, default_value_t = SEED_LEN, value_parser = flags::positive)]
    pub text_len: usize,
    /// Timed repetitions, after one untimed warm-up.
    #[arg(long, default_value_t = 3, value_parser = flags::positive)]
    pub iterations: usize,
    /// Device to run on.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl ModelBenchArgs {
    /// The preset's model, after checking the sizes.
    pub(super) fn model(&self) -> Result<VideoModelConfig> {
        ensure!(
            self.batch_size > 0 && self.frames > 0 && self.text_len > 0 && self.iterations > 0,
            "--batch-size, --frames, --text-len and --iterations must be positive"
        );
        let config = Preset::from(self.preset).model(REFERENCE_VOCAB);
        let max_text = config.encoder.two_stream.bert.max_position_embeddings;
        ensure!(
            self.text_len <= max_text,
            "--text-len {} exceeds the model's {max_text} positions",
            self.text_len
        );
        Ok(config)
    }

    /// (batch, frames, text ids) of the inputs.
    pub(super) fn shape(&self) -> (usize, usize, usize) {
        (self.batch_size, self.frames, self.text_len)
    }
}

/// Arguments of `vidcls bench infer`.
#[derive(Args, Debug)]
pub struct InferBenchArgs {
    #[command(flatten)]
    pub model: ModelBenchArgs,
    /// Also time the parts of the model (backbone, text layers, cross layers) separately.
    #[arg(long)]
    pub breakdown: bool,
    /// Precision of the matrix products (see `vidcls predict --precision`).
    #[arg(long, value_enum, default_value_t = MatmulPrecision::F32)]
    pub precision: MatmulPrecision,
}

/// What `bench infer` measured.
#[derive(Serialize)]
struct InferReport {
    preset: String,
    device: String,
    /// The precision of the products as run (`bf16` is `f32` on CPUs without AVX512-BF16).
    precision: &'static str,
    batch_size: usize,
    frames: usize,
    text_len: usize,
    iterations: usize,
    seconds_per_batch: f64,
    videos_per_s: f64,
    gflop_per_video: f64,
    gflops_per_s: f64,
    threads: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    breakdown: Vec<PartTime>,
}

/// Seconds per batch spent in one part of the model.
#[derive(Serialize)]
struct PartTime {
    part: &'static str,
    seconds_per_batch: f64,
    gflops_per_s: f64,
}

/// Random inputs of one batch.
pub(super) struct Inputs<B: Backend> {
    pub(super) input_ids: Tensor<B, 2, Int>,
    pub(super) text_mask: Tensor<B, 2>,
    pub(super) frames: Tensor<B, 5>,
    pub(super) frame_mask: Tensor<B, 2>,
}

impl<B: Backend> Inputs<B> {
    /// `batch` videos of `frames` random frames and `text_len` random ids.
    pub(super) fn random(
        config: &VideoModelConfig,
        (batch, frames, text_len): (usize, usize, usize),
        device: &B::Device,
    ) -> Self {
        let size = config.encoder.swin.img_size;
        let vocab = config.encoder.two_stream.bert.vocab_size as f64;
        Inputs {
            input_ids: Tensor::<B, 2>::random(
                [batch, text_len],
                Distribution::Uniform(0.0, vocab),
                device,
            )
            .int()
            .clamp(0, vocab as i64 - 1),
            text_mask: Tensor::ones([batch, text_len], device),
            frames: Tensor::random(
                [batch, frames, 3, size, size],
                Distribution::Normal(0.0, 1.0),
                device,
            ),
            frame_mask: Tensor::ones([batch, frames], device),
        }
    }
}

/// Times forward passes of a randomly initialized model.
struct InferBench<'a> {
    args: &'a InferBenchArgs,
    config: VideoModelConfig,
}

/// Runs `f` once untimed and `iterations` times timed; returns the mean seconds per run.
pub(super) fn time<T, B: Backend>(
    iterations: usize,
    device: &B::Device,
    mut f: impl FnMut() -> T,
) -> f64 {
    drop(f());
    let _ = B::sync(device);
    let start = Instant::now();
    for _ in 0..iterations {
        drop(f());
        let _ = B::sync(device);
    }
    start.elapsed().as_secs_f64() / iterations as f64
}

impl BackendTask for InferBench<'_> {
    type Output = (f64, Vec<PartTime>);

    fn run<B: Backend>(self, device: B::Device) -> Result<Self::Output> {
        let model: VideoClassifier<B> = self.config.init_classifier(&device);
        let inputs = Inputs::<B>::random(&self.config, self.args.model.shape(), &device);
        let iterations = self.args.model.iterations;
        let forward = || {
            model
                .forward(
                    inputs.input_ids.clone(),
                    inputs.text_mask.clone(),
                    VisualInput::Frames(inputs.frames.clone()),
                    Some(inputs.frame_mask.clone()),
                )
                .into_data()
        };
        let total = time::<_, B>(iterations, &device, forward);
        let breakdown = if self.args.breakdown {
            self.breakdown(&model, &inputs, &device)
        } else {
            Vec::new()
        };
        Ok((total, breakdown))
    }
}

impl InferBench<'_> {
    /// Times the backbone, the text layers and the cross-modality layers on their own.
    fn breakdown<B: Backend>(
        &self,
        model: &VideoClassifier<B>,
        inputs: &Inputs<B>,
        device: &B::Device,
    ) -> Vec<PartTime> {
        let encoder = &model.encoder;
        let two_stream = &encoder.two_stream;
        let iterations = self.args.model.iterations;
        let text_mask = Some(additive_attention_mask(inputs.text_mask.clone()));
        let frame_mask = Some(additive_attention_mask(inputs.frame_mask.clone()));
        let features = encoder.visual_backbone.forward(inputs.frames.clone());
        let visual = encoder.video_dense.forward(features);
        let text = two_stream.embeddings.forward(inputs.input_ids.clone());

        let backbone = time::<_, B>(iterations, device, || {
            encoder
                .visual_backbone
                .forward(inputs.frames.clone())
                .into_data()
        });
        let text_layers = time::<_, B>(iterations, device, || {
            two_stream
                .text_encoder
                .forward(text.clone(), text_mask.clone())
                .into_data()
        });
        let cross_layers = time::<_, B>(iterations, device, || {
            two_stream
                .cross_layers
                .iter()
                .fold((text.clone(), visual.clone()), |(text, visual), layer| {
                    layer.forward(text, text_mask.clone(), visual, frame_mask.clone())
                })
                .0
                .into_data()
        });

        let mut no_text = self.config.clone();
        no_text.encoder.two_stream.text_layers = 0;
        no_text.encoder.two_stream.cross_layers = 0;
        let mut text_only = no_text.clone();
        text_only.encoder.two_stream.text_layers = self.config.encoder.two_stream.text_layers;
        let mut cross_only = no_text.clone();
        cross_only.encoder.two_stream.cross_layers = self.config.encoder.two_stream.cross_layers;
        let args = &self.args.model;
        let batch = args.batch_size as f64;
        let flops = |config: &VideoModelConfig, backbone: bool| {
            batch * classifier_flops(config, args.frames, args.text_len, backbone)
        };
        let base = flops(&no_text, false);
        [
            ("backbone", backbone, flops(&no_text, true) - base),
            ("text layers", text_layers, flops(&text_only, false) - base),
            (
                "cross layers",
                cross_layers,
                flops(&cross_only, false) - base,
            ),
        ]
        .into_iter()
        .map(|(part, seconds, flops)| PartTime {
            part,
            seconds_per_batch: seconds,
            gflops_per_s: flops / seconds / 1e9,
        })
        .collect()
    }
}

/// Runs `vidcls bench infer`.
pub fn run(infer_args: &InferBenchArgs) -> Result<()> {
    let args = &infer_args.model;
    let config = args.model()?;
    let gflop_per_video = classifier_flops(&config, args.frames, args.text_len, true) / 1e9;
    let (seconds, breakdown) = run_with_precision(
        args.device,
        infer_args.precision,
        Workload::Inference,
        InferBench {
            args: infer_args,
            config,
        },
    )?;
    let videos_per_s = args.batch_size as f64 / seconds;
    let report = InferReport {
        preset: format!("{:?}", args.preset).to_lowercase(),
        device: format!("{:?}", args.device).to_lowercase(),
        precision: effective_precision(infer_args.precision, args.device).name(),
        batch_size: args.batch_size,
        frames: args.frames,
        text_len: args.text_len,
        iterations: args.iterations,
        seconds_per_batch: seconds,
        videos_per_s,
        gflop_per_video,
        gflops_per_s: videos_per_s * gflop_per_video,
        threads: rayon::current_num_threads(),
        breakdown,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} model, batch {}, {} frames, {} ids, {}, {}: {:.3} s/batch, {:.3} videos/s, {:.1} GFLOP/s ({:.1} GFLOP/video)",
            report.preset,
            report.batch_size,
            report.frames,
            report.text_len,
            report.device,
            report.precision,
            report.seconds_per_batch,
            report.videos_per_s,
            report.gflops_per_s,
            report.gflop_per_video
        );
        for part in &report.breakdown {
            println!(
                "  {:<12} {:.3} s/batch, {:.1} GFLOP/s",
                part.part, part.seconds_per_batch, part.gflops_per_s
            );
        }
    }
    Ok(())
}
