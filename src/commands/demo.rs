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
use crate::progress::bar;
use vidcls_datasets::output::write_atomically;

/// Arguments of `vidcls demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Working directory of the demo; the synthetic dataset is generated there once and reused.
    #[arg(long, default_value = "vidcls-demo")]
    pub dir: PathBuf,
    /// Labeled videos of the synthetic dataset.
    #[arg(long, default_value_t = 600)]
    pub labeled: usize,
    /// Test videos of the synthetic dataset.
    #[arg(long, default_value_t = 200)]
    pub test: usize,
    /// Categories of the synthetic dataset.
    #[arg(long, default_value_t = 20)]
    pub categories: usize,
    /// Fine-tuning epochs of the tiny model.
    #[arg(long, default_value_t = 6)]
    pub epochs: usize,
}

/// Runs `vidcls demo`.
pub fn run(args: &DemoArgs) -> Result<()> {
    let data = args.dir.join("data");
    if data.join("annotations/test.json").is_file() {
        log::info!("reusing the synthetic dataset in {}", data.display());
    } else {
        let config = SynthConfig {
            labeled: args.labeled,
            unlabeled: 100,
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
        VisualSource::frames(&data.join("zip_frames/test")),
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

    log::info!("step 3: fine-tuning the tiny model (`vidcls finetune --preset tiny`)");
    let run_dir = args.dir.join("run");
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("cannot remove the previous run {}", run_dir.display()))?;
    }
    let epochs = args.epochs.to_string();
    super::finetune::run(&parse_args(
        "finetune",
        &[
            "--preset",
            "tiny",
            "--data",
            &data.display().to_string(),
            "--out",
            &run_dir.display().to_string(),
            "--epochs",
            &epochs,
        ],
    )?)?;

    log::info!("step 4: predicting the test split with the fine-tuned model");
    let result = args.dir.join("result.csv");
    super::predict::run(&parse_args(
        "predict",
        &[
            "--checkpoint",
            &run_dir.display().to_string(),
            "--annotations",
            &data.join("annotations/test.json").display().to_string(),
            "--frames",
            &data.join("zip_frames/test").display().to_string(),
            "--output",
            &result.display().to_string(),
        ],
    )?)?;
    let truth = data.join("test_ground_truth.csv");
    let model_scores = evaluate_files(&result, &truth)?;

    log::info!("step 5: scoring against a majority-class baseline with the competition's metric");
    let baseline = args.dir.join("baseline_result.csv");
    write_majority_baseline(&data, &baseline)?;
    let baseline_scores = evaluate_files(&baseline, &truth)?;
    print_comparison(&[
        ("tiny model", &model_scores),
        ("majority class", &baseline_scores),
    ]);
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
