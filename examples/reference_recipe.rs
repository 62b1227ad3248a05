//! The reference's whole recipe, stage by stage, with vidcls's commands:
//! extract-features (unlabeled videos) -> pretrain -> finetune (several seeds, from the
//! pre-trained encoder) -> average -> predict -> evaluate.
//!
//! ```sh
//! cargo run --release --example reference_recipe -- --data wbdc2022 \
//!     --bert-dir chinese-roberta-wwm-ext --swin-weights swin_tiny_patch4_window7_224.pth \
//!     --output recipe [--device cuda]
//! cargo run --release --example reference_recipe -- --data synth --output recipe --quick
//! ```
//!
//! Every stage writes into `--out` and leaves a marker in `--out/stages/` when it is done; run
//! the recipe again after an interruption and the finished stages are skipped, an interrupted
//! training stage resumes from its last checkpoint. `--quick` runs the same stages on small
//! data with the tiny preset on 32 px frames (no feature extraction: that is for the reference's
//! Swin-T on 224 px frames), in a few minutes on a CPU.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;

/// The reference's recipe end to end.
#[derive(Parser, Debug)]
struct Args {
    /// A dataset in the competition's layout (`annotations/{unlabeled,labeled,test}.json`,
    /// `zip_frames/<split>/`; `test_ground_truth.csv` to score the predictions).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// HuggingFace BERT directory (`hfl/chinese-roberta-wwm-ext`); default: `DATA/bert`.
    #[arg(long, value_name = "DIR")]
    bert_dir: Option<PathBuf>,
    /// Official Swin-T checkpoint (`swin_tiny_patch4_window7_224.pth`): the backbone, and the
    /// features that pre-training runs on.
    #[arg(long, value_name = "FILE")]
    swin_weights: Option<PathBuf>,
    /// Where every stage writes.
    #[arg(long = "output", visible_alias = "out", value_name = "DIR")]
    out: PathBuf,
    /// Device of the training and prediction stages (`cpu` or `cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Fine-tuning runs (seeds 2022, 2023, ...) whose weights are averaged.
    #[arg(long, default_value_t = 2)]
    runs: usize,
    /// Small-data mode: the tiny preset, one short pre-training and fine-tuning epoch each.
    #[arg(long)]
    quick: bool,
}

impl Args {
    fn bert_dir(&self) -> PathBuf {
        self.bert_dir
            .clone()
            .unwrap_or_else(|| self.data.join("bert"))
    }

    /// The flags every training stage gets: preset, tokenizer, device, and in quick mode the
    /// short schedule.
    fn training_flags(&self, epochs: &str) -> Vec<String> {
        let mut flags = vec![
            "--bert-dir".to_string(),
            self.bert_dir().display().to_string(),
            "--device".into(),
            self.device.clone(),
        ];
        if self.quick {
            flags.extend(
                ["--preset", "tiny", "--epochs", epochs, "--max-frames", "4"].map(String::from),
            );
            flags.extend(["--max-text-len", "64"].map(String::from));
        } else if let Some(swin) = &self.swin_weights {
            flags.extend(["--swin-weights".to_string(), swin.display().to_string()]);
        }
        flags
    }
}

/// Runs `stage` unless its marker says it is done, then leaves the marker.
fn stage(out: &Path, name: &str, run: impl FnOnce() -> Result<()>) -> Result<()> {
    let marker = out.join("stages").join(format!("{name}.done"));
    if marker.is_file() {
        log::info!("stage {name}: done already, skipped");
        return Ok(());
    }
    log::info!("stage {name}");
    run().with_context(|| format!("stage {name}"))?;
    std::fs::create_dir_all(marker.parent().unwrap_or(out))?;
    std::fs::write(&marker, "")?;
    Ok(())
}

/// `vidcls ARGS` in-process.
fn vidcls(args: Vec<String>) -> Result<()> {
    log::info!("vidcls {}", args.join(" "));
    vidcls::run(args)
}

/// The flag that resumes a training run `dir` left unfinished (a resume point without a
/// finished stage), else none.
fn resume_flag(dir: &Path) -> Vec<String> {
    if dir.join("resume/latest").is_file() {
        vec!["--resume".into()]
    } else {
        Vec::new()
    }
}

fn path(path: &Path) -> String {
    path.display().to_string()
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .init();
    let args = Args::parse();
    let data = &args.data;
    let out = &args.out;
    for split in ["unlabeled", "labeled", "test"] {
        let file = data.join(format!("annotations/{split}.json"));
        if !file.is_file() {
            bail!("{}: no such annotation file", file.display());
        }
    }
    std::fs::create_dir_all(out)?;

    // 1. Features of the unlabeled videos, which the reference pre-trains on (Swin-T is frozen
    //    there, so its features once replace its forward pass in every epoch).
    let features = out.join("features/unlabeled.zip");
    let use_features = !args.quick && args.swin_weights.is_some();
    if let Some(swin) = args.swin_weights.as_ref().filter(|_| use_features) {
        stage(out, "features", || {
            std::fs::create_dir_all(out.join("features"))?;
            vidcls(vec![
                "extract-features".into(),
                "--swin-weights".into(),
                path(swin),
                "--annotations".into(),
                path(&data.join("annotations/unlabeled.json")),
                "--frames".into(),
                path(&data.join("zip_frames/unlabeled")),
                "--output".into(),
                path(&features),
                "--overwrite".into(),
                "--device".into(),
                args.device.clone(),
            ])
        })?;
    }

    // 2. Pre-training on the unlabeled videos (the reference's 5 epochs).
    let pretrain = out.join("pretrain");
    stage(out, "pretrain", || {
        let mut command = vec!["pretrain".to_string()];
        if use_features {
            command.extend([
                "--annotations".into(),
                path(&data.join("annotations/unlabeled.json")),
                "--features".into(),
                path(&features),
            ]);
        } else {
            command.extend(["--data".into(), path(data)]);
        }
        command.extend(["--output".into(), path(&pretrain)]);
        command.extend(args.training_flags("1"));
        if args.quick {
            command.extend(["--val-size".into(), "20".into()]);
        }
        command.extend(resume_flag(&pretrain));
        vidcls(command)
    })?;

    // 3. Fine-tuning from the pre-trained encoder, one run per seed.
    let mut runs = Vec::new();
    for index in 0..args.runs.max(1) {
        let run = out.join(format!("finetune-{index}"));
        let seed = (2022 + index).to_string();
        stage(out, &format!("finetune-{index}"), || {
            let mut command = vec!["finetune".to_string(), "--data".into(), path(data)];
            command.extend(["--output".into(), path(&run), "--seed".into(), seed.clone()]);
            if run.join("resume/latest").is_file() {
                command.extend(resume_flag(&run));
            } else {
                command.extend(["--init".into(), path(&pretrain)]);
            }
            command.extend(args.training_flags("2"));
            vidcls(command)
        })?;
        runs.push(run);
    }

    // 4. The average of the fine-tuned weights (the reference's SWA).
    let averaged = out.join("average");
    stage(out, "average", || {
        if averaged.exists() {
            std::fs::remove_dir_all(&averaged)?;
        }
        let mut command = vec!["average".to_string(), "--checkpoints".into()];
        command.extend(runs.iter().map(|run| path(run)));
        command.extend(["--output".into(), path(&averaged)]);
        vidcls(command)
    })?;

    // 5. Predictions for the test split.
    let result = out.join("result.csv");
    stage(out, "predict", || {
        vidcls(vec![
            "predict".into(),
            "--checkpoint".into(),
            path(&averaged),
            "--annotations".into(),
            path(&data.join("annotations/test.json")),
            "--frames".into(),
            path(&data.join("zip_frames/test")),
            "--output".into(),
            path(&result),
            "--device".into(),
            args.device.clone(),
        ])
    })?;

    // 6. The competition's metric, when the test split's ground truth is there.
    let truth = data.join("test_ground_truth.csv");
    if truth.is_file() {
        vidcls(vec![
            "evaluate".into(),
            "--result".into(),
            path(&result),
            "--ground-truth".into(),
            path(&truth),
        ])?;
    } else {
        log::info!(
            "no {}: the predictions are in {} (submission format)",
            truth.display(),
            result.display()
        );
    }
    Ok(())
}
