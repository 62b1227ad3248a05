//! `vidcls demo`: the main job end to end on a small built-in synthetic dataset.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, FromArgMatches};
use vidcls_datasets::annotations::{read_annotations, read_labels};
use vidcls_datasets::dataset::{VideoDataset, VisualSource};
use vidcls_datasets::frames::DEFAULT_MAX_FRAMES;
use vidcls_datasets::synth::{SynthConfig, write_synthetic_dataset};
use vidcls_datasets::taxonomy::Taxonomy;
use vidcls_datasets::tokenizer::TextEncoder;

use vidcls_training::metric::Scores;
use vidcls_training::metrics::WbdcScore;

use super::evaluate::evaluate_files;
use super::flags;
use crate::progress::bar;
use vidcls_datasets::output::write_atomically;

/// Arguments of `vidcls demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Working directory of the demo; the synthetic dataset is generated there once and reused.
    #[arg(
        long = "output",
        visible_alias = "dir",
        value_name = "DIR",
        default_value = "vidcls-demo"
    )]
    pub dir: PathBuf,
    /// Labeled videos of the synthetic dataset.
    #[arg(long, default_value_t = 600, value_parser = flags::positive)]
    pub labeled: usize,
    /// Test videos of the synthetic dataset.
    #[arg(long, default_value_t = 200, value_parser = flags::positive)]
    pub test: usize,
    /// Categories of the synthetic dataset.
    #[arg(long, default_value_t = 20, value_parser = flags::positive)]
    pub categories: usize,
    /// Unlabeled videos of the synthetic dataset (pre-training data, with the labeled and test
    /// videos' texts and frames).
    #[arg(long, default_value_t = 600)]
    pub unlabeled: usize,
    /// Fine-tuning epochs of the tiny model (each of the two fine-tunings).
    #[arg(long, default_value_t = 6, value_parser = flags::positive)]
    pub epochs: usize,
    /// Pre-training epochs before the second fine-tuning (0 = no pre-training stage).
    #[arg(long, default_value_t = 1)]
    pub pretrain_epochs: usize,
    /// Frame slots per video of the tiny model.
    #[arg(long, default_value_t = 4, value_parser = flags::positive)]
    pub max_frames: usize,
}

/// Runs `vidcls demo`.
pub fn run(args: &DemoArgs) -> Result<()> {
    let data = args.dir.join("data");
    if data.join("annotations/test.json").is_file() {
        log::info!("reusing the synthetic dataset in {}", data.display());
    } else {
        let config = SynthConfig {
            labeled: args.labeled,
            unlabeled: args.unlabeled,
            test: args.test,
            seed: 2022,
            categories: args.categories,
            ..SynthConfig::default()
        };
        log::info!(
            "step 1: generating a synthetic dataset in {}",
            data.display()
        );
        let progress = bar(
            (config.labeled + config.unlabeled + config.test) as u64,
            "synth",
        );
        write_synthetic_dataset(&data, &config, &|| progress.inc(1))?;
        progress.finish_and_clear();
    }

    log::info!("step 2: preprocessing (what `vidcls inspect` shows), first 3 test videos");
    let text = Arc::new(TextEncoder::from_dir(&data.join("bert"))?);
    let test = VideoDataset::unlabeled(
        &data.join("annotations/test.json"),
        VisualSource::frames(&data.join("zip_frames/test"))?,
        text,
        DEFAULT_MAX_FRAMES,
    )?;
    for index in 0..test.annotations().len().min(3) {
        let item = test.item(index);
        let tokens = item.attention_mask.iter().filter(|&&m| m == 1).count();
        println!(
            "  video {}: {} ids ({} real tokens), frames {:?} -> mask {:?}{}",
            item.id,
            item.input_ids.len(),
            tokens,
            item.visual.frame_indices,
            item.visual.frame_mask,
            if item.issues.is_empty() {
                String::new()
            } else {
                format!(" ({})", item.issues.join("; "))
            }
        );
    }

    let data_arg = data.display().to_string();
    let max_frames = args.max_frames.to_string();
    let settings = ["--preset", "tiny", "--max-frames", &max_frames];
    let pretrained = args.dir.join("pretrain");
    let with_pretraining = args.pretrain_epochs > 0;
    if with_pretraining {
        log::info!(
            "step 3: pre-training the tiny model on every video's text and frames, labels unused \
             (`vidcls pretrain --preset tiny`: masked language modelling + video-text matching)"
        );
        fresh_dir(&pretrained)?;
        let epochs = args.pretrain_epochs.to_string();
        let mut flags = vec!["--data", &data_arg, "--with-labeled", "--with-test"];
        flags.extend(settings);
        let out = pretrained.display().to_string();
        flags.extend(["--epochs", &epochs, "--output", &out]);
        super::pretrain::run(&parse_args("pretrain", &flags)?)?;
    }

    let truth = data.join("test_ground_truth.csv");
    let test_annotations = data.join("annotations/test.json").display().to_string();
    let test_frames = data.join("zip_frames/test").display().to_string();
    // Fine-tunes (from `init`, if any) into `run_dir`, predicts the test split, scores it.
    let finetune_and_score = |run_dir: &Path, init: Option<&Path>| -> Result<(PathBuf, Scores)> {
        fresh_dir(run_dir)?;
        let epochs = args.epochs.to_string();
        let out = run_dir.display().to_string();
        let init = init.map(|path| path.display().to_string());
        let mut flags = vec!["--data", &data_arg, "--output", &out, "--epochs", &epochs];
        flags.extend(settings);
        if let Some(init) = &init {
            flags.extend(["--init", init]);
        }
        super::finetune::run(&parse_args("finetune", &flags)?)?;
        let result = run_dir.join("result.csv");
        let output = result.display().to_string();
        super::predict::run(&parse_args(
            "predict",
            &[
                "--checkpoint",
                &out,
                "--annotations",
                &test_annotations,
                "--frames",
                &test_frames,
                "--output",
                &output,
            ],
        )?)?;
        Ok((result.clone(), evaluate_files(&result, &truth)?))
    };

    log::info!(
        "step 4: fine-tuning the tiny model from scratch (`vidcls finetune --preset tiny`), then \
         predicting the test split"
    );
    let run_dir = args.dir.join("run");
    let (result, model_scores) = finetune_and_score(&run_dir, None)?;
    let pretrained_scores = if with_pretraining {
        log::info!(
            "step 5: the same fine-tuning from the pre-trained encoder (`--init {}`)",
            pretrained.display()
        );
        Some(finetune_and_score(&args.dir.join("run-pretrained"), Some(&pretrained))?.1)
    } else {
        None
    };

    log::info!("step 6: scoring against a majority-class baseline with the competition's metric");
    let baseline = args.dir.join("baseline_result.csv");
    write_majority_baseline(&data, &baseline)?;
    let baseline_scores = evaluate_files(&baseline, &truth)?;
    let mut columns = vec![("tiny model", &model_scores)];
    if let Some(scores) = &pretrained_scores {
        columns.push(("pre-trained", scores));
    }
    columns.push(("majority class", &baseline_scores));
    print_comparison(&columns);
    if let Some(scores) = &pretrained_scores {
        let gain = scores.mean_f1 - model_scores.mean_f1;
        println!(
            "Pre-training {} on this data: test mean_f1 {:.4} with it, {:.4} without ({gain:+.4}).",
            if gain > 0.0 { "helped" } else { "did not help" },
            scores.mean_f1,
            model_scores.mean_f1
        );
    }
    println!(
        "The run: {0} (train.log, metrics.csv, curves.png). Predictions: {1}.\n\
         Try: vidcls inspect --annotations {2}/annotations/test.json --frames {2}/zip_frames/test \
         --bert-dir {2}/bert --id {3}",
        run_dir.display(),
        result.display(),
        data.display(),
        test.annotations().first().map_or("", |v| v.id.as_str())
    );
    Ok(())
}

/// Removes a directory left by an earlier demo.
fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the previous run {}", dir.display()))?;
    }
    Ok(())
}

/// Parses the arguments of subcommand `name` into its argument struct.
fn parse_args<T: Args + FromArgMatches>(name: &'static str, args: &[&str]) -> Result<T> {
    let command = T::augment_args(clap::Command::new(name));
    let matches =
        command.try_get_matches_from(std::iter::once(name).chain(args.iter().copied()))?;
    Ok(T::from_arg_matches(&matches)?)
}

/// Prints the seven numbers of several results side by side.
fn print_comparison(results: &[(&str, &Scores)]) {
    print!("{:<14}", "metric");
    for (name, _) in results {
        print!(" {name:>16}");
    }
    println!();
    for score in WbdcScore::ALL {
        print!("{:<14}", score.name());
        for (_, scores) in results {
            print!(" {:>16.4}", score.of(scores));
        }
        println!();
    }
}

/// Predicts the most frequent labeled category for every test video.
fn write_majority_baseline(data: &Path, result: &Path) -> Result<()> {
    let labeled_path = data.join("annotations/labeled.json");
    let labeled = read_annotations(&labeled_path)?;
    let labels = read_labels(&labeled_path, &labeled)?;
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for label in labels {
        *counts.entry(label).or_default() += 1;
    }
    let majority = counts
        .into_iter()
        .max_by_key(|&(label, count)| (count, std::cmp::Reverse(label)))
        .map_or(0, |(label, _)| label);
    let category = Taxonomy::get().category_id(majority)?;
    let test = read_annotations(&data.join("annotations/test.json"))?;
    write_atomically(result, |out: &mut dyn Write| {
        for video in &test {
            writeln!(out, "{},{category}", video.id)?;
        }
        Ok(())
    })?;
    Ok(())
}
