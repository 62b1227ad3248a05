//! `vidcls pretrain`: pre-train the encoder on unlabeled videos with the reference's MLM and
//! video-text matching objectives.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail};
use burn::prelude::*;
use clap::Args;
use vidcls_datasets::dataset::VideoDataset;
use vidcls_datasets::tokenizer::TextEncoder;
use vidcls_training::checkpoint::RunConfig;
use vidcls_training::config::Preset;
use vidcls_training::data::{open_dataset, text_encoder};
use vidcls_training::launch::InitialWeights;
use vidcls_training::launch::RunSummary;
use vidcls_training::pretrain::job::{PretrainJob, pretrain};

use super::flags;
use super::train_args::{RunArgs, check_frame_size, print_summary};
use super::visual_args::VisualArgs;
use crate::device::{BackendTask, Workload, run_with_precision, select_devices};

/// Arguments of `vidcls pretrain`.
#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// A dataset in the competition's layout: pre-trains on `annotations/unlabeled.json` with
    /// `zip_frames/unlabeled` (and uses `bert/` as --bert-dir when present).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["annotations", "frames", "features"])]
    pub data: Option<PathBuf>,
    /// With --data: add the labeled split's videos (their labels are not used).
    #[arg(long, requires = "data")]
    pub with_labeled: bool,
    /// With --data: add the test split's videos.
    #[arg(long, requires = "data")]
    pub with_test: bool,
    /// Annotation file of the videos (with --frames or --features; labels are not used).
    #[arg(long, value_name = "FILE")]
    pub annotations: Option<PathBuf>,
    /// Directory of raw frame zips of the annotation file's videos.
    #[arg(long, value_name = "DIR", conflicts_with = "features")]
    pub frames: Option<PathBuf>,
    /// Zip of pre-extracted Swin features of the annotation file's videos (`vidcls
    /// extract-features`): the same training, since the backbone is frozen, without running it.
    #[arg(long, value_name = "ZIP")]
    pub features: Option<PathBuf>,
    /// Videos held out for validation (at most a tenth of them; 0 = none). Default 5000.
    #[arg(long, value_name = "N")]
    pub val_size: Option<usize>,
    /// Weight of the video-text matching loss (default 0.3).
    #[arg(long, value_parser = flags::non_negative)]
    pub itm_weight: Option<f64>,
    /// Probability that a text token is chosen for MLM (default 0.15).
    #[arg(long, value_parser = flags::open_unit)]
    pub mask_prob: Option<f64>,
    /// The run's model, weights, directory, optimizer, data layout and device.
    #[command(flatten)]
    pub run: RunArgs,
}

impl PretrainArgs {
    /// The annotation files and their visual sources.
    fn data(&self) -> Result<Vec<(PathBuf, VisualArgs)>> {
        match (&self.data, &self.annotations) {
            (Some(dir), _) => {
                let split = |name: &str| {
                    (
                        dir.join(format!("annotations/{name}.json")),
                        VisualArgs {
                            frames: Some(dir.join("zip_frames").join(name)),
                            features: None,
                        },
                    )
                };
                let mut splits = vec![split("unlabeled")];
                if self.with_labeled {
                    splits.push(split("labeled"));
                }
                if self.with_test {
                    splits.push(split("test"));
                }
                Ok(splits)
            }
            (None, Some(annotations)) => {
                if self.frames.is_none() && self.features.is_none() {
                    bail!("--annotations needs --frames DIR or --features ZIP");
                }
                Ok(vec![(
                    annotations.clone(),
                    VisualArgs {
                        frames: self.frames.clone(),
                        features: self.features.clone(),
                    },
                )])
            }
            (None, None) => {
                bail!("give --data DIR, or --annotations FILE with --frames or --features")
            }
        }
    }

    /// The run configuration of a new run.
    fn run_config(&self, bert_dir: &Path, tokenizer: &TextEncoder) -> Result<RunConfig> {
        let file = self.run.config_file()?;
        let model = self.run.model(file.as_ref(), bert_dir, tokenizer)?;
        let mut training = file
            .as_ref()
            .and_then(|file| file.training.clone())
            .unwrap_or_else(|| Preset::from(self.run.preset).pretraining());
        self.run.apply(&mut training);
        let mut pretraining = file.and_then(|file| file.pretraining).unwrap_or_default();
        if let Some(size) = self.val_size {
            pretraining.val_size = size;
        }
        if let Some(weight) = self.itm_weight {
            pretraining.itm_weight = weight;
        }
        if let Some(probability) = self.mask_prob {
            pretraining.mask_prob = probability;
        }
        let mut config = RunConfig {
            model,
            training: Some(training),
            pretraining: Some(pretraining),
        };
        config.apply_dropout_override();
        Ok(config)
    }
}

/// Runs `vidcls pretrain`.
pub fn run(args: &PretrainArgs) -> Result<()> {
    let summary = run_with_precision(
        args.run.device,
        args.run.precision,
        Workload::Training,
        Pretrain { args },
    )?;
    print_summary("pretrain", &args.run.out, &summary);
    Ok(())
}

struct Pretrain<'a> {
    args: &'a PretrainArgs,
}

impl BackendTask for Pretrain<'_> {
    type Output = RunSummary;

    fn run<B: Backend>(self, _device: B::Device) -> Result<RunSummary> {
        let args = self.args;
        let (bert_dir, config, training) = args
            .run
            .prepare(args.data.as_deref(), |bert_dir, tokenizer| {
                args.run_config(bert_dir, tokenizer)
            })?;
        if config.pretraining.is_none() {
            bail!(
                "{}: not a pre-training run (continue it with `vidcls finetune --resume`)",
                args.run.out.display()
            );
        }
        let text = text_encoder(&bert_dir, &training)?;
        let special = text.special_tokens();
        let text = Arc::new(text);
        let feature_dim = config.model.encoder.swin.num_features();
        let mut parts = Vec::new();
        for (annotations, visual) in args.data()? {
            check_frame_size(&config, &visual)?;
            let source = visual.source_with_feature_dim(feature_dim)?;
            parts.push(open_dataset(
                &annotations,
                source,
                text.clone(),
                &training,
                false,
            )?);
        }
        let job = PretrainJob {
            run_dir: args.run.out.clone(),
            config,
            videos: VideoDataset::concat(parts)?,
            tokenizer_dir: bert_dir.clone(),
            special,
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
        pretrain::<B>(job, &select_devices::<B>(&args.run.devices)?)
    }
}
