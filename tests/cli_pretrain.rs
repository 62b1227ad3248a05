//! End-to-end tests of `vidcls pretrain` on a small synthetic dataset: a run killed mid-epoch
//! resumes to exactly the weights of an uninterrupted run; its model exports to the
//! reference's pre-training state dict; `finetune --init` starts from its encoder, and
//! `pretrain --init` from a fine-tuning run's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use safetensors::SafeTensors;

mod common;
use common::{kill_after_steps, metrics_without_time, read, steps_logged};

fn vidcls() -> Command {
    Command::cargo_bin("vidcls").unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pretraining")
        .join(name)
}

/// A small synthetic dataset: 60 unlabeled, 24 labeled and 8 test videos of 4 categories.
fn synth(out: &Path) {
    vidcls()
        .args([
            "synth",
            "--unlabeled",
            "60",
            "--labeled",
            "24",
            "--test",
            "8",
        ])
        .args(["--categories", "4", "--seed", "13"])
        .arg("--out")
        .arg(out)
        .assert()
        .success();
}

/// Arguments of `vidcls <command>` with the tiny preset, on 2 frame slots and 32 text ids.
fn run_args(command: &str, data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [command, "--preset", "tiny", "--max-frames", "2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--max-text-len", "32", "--data"].map(String::from));
    args.push(data.display().to_string());
    args.push("--out".into());
    args.push(out.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let bytes = read(path);
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec(), view.data().to_vec()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

fn tensor(path: &Path, name: &str) -> Vec<u8> {
    tensors(path)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("{}: no {name}", path.display()))
        .2
}

/// Asserts that the run whose weights are `trained` (trained with lr 0, so still as loaded)
/// started from the tensors `names` of `source`, and that its log says `fresh`.
fn assert_started_from(trained: &Path, source: &Path, names: &[&str], fresh: &str) {
    for name in names {
        assert_eq!(
            tensor(trained, name),
            tensor(source, name),
            "{name} was not loaded from {}",
            source.display()
        );
    }
    let log = std::fs::read_to_string(trained.with_file_name("train.log")).unwrap();
    assert!(log.contains(fresh), "{log}");
}

#[test]
fn a_pretraining_run_resumes_exports_and_starts_a_finetuning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synth(&data);
    // 84 videos (unlabeled + labeled), 8 held out: 76 training videos, 19 steps of 4 per
    // epoch, 2 epochs; dropout on and random masks, so a resumed run must draw the same ones.
    let settings = [
        "--with-labeled",
        "--batch-size",
        "4",
        "--epochs",
        "2",
        "--checkpoint-every",
        "5",
        "--dropout",
        "0.1",
        "--val-size",
        "8",
    ];
    let whole = dir.path().join("whole");
    let output = vidcls()
        .args(run_args("pretrain", &data, &whole, &settings))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let stdout = String::from_utf8(output).unwrap();
    assert!(stdout.contains("(8 validation videos)"), "{stdout}");
    assert!(stdout.contains("lowest validation loss"), "{stdout}");
    let metrics = std::fs::read_to_string(whole.join("metrics.csv")).unwrap();
    assert!(
        metrics.starts_with(
            "epoch,steps,train_loss,valid_loss,mlm_loss,mlm_acc,itm_loss,itm_acc,seconds"
        ),
        "{metrics}"
    );
    assert_eq!(steps_logged(&whole), 38);

    let killed = dir.path().join("killed");
    kill_after_steps(&run_args("pretrain", &data, &killed, &settings), &killed, 8);
    assert!(
        !killed.join("raw.safetensors").exists(),
        "killed after the first epoch"
    );
    vidcls()
        .args(run_args("pretrain", &data, &killed, &settings))
        .arg("--resume")
        .assert()
        .success();
    for file in ["raw.safetensors", "model.safetensors"] {
        assert!(
            read(&whole.join(file)) == read(&killed.join(file)),
            "{file} differs between the uninterrupted and the resumed run"
        );
    }
    assert_eq!(metrics_without_time(&whole), metrics_without_time(&killed));

    // The export is the reference's pre-training state dict: its keys (for the tiny preset's
    // layers, from PyTorch), the decoder tied to the word embeddings.
    let exported = dir.path().join("pretrain.safetensors");
    vidcls()
        .args(["export", "--checkpoint"])
        .arg(&whole)
        .arg("--output")
        .arg(&exported)
        .assert()
        .success();
    let keys: BTreeSet<String> = tensors(&exported).into_iter().map(|(n, _, _)| n).collect();
    let reference: BTreeSet<String> =
        serde_json::from_str(&std::fs::read_to_string(fixture("keys.json")).unwrap()).unwrap();
    assert_eq!(keys, reference);
    assert_eq!(
        tensor(&exported, "encoder.cls.predictions.decoder.weight"),
        tensor(&exported, "encoder.bert.embeddings.word_embeddings.weight")
    );
    // A pre-training run is not a classifier.
    vidcls()
        .args(["predict", "--checkpoint"])
        .arg(&whole)
        .args(["--annotations"])
        .arg(data.join("annotations/test.json"))
        .arg("--frames")
        .arg(data.join("zip_frames/test"))
        .arg("--output")
        .arg(dir.path().join("result.csv"))
        .assert()
        .failure()
        .stderr(predicates::str::contains("pre-training run"));

    // Fine-tuning starts from its encoder and video_dense (lr 0: the weights stay as loaded);
    // the classifier is new.
    let tuned = dir.path().join("tuned");
    let init = whole.display().to_string();
    vidcls()
        .args(run_args(
            "finetune",
            &data,
            &tuned,
            &[
                "--init",
                &init,
                "--lr",
                "0",
                "--max-steps",
                "1",
                "--val-ratio",
                "0",
            ],
        ))
        .assert()
        .success();
    assert_started_from(
        &tuned.join("raw.safetensors"),
        &whole.join("model.safetensors"),
        &[
            "encoder.bert.embeddings.word_embeddings.weight",
            "encoder.bert.encoder.x_layers.0.visual_attention.att.query.weight",
            "video_dense.weight",
            "visual_backbone.patch_embed.proj.weight",
        ],
        "the classifier starts fresh",
    );

    // And back: pre-training starts from a fine-tuning run's encoder, its heads fresh.
    let again = dir.path().join("again");
    let init = tuned.display().to_string();
    vidcls()
        .args(run_args(
            "pretrain",
            &data,
            &again,
            &[
                "--init",
                &init,
                "--lr",
                "0",
                "--max-steps",
                "1",
                "--val-size",
                "0",
            ],
        ))
        .assert()
        .success();
    assert_started_from(
        &again.join("raw.safetensors"),
        &tuned.join("model.safetensors"),
        &[
            "encoder.bert.embeddings.word_embeddings.weight",
            "video_dense.weight",
        ],
        "the pre-training heads start fresh",
    );
}

/// Pre-training in bf16 and in f16 (the MLM decoder's and the heads' products included;
/// f16 with its dynamic loss scaling) keeps f32 weights, and its losses stay within a few
/// percent of the f32 run's.
#[test]
fn pretraining_in_bf16_and_f16_keeps_f32_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synth(&data);
    let settings = ["--batch-size", "4", "--max-steps", "3", "--val-size", "8"];
    let run = |precision: &str| {
        let out = dir.path().join(precision);
        vidcls()
            .args(run_args("pretrain", &data, &out, &settings))
            .args(["--precision", precision])
            .assert()
            .success();
        let log = std::fs::read_to_string(out.join("train.log")).unwrap();
        let scaled = log.contains("dynamic loss scaling: losses multiplied by 65536");
        assert_eq!(scaled, precision == "f16", "{log}");
        let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        common::f32_tensors(&out.join("raw.safetensors"));
        metrics
    };
    let valid_loss = |metrics: &str| -> f64 {
        let line = metrics.lines().nth(1).expect("one epoch logged");
        line.split(',').nth(3).unwrap().parse().unwrap()
    };
    let f32_loss = valid_loss(&run("f32"));
    for precision in ["bf16", "f16"] {
        let loss = valid_loss(&run(precision));
        assert!(
            f32_loss != loss && (f32_loss - loss).abs() < 0.05 * f32_loss,
            "validation loss: f32 {f32_loss}, {precision} {loss}"
        );
    }
}
