//! One fine-tuning step (and a few in a row) against the PyTorch implementation of
//! REFERENCE.md in `scripts/train_reference.py`: the fixtures of
//! `scripts/make_train_fixtures.py` hold the initial weights, a batch, and the weights after
//! the steps of each case (plain, no smoothing, FGM, PGD, several steps with EMA, weight decay,
//! AdamW), with the learning rates and losses PyTorch saw.

use std::path::{Path, PathBuf};

use burn::backend::flex::FlexDevice;
use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::DType;
use burn::train::Learner;
use safetensors::SafeTensors;
use serde_json::Value;
use vidcls_datasets::batcher::{VideoBatch, VisualBatch};
use vidcls_model::VideoModelConfig;
use vidcls_model::loader::{load_reference_weights, save_classifier_safetensors};
use vidcls_training::config::{Adversarial, OptimizerKind, TrainingConfig};
use vidcls_training::data_parallel;
use vidcls_training::ema::Ema;
use vidcls_training::optim::{AdamOptimizer, AdamSettings};
use vidcls_training::schedule::LrSchedule;
use vidcls_training::step::{FinetuneModel, Objective};

mod common;
use common::read_tensors;

type B = Autodiff<Flex>;

fn tensor<const D: usize, K: burn::tensor::BasicOps<B>>(
    bytes: &SafeTensors,
    name: &str,
    dtype: DType,
) -> Tensor<B, D, K> {
    common::tensor(bytes, name, dtype)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/training")
        .join(name)
}

fn batch() -> VideoBatch<B> {
    let bytes = std::fs::read(fixture("inputs.safetensors")).unwrap();
    let inputs = SafeTensors::deserialize(&bytes).unwrap();
    let input_ids: Tensor<B, 2, Int> = tensor(&inputs, "input_ids", DType::I64);
    let [batch, _] = input_ids.dims();
    VideoBatch {
        visual: VisualBatch::Frames(tensor(&inputs, "frames", DType::F32)),
        frame_mask: tensor::<2, Float>(&inputs, "frame_mask", DType::F32).int(),
        input_ids,
        attention_mask: tensor::<2, Float>(&inputs, "text_mask", DType::F32).int(),
        labels: Some(tensor(&inputs, "labels", DType::I64)),
        ids: (0..batch).map(|i| i.to_string()).collect(),
        issues: Vec::new(),
    }
}

fn training_config(case: &Value) -> TrainingConfig {
    let float = |key: &str| case[key].as_f64().unwrap();
    let int = |key: &str| case[key].as_u64().unwrap() as usize;
    TrainingConfig {
        lr: float("lr"),
        warmup_steps: int("warmup_steps"),
        warmup_ratio: float("warmup_ratio"),
        weight_decay: float("weight_decay"),
        optimizer: match case["optimizer"].as_str().unwrap() {
            "bertadam" => OptimizerKind::BertAdam,
            "adamw" => OptimizerKind::AdamW,
            other => panic!("unknown optimizer {other}"),
        },
        label_smoothing: float("label_smoothing"),
        adversarial: match case["adversarial"].as_str().unwrap() {
            "none" => Adversarial::None,
            "fgm" => Adversarial::Fgm {
                eps: float("fgm_eps"),
            },
            "pgd" => Adversarial::Pgd {
                steps: int("pgd_steps"),
                alpha: float("pgd_alpha"),
                eps: float("pgd_eps"),
            },
            other => panic!("unknown attack {other}"),
        },
        ema_decay: float("ema_decay"),
        ..TrainingConfig::seed()
    }
}

/// Asserts that every tensor of `expected` is within 1e-5 of `actual`, and that the step moved
/// it measurably where PyTorch moved it (so the comparison can fail).
fn assert_weights_match(case: &str, actual: &Path, expected: &Path) {
    let actual = read_tensors(actual);
    let expected = read_tensors(expected);
    let initial = read_tensors(&fixture("initial.safetensors"));
    assert!(!expected.is_empty());
    let mut moved = 0;
    for (name, (shape, want)) in &expected {
        let (got_shape, got) = actual
            .get(name)
            .unwrap_or_else(|| panic!("{case}: vidcls has no {name}"));
        assert_eq!(got_shape, shape, "{case}: shape of {name}");
        let (_, before) = &initial[name];
        let mut worst = 0.0f32;
        let mut movement = 0.0f32;
        for ((g, w), b) in got.iter().zip(want).zip(before) {
            worst = worst.max((g - w).abs());
            movement = movement.max((w - b).abs());
        }
        assert!(
            worst <= 1e-5,
            "{case}: {name} differs from PyTorch by {worst:e} (the step moved it by {movement:e})"
        );
        if movement > 1e-4 {
            moved += 1;
        }
    }
    assert!(moved > 0, "{case}: no checked tensor moved");
}

/// Checks the summed movement of every trainable parameter against PyTorch's.
fn assert_total_movement(case: &Value, actual: &Path) {
    let actual = read_tensors(actual);
    let initial = read_tensors(&fixture("initial.safetensors"));
    for (name, want) in case["delta_l1"].as_object().unwrap() {
        let want = want.as_f64().unwrap();
        let (_, after) = &actual[name];
        let (_, before) = &initial[name];
        let got: f64 = after
            .iter()
            .zip(before)
            .map(|(a, b)| (a - b).abs() as f64)
            .sum();
        assert!(
            (got - want).abs() <= 1e-3 * want + 1e-6,
            "{}: summed movement of {name}: vidcls {got:e}, PyTorch {want:e}",
            case["name"]
        );
    }
}

#[test]
fn steps_match_the_pytorch_reference() {
    let cases = cases();
    assert_eq!(cases.len(), 8);
    check_steps(&cases, &[Default::default()]);
}

/// The batch of 3 videos shared out among 2 devices (2 + 1 videos) and 3 devices: the steps
/// still follow PyTorch's on the whole batch. Both "devices" are the CPU here, which runs the
/// same code as distinct GPUs. The adversarial cases are left out: each device perturbs the
/// embeddings along its own shard's gradient, which PyTorch's single batch does not.
#[test]
fn steps_on_several_devices_match_the_pytorch_reference() {
    let cases: Vec<Value> = cases()
        .into_iter()
        .filter(|case| case["adversarial"] == "none")
        .collect();
    assert!(cases.len() >= 2);
    for devices in [2, 3] {
        check_steps(&cases, &vec![Default::default(); devices]);
    }
}

fn cases() -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(fixture("cases.json")).unwrap()).unwrap()
}

/// Runs each case's steps on `devices` and compares losses, learning rates, weights and EMA
/// with PyTorch's.
fn check_steps(cases: &[Value], devices: &[FlexDevice]) {
    let config: VideoModelConfig =
        serde_json::from_str(&std::fs::read_to_string(fixture("config.json")).unwrap()).unwrap();
    let device = devices[0];
    let out = tempfile::tempdir().unwrap();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let training = training_config(case);
        let label = format!("{name} on {} device(s)", devices.len());
        let mut classifier = config.init_classifier::<B>(&device);
        load_reference_weights(&mut classifier, fixture("initial.safetensors")).unwrap();
        let schedule = LrSchedule::new(&training, case["total_steps"].as_u64().unwrap() as usize)
            .at_step(case["start_step"].as_u64().unwrap() as usize);
        let model = FinetuneModel {
            classifier,
            objective: Objective {
                label_smoothing: training.label_smoothing,
                adversarial: training.adversarial,
            },
        };
        let mut ema =
            (training.ema_decay > 0.0).then(|| Ema::new(training.ema_decay, &model.classifier));
        let optimizer = AdamOptimizer::<B>::new(AdamSettings::from_config(&training));
        let mut learner = Learner::new(model, optimizer, schedule);
        let batch = batch();
        for step in 0..case["steps"].as_u64().unwrap() as usize {
            learner.lr_step();
            let lr = learner.lr_current();
            let want_lr = case["lrs"][step].as_f64().unwrap();
            assert!(
                (lr - want_lr).abs() <= 1e-12 + 1e-9 * want_lr,
                "{label} step {step}: lr {lr} vs {want_lr}"
            );
            let output = data_parallel::train_step(&learner.model(), batch.clone(), devices);
            let loss: f32 = output.item.loss.clone().into_scalar();
            let want_loss = case["losses"][step].as_f64().unwrap();
            assert!(
                (loss as f64 - want_loss).abs() < 1e-5,
                "{label} step {step}: loss {loss} vs {want_loss}"
            );
            learner.optimizer_step(output.grads);
            if let Some(ema) = &mut ema {
                ema.update(&learner.model().valid().classifier);
            }
        }
        let raw = out.path().join(format!("{name}.safetensors"));
        let trained = learner.model().valid().classifier;
        save_classifier_safetensors(&trained, &raw).unwrap();
        assert_weights_match(&label, &raw, &fixture(&format!("{name}.safetensors")));
        assert_total_movement(case, &raw);
        if let Some(ema) = &ema {
            let averaged = out.path().join(format!("{name}.ema.safetensors"));
            save_classifier_safetensors(&ema.apply(trained.clone()), &averaged).unwrap();
            assert_weights_match(
                &format!("{label} (EMA)"),
                &averaged,
                &fixture(&format!("{name}.ema.safetensors")),
            );
        }
    }
}

#[test]
fn resampling_matches_the_reference() {
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("resample.json")).unwrap()).unwrap();
    let list = |key: &str| -> Vec<usize> {
        fixture[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    };
    let resampled = vidcls_datasets::split::resample(&list("train"), &list("labels"));
    assert_eq!(resampled, list("expected"));
}
