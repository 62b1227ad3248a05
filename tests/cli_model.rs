//! End-to-end tests of the model subcommands: `predict`, `extract-features`, `export`,
//! `bench infer`, against the PyTorch reference's outputs (`tests/fixtures/model/predict/`,
//! written by `scripts/make_predict_fixtures.py` on the videos of `tests/fixtures/pipeline/`),
//! and the round trip of vidcls's exports through the PyTorch reference
//! (`tests/fixtures/model/export/`, written by `scripts/make_export_fixtures.py`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use burn::backend::Flex;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::store::{ModuleStore, SafetensorsStore};
use serde_json::Value;
use vidcls_datasets::annotations::read_annotations;
use vidcls_datasets::features::FeatureReader;
use vidcls_datasets::taxonomy::Taxonomy;
use vidcls_model::kernels::MatmulPrecision;
use vidcls_model::loader::{
    infer_pretrain_config, load_reference_weights, reference_tensor_shapes,
};
use vidcls_model::{BertConfig, VideoModelConfig, VisualInput};

/// Largest absolute difference tolerated between our logits and the reference's.
const LOGIT_TOLERANCE: f32 = 1e-4;
/// Features of the predict fixture's backbone.
const FEATURES: usize = 32;

fn vidcls() -> Command {
    Command::cargo_bin("vidcls").unwrap()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn pipeline(name: &str) -> PathBuf {
    fixtures().join("pipeline").join(name)
}

fn model_fixture(name: &str) -> PathBuf {
    fixtures().join("model").join(name)
}

fn predict_fixture(name: &str) -> PathBuf {
    fixtures().join("model/predict").join(name)
}

fn export_fixture(name: &str) -> PathBuf {
    fixtures().join("model/export").join(name)
}

fn video_ids() -> Vec<String> {
    read_annotations(&pipeline("annotations.json"))
        .unwrap()
        .into_iter()
        .map(|video| video.id)
        .collect()
}

/// A float32 `[rows, columns]` `.npy` as rows.
fn read_npy(path: &Path) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    assert_eq!(shape.len(), 2, "{}", path.display());
    let values: Vec<f32> = npy.into_vec().unwrap();
    values
        .chunks(shape[1] as usize)
        .map(<[f32]>::to_vec)
        .collect()
}

fn read_safetensors(path: &Path) -> BTreeMap<String, TensorData> {
    SafetensorsStore::from_file(path)
        .get_all_snapshots()
        .unwrap()
        .iter()
        .map(|(name, snapshot)| (name.clone(), snapshot.to_data().unwrap()))
        .collect()
}

fn assert_same_tensors(ours: &Path, theirs: &Path) {
    let (ours, theirs) = (read_safetensors(ours), read_safetensors(theirs));
    let only_in = |a: &BTreeMap<String, TensorData>, b: &BTreeMap<String, TensorData>| {
        a.keys()
            .filter(|name| !b.contains_key(*name))
            .cloned()
            .collect::<Vec<_>>()
    };
    let (only_ours, only_theirs) = (only_in(&ours, &theirs), only_in(&theirs, &ours));
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "tensors only in ours: {only_ours:?}, only in theirs: {only_theirs:?}"
    );
    for (name, expected) in &theirs {
        let actual = &ours[name];
        assert_eq!(actual.shape, expected.shape, "{name}");
        assert_eq!(actual.dtype, expected.dtype, "{name}");
        assert_eq!(actual.as_bytes(), expected.as_bytes(), "{name}");
    }
}

fn max_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max)
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best })
}

/// Runs `predict` on the pipeline fixtures, the visual input given by `visual` (`--frames` or
/// `--features`) and `source`; returns (CSV, logits, stderr).
fn predict(
    checkpoint: &Path,
    (visual, source): (&str, &Path),
    extra: &[&str],
) -> (String, Vec<Vec<f32>>, String) {
    let dir = tempfile::tempdir().unwrap();
    let (csv, npy) = (dir.path().join("result.csv"), dir.path().join("logits.npy"));
    let output = vidcls()
        .arg("predict")
        .arg("--checkpoint")
        .arg(checkpoint)
        .arg("--annotations")
        .arg(pipeline("annotations.json"))
        .arg(visual)
        .arg(source)
        .arg("--output")
        .arg(&csv)
        .arg("--logits")
        .arg(&npy)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    (
        std::fs::read_to_string(&csv).unwrap(),
        read_npy(&npy),
        stderr,
    )
}

/// `vidcls export` of `checkpoint` to `output`, with `extra` flags.
fn export_command(checkpoint: &Path, extra: &[&str], output: &Path) -> Command {
    let mut command = vidcls();
    command
        .arg("export")
        .arg("--checkpoint")
        .arg(checkpoint)
        .args(extra)
        .arg("--output")
        .arg(output);
    command
}

/// Runs `vidcls export` of `checkpoint` to `output` (with `extra` flags) and expects success.
fn export(checkpoint: &Path, extra: &[&str], output: &Path) {
    export_command(checkpoint, extra, output).assert().success();
}

/// Exports `checkpoint` (with `extra` flags) to safetensors and checks that the result has the
/// tensors of `expected` (names, dtypes, shapes, bytes); returns the exported file's bytes.
fn assert_exports_tensors_of(checkpoint: &Path, extra: &[&str], expected: &Path) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let exported = dir.path().join("exported.safetensors");
    export(checkpoint, extra, &exported);
    assert_same_tensors(&exported, expected);
    std::fs::read(&exported).unwrap()
}

fn bert_dir() -> String {
    pipeline("bert").into_os_string().into_string().unwrap()
}

#[test]
fn predict_reproduces_the_reference_in_annotation_order() {
    let expected = read_npy(&predict_fixture("logits.npy"));
    let (bert, frames) = (bert_dir(), pipeline("frames"));
    let (csv, logits, stderr) = predict(
        &predict_fixture("classifier.safetensors"),
        ("--frames", &frames),
        &["--bert-dir", &bert, "--batch-size", "5"],
    );
    assert!(max_difference(&logits, &expected) < LOGIT_TOLERANCE);
    let categories = Taxonomy::get().category_ids();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), expected.len());
    for ((line, id), row) in lines.iter().zip(video_ids()).zip(&expected) {
        assert_eq!(*line, format!("{id},{}", categories[argmax(row)]));
    }
    // The videos without frames are predicted, and reported.
    assert!(
        stderr.contains("4 problem(s) in 4 of 12 video(s)"),
        "{stderr}"
    );
}

/// `predict --precision bf16` against the reference's f32 logits: the same class for every
/// video, and logits no further from f32 than PyTorch's own bf16 autocast's
/// (`logits_bf16.npy`, 0.136 at most on these videos, where it changes 2 of 12 classes); where the
/// CPU has AVX512-BF16, really computed in bf16 (not the f32 path).
#[test]
fn predict_in_bf16_keeps_the_reference_classes() {
    let bf16_cpu = MatmulPrecision::Bf16.effective() == MatmulPrecision::Bf16;
    check_reduced_precision("bf16", bf16_cpu);
}

/// `predict --precision f16` (the composed products with CUDA's casts, run by Flex) against
/// the reference's f32 logits: the same class for every video, logits no further from f32 than
/// PyTorch's f16 autocast's (`logits_f16.npy`, 0.019 at most), and not the f32 logits.
#[test]
fn predict_in_f16_keeps_the_reference_classes() {
    check_reduced_precision("f16", true);
}

/// `predict --precision <precision>` keeps the reference's classes and is no further from its
/// f32 logits than PyTorch's autocast in that precision; `rounded`: the logits must differ
/// from f32 by more than f32 rounding.
fn check_reduced_precision(precision: &str, rounded: bool) {
    let expected = read_npy(&predict_fixture("logits.npy"));
    let autocast = read_npy(&predict_fixture(&format!("logits_{precision}.npy")));
    let (bert, frames) = (bert_dir(), pipeline("frames"));
    let (csv, logits, _) = predict(
        &predict_fixture("classifier.safetensors"),
        ("--frames", &frames),
        &["--bert-dir", &bert, "--precision", precision],
    );
    let categories = Taxonomy::get().category_ids();
    for ((line, id), (ours, theirs)) in csv
        .lines()
        .zip(video_ids())
        .zip(logits.iter().zip(&expected))
    {
        assert_eq!(line, format!("{id},{}", categories[argmax(theirs)]));
        assert_eq!(argmax(ours), argmax(theirs), "{id}");
    }
    let ours = max_difference(&logits, &expected);
    let pytorch = max_difference(&autocast, &expected);
    eprintln!(
        "max |{precision} - f32| of the logits: vidcls {ours:.3e}, PyTorch autocast {pytorch:.3e}"
    );
    assert!(ours <= pytorch, "{ours} > {pytorch}");
    assert_eq!(ours > LOGIT_TOLERANCE, rounded, "{ours}");
}

#[test]
fn predict_strict_names_the_bad_video_and_writes_nothing() {
    // The first video without frames (no zip, or an empty one).
    let expected = std::fs::read_to_string(pipeline("expected.jsonl")).unwrap();
    let bad = expected
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|video| {
            video["frame_mask"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m == 0)
        })
        .expect("a fixture video has no frames");
    let bad = bad["id"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    vidcls()
        .arg("predict")
        .arg("--checkpoint")
        .arg(predict_fixture("classifier.safetensors"))
        .args(["--bert-dir", &bert_dir()])
        .arg("--annotations")
        .arg(pipeline("annotations.json"))
        .arg("--frames")
        .arg(pipeline("frames"))
        .arg("--output")
        .arg(dir.path().join("result.csv"))
        .arg("--logits")
        .arg(dir.path().join("logits.npy"))
        .arg("--strict")
        .assert()
        .failure()
        .stderr(predicates::str::contains(format!("video {bad}")))
        .stderr(predicates::str::contains(
            pipeline("frames").to_string_lossy().into_owned(),
        ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn run_directories_round_trip_through_export() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    export(
        &predict_fixture("classifier.safetensors"),
        &["--bert-dir", &bert_dir(), "--format", "run"],
        &run,
    );
    for file in ["config.json", "model.safetensors", "vocab.txt"] {
        assert!(run.join(file).is_file(), "{file}");
    }
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(predict_fixture("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["model"], fixture);
    assert!(config.get("training").is_none());
    // The weights keep the reference's names: the run's model.safetensors is the export.
    let exported = dir.path().join("exported.safetensors");
    export(&run, &[], &exported);
    assert!(
        std::fs::read(&exported).unwrap() == std::fs::read(run.join("model.safetensors")).unwrap()
    );

    // The run directory keeps its tokenizer: no --bert-dir.
    let (bert, frames) = (bert_dir(), pipeline("frames"));
    let from_reference = predict(
        &predict_fixture("classifier.safetensors"),
        ("--frames", &frames),
        &["--bert-dir", &bert],
    );
    let from_run = predict(&run, ("--frames", &frames), &["--batch-size", "3"]);
    assert_eq!(from_run.0, from_reference.0);
    assert_eq!(from_run.1, from_reference.1);

    assert_exports_tensors_of(&run, &[], &predict_fixture("classifier.safetensors"));
}

#[test]
fn export_of_a_reference_checkpoint_reproduces_its_state_dict() {
    let bert = model_fixture("bert_hf_bin");
    let bert = ["--bert-dir", bert.to_str().unwrap()];
    assert_exports_tensors_of(
        &model_fixture("classifier.pth"),
        &bert,
        &model_fixture("classifier.safetensors"),
    );
    // The pre-training model, the unused next-sentence head included.
    assert_exports_tensors_of(
        &model_fixture("pretrain.safetensors"),
        &bert,
        &model_fixture("pretrain.safetensors"),
    );
}

/// The inputs and the PyTorch reference's outputs of the export round trip (`io.safetensors`).
struct ExportIo(BTreeMap<String, TensorData>);

impl ExportIo {
    fn open() -> Self {
        Self(read_safetensors(&export_fixture("io.safetensors")))
    }

    fn float<const D: usize>(&self, name: &str) -> Tensor<Flex, D> {
        Tensor::from_data(self.0[name].clone().convert::<f32>(), &Default::default())
    }

    fn int<const D: usize>(&self, name: &str) -> Tensor<Flex, D, Int> {
        Tensor::from_data(self.0[name].clone().convert::<i32>(), &Default::default())
    }

    /// Checks our `output` against the reference's output `name`.
    fn assert_close<const D: usize>(&self, name: &str, output: Tensor<Flex, D>) {
        let (ours, theirs) = (output.into_data(), &self.0[name]);
        assert_eq!(ours.shape, theirs.shape, "{name}");
        let difference = max_difference(
            &[ours.to_vec::<f32>().unwrap()],
            &[theirs.to_vec::<f32>().unwrap()],
        );
        println!("{name}: max abs difference {difference:.2e}");
        assert!(difference <= LOGIT_TOLERANCE, "{name}: {difference}");
    }
}

/// `vidcls export` of `checkpoint` is byte-identical to the export that
/// `scripts/make_export_fixtures.py` loaded into the PyTorch reference with `strict=True`
/// (checked tensor by tensor first, for a readable failure).
fn assert_exports_fixture(checkpoint: &Path, extra: &[&str], fixture: &str) {
    let expected = export_fixture(fixture);
    let exported = assert_exports_tensors_of(checkpoint, extra, &expected);
    assert!(
        exported == std::fs::read(&expected).unwrap(),
        "the export of {} is not byte-identical to {fixture}",
        checkpoint.display()
    );
}

#[test]
fn a_vidcls_classifier_exported_into_pytorch_gives_the_same_logits() {
    // A run directory of vidcls's own random classifier: its export is the file the reference
    // loaded strictly...
    let run = export_fixture("classifier");
    assert_exports_fixture(&run, &[], "classifier.safetensors");

    // ...and the classifier gives the reference's logits.
    let device = Default::default();
    let config = VideoModelConfig::load(run.join("config.json")).unwrap();
    let model = config
        .init_classifier::<Flex>(&device)
        .load_file(
            run.join("model"),
            &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
            &device,
        )
        .unwrap();
    let io = ExportIo::open();
    let logits = model.forward(
        io.int("input_ids"),
        io.float("text_mask"),
        VisualInput::Frames(io.float("frames")),
        Some(io.float("frame_mask")),
    );
    io.assert_close("classifier_logits", logits);
}

#[test]
fn a_vidcls_pretrain_model_exported_into_pytorch_gives_the_same_logits_and_comes_back() {
    // vidcls's own random pre-training model, as vidcls exported it and the reference loaded
    // it strictly: exporting it again, or the reference's checkpoint of it, gives the same file.
    let bert_dir = export_fixture("bert");
    let bert = ["--bert-dir", bert_dir.to_str().unwrap()];
    let exported = export_fixture("pretrain.safetensors");
    for checkpoint in [exported.clone(), export_fixture("pretrain.pth")] {
        assert_exports_fixture(&checkpoint, &bert, "pretrain.safetensors");
    }

    // It gives the reference's MLM and ITM logits.
    let bert_config = BertConfig::load_hf(bert_dir.join("config.json")).unwrap();
    let shapes = reference_tensor_shapes(&exported).unwrap();
    let config = infer_pretrain_config(&shapes, Some(&bert_config)).unwrap();
    let mut model = config.init_pretrain::<Flex>(&Default::default());
    load_reference_weights(&mut model, &exported).unwrap();
    let io = ExportIo::open();
    let output = model.forward(
        io.int("input_ids"),
        io.float("text_mask"),
        VisualInput::Frames(io.float("frames")),
        None,
    );
    io.assert_close("mlm_logits", output.mlm_logits);
    io.assert_close("itm_logits", output.itm_logits);

    // Run directories hold classifiers only.
    let dir = tempfile::tempdir().unwrap();
    let mut run = bert.to_vec();
    run.extend(["--format", "run"]);
    export_command(&exported, &run, &dir.path().join("run"))
        .assert()
        .failure()
        .stderr(predicates::str::contains("pre-training checkpoint"));
}

#[test]
fn extract_features_reproduces_the_reference_and_feeds_predict() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("features.zip");
    let extract = |extra: &[&str]| {
        let mut command = vidcls();
        command
            .arg("extract-features")
            .arg("--swin-weights")
            .arg(predict_fixture("swin_official.pth"))
            .arg("--annotations")
            .arg(pipeline("annotations.json"))
            .arg("--frames")
            .arg(pipeline("frames"))
            .arg("--output")
            .arg(&zip)
            .args(["--batch-size", "7"])
            .args(extra);
        command
    };
    extract(&[]).assert().success();

    let expected = read_safetensors(&predict_fixture("features.safetensors"));
    let reader = FeatureReader::open(&zip, FEATURES).unwrap();
    for id in video_ids() {
        let sample = reader.load(&id, 32);
        let Some(want) = expected.get(&id) else {
            assert!(
                sample.issues[0].contains(&format!("video {id}")),
                "{:?}",
                sample.issues
            );
            continue;
        };
        assert!(sample.issues.is_empty(), "{:?}", sample.issues);
        let want: Vec<f32> = want.to_vec().unwrap();
        let rows = want.len() / FEATURES;
        assert_eq!(sample.frame_mask.iter().sum::<u32>() as usize, rows, "{id}");
        for (ours, theirs) in sample.values[..want.len()].iter().zip(&want) {
            // Stored as float16.
            assert!(
                (ours - theirs).abs() <= 1e-3 * theirs.abs().max(1.0),
                "{id}: {ours} vs {theirs}"
            );
        }
    }

    extract(&[])
        .assert()
        .failure()
        .stderr(predicates::str::contains("--overwrite"));
    extract(&["--overwrite"]).assert().success();

    // Predicting from the features gives the reference's classes (videos with frames; the
    // others differ by design: empty frame slots go through the backbone, empty feature slots
    // do not).
    let reference = read_npy(&predict_fixture("logits.npy"));
    let (_, logits, _) = predict(
        &predict_fixture("classifier.safetensors"),
        ("--features", &zip),
        &["--bert-dir", &bert_dir()],
    );
    for ((id, ours), theirs) in video_ids().iter().zip(&logits).zip(&reference) {
        if expected.contains_key(id) {
            assert_eq!(argmax(ours), argmax(theirs), "{id}");
            assert!(
                max_difference(std::slice::from_ref(ours), std::slice::from_ref(theirs)) < 0.05,
                "{id}"
            );
        }
    }
}

#[test]
fn bad_checkpoints_are_reported() {
    let run_predict = |checkpoint: &Path, bert: Option<&Path>| {
        let dir = tempfile::tempdir().unwrap();
        let mut command = vidcls();
        command
            .arg("predict")
            .arg("--checkpoint")
            .arg(checkpoint)
            .arg("--annotations")
            .arg(pipeline("annotations.json"))
            .arg("--frames")
            .arg(pipeline("frames"))
            .arg("--output")
            .arg(dir.path().join("result.csv"));
        if let Some(bert) = bert {
            command.arg("--bert-dir").arg(bert);
        }
        let assert = command.assert().failure();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
    };
    let bert = pipeline("bert");

    let not_a_checkpoint = pipeline("annotations.json");
    let stderr = run_predict(&not_a_checkpoint, Some(&bert));
    assert!(stderr.contains("annotations.json"), "{stderr}");

    let stderr = run_predict(&predict_fixture("classifier.safetensors"), None);
    assert!(stderr.contains("give --bert-dir"), "{stderr}");

    // The fixture classifier (hidden 32, 100-token vocabulary): its heads come from a BERT
    // config.json, which the pipeline's BERT directory lacks.
    let stderr = run_predict(&model_fixture("classifier.pth"), Some(&bert));
    assert!(stderr.contains("attention heads"), "{stderr}");
    let both = tempfile::tempdir().unwrap();
    std::fs::copy(bert.join("vocab.txt"), both.path().join("vocab.txt")).unwrap();
    std::fs::copy(
        model_fixture("bert_hf_bin/config.json"),
        both.path().join("config.json"),
    )
    .unwrap();
    let stderr = run_predict(&model_fixture("classifier.pth"), Some(both.path()));
    assert!(stderr.contains("wrong --bert-dir"), "{stderr}");

    // A run directory whose record does not match its configuration.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    export(
        &predict_fixture("classifier.safetensors"),
        &["--format", "run"],
        &run,
    );
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    std::fs::write(
        run.join("config.json"),
        config.replace("\"vocab_size\": 542", "\"vocab_size\": 600"),
    )
    .unwrap();
    let stderr = run_predict(&run, Some(&bert));
    assert!(
        stderr.contains("model.safetensors") && stderr.contains("542"),
        "{stderr}"
    );
}

#[test]
fn bench_infer_reports_throughput_as_json() {
    let output = vidcls()
        .args([
            "bench",
            "infer",
            "--preset",
            "tiny",
            "--iterations",
            "1",
            "--text-len",
            "64",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    for key in ["videos_per_s", "gflops_per_s", "gflop_per_video"] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}: {report}");
    }
    assert_eq!(report["batch_size"], 2);
}
