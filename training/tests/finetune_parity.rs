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
use vidcls_model::kernels::MatmulPrecision;
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

/// How closely a run must follow PyTorch's f32 steps.
#[derive(Debug, Clone, Copy)]
struct Tolerance {
    /// The precision of the run's products.
    precision: MatmulPrecision,
    /// Of every step's loss, relative.
    loss: f64,
    /// Of every weight (none: not compared weight by weight).
    weights: Option<f32>,
    /// Of every tensor's summed movement, relative.
    movement: f64,
}

/// f32 steps: PyTorch's up to rounding.
const F32: Tolerance = Tolerance {
    precision: MatmulPrecision::F32,
    loss: 1e-5,
    weights: Some(1e-5),
    movement: 1e-3,
};

/// Asserts that every tensor of `expected` is within `tolerance` of `actual`, and that the step
/// moved it measurably where PyTorch moved it (so the comparison can fail).
fn assert_weights_match(case: &str, actual: &Path, expected: &Path, tolerance: f32) {
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
            worst <= tolerance,
            "{case}: {name} differs from PyTorch by {worst:e} (the step moved it by {movement:e})"
        );
        if movement > 1e-4 {
            moved += 1;
        }
    }
    assert!(moved > 0, "{case}: no checked tensor moved");
}

/// Checks the summed movement of every trainable parameter against PyTorch's, within
/// `tolerance` relative, and returns the largest relative difference.
///
/// Reduced precision leaves out the key biases (BERT's, and Swin's joint `qkv` biases, of which
/// they are a third): their true gradient is 0 (a softmax ignores a constant added to its row),
/// so the optimizer's normalized step moves them by the products' rounding noise alone, which
/// reduced precision makes larger than f32's.
fn assert_total_movement(case: &Value, actual: &Path, tolerance: &Tolerance) -> f64 {
    let actual = read_tensors(actual);
    let initial = read_tensors(&fixture("initial.safetensors"));
    let mut largest = 0.0f64;
    for (name, want) in case["delta_l1"].as_object().unwrap() {
        let zero_gradient = name.ends_with("key.bias") || name.ends_with("qkv.bias");
        if zero_gradient && tolerance.precision != MatmulPrecision::F32 {
            continue;
        }
        let want = want.as_f64().unwrap();
        let (_, after) = &actual[name];
        let (_, before) = &initial[name];
        let got: f64 = after
            .iter()
            .zip(before)
            .map(|(a, b)| (a - b).abs() as f64)
            .sum();
        assert!(
            (got - want).abs() <= tolerance.movement * want + 1e-6,
            "{}: summed movement of {name}: vidcls {got:e}, PyTorch {want:e}",
            case["name"]
        );
        largest = largest.max((got - want).abs() / want.max(f64::MIN_POSITIVE));
    }
    largest
}

#[test]
fn steps_match_the_pytorch_reference() {
    let cases = cases();
    assert_eq!(cases.len(), 8);
    check_steps(&cases, &[Default::default()], F32);
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
        check_steps(&cases, &vec![Default::default(); devices], F32);
    }
}

/// Steps with bf16 and f16 products (f32 weights, gradients and optimizer state) stay close
/// to PyTorch's f32 steps: losses within the products' rounding, every tensor's summed movement
/// within a few percent of PyTorch's (measured: at most 3.1% in bf16, 1.5% in f16; losses
/// within 8.6e-5 and 1.9e-5 relative), and further from them than f32 steps are allowed to be (the
/// products really were rounded), also on 2 devices, whose threads take the caller's
/// precision.
#[test]
fn mixed_precision_steps_stay_close_to_the_pytorch_reference() {
    let cases = cases();
    let unattacked: Vec<Value> = cases
        .iter()
        .filter(|case| case["adversarial"] == "none")
        .cloned()
        .collect();
    for (precision, loss, movement) in [
        (MatmulPrecision::Bf16, 5e-4, 0.1),
        (MatmulPrecision::F16, 1e-4, 0.05),
    ] {
        let tolerance = Tolerance {
            precision,
            loss,
            weights: None,
            movement,
        };
        for (cases, devices) in [(&cases, 1), (&unattacked, 2)] {
            let largest = check_steps(cases, &vec![Default::default(); devices], tolerance);
            eprintln!(
                "{precision:?} on {devices} device(s): summed movements within {largest:.2e}"
            );
            assert!(
                largest > 3.0 * F32.movement,
                "{precision:?} on {devices} device(s): the steps move the weights as f32 steps \
                 do ({largest:e})"
            );
        }
    }
}

fn cases() -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(fixture("cases.json")).unwrap()).unwrap()
}

/// Runs each case's steps on `devices` in `tolerance`'s precision and compares losses, learning
/// rates, weights and EMA with PyTorch's; returns the largest relative difference of a tensor's
/// summed movement.
fn check_steps(cases: &[Value], devices: &[FlexDevice], tolerance: Tolerance) -> f64 {
    tolerance
        .precision
        .scope(|| check_steps_in_scope(cases, devices, tolerance))
}

fn check_steps_in_scope(cases: &[Value], devices: &[FlexDevice], tolerance: Tolerance) -> f64 {
    let mut largest = 0.0f64;
    let config: VideoModelConfig =
        serde_json::from_str(&std::fs::read_to_string(fixture("config.json")).unwrap()).unwrap();
    let device = devices[0];
    let out = tempfile::tempdir().unwrap();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let training = training_config(case);
        let label = format!(
            "{name} on {} device(s) in {:?}",
            devices.len(),
            tolerance.precision
        );
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
                (loss as f64 - want_loss).abs() < tolerance.loss * want_loss.max(1.0),
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
        if let Some(weights) = tolerance.weights {
            assert_weights_match(
                &label,
                &raw,
                &fixture(&format!("{name}.safetensors")),
                weights,
            );
        }
        largest = largest.max(assert_total_movement(case, &raw, &tolerance));
        if let (Some(ema), Some(weights)) = (&ema, tolerance.weights) {
            let averaged = out.path().join(format!("{name}.ema.safetensors"));
            save_classifier_safetensors(&ema.apply(trained.clone()), &averaged).unwrap();
            assert_weights_match(
                &format!("{label} (EMA)"),
                &averaged,
                &fixture(&format!("{name}.ema.safetensors")),
                weights,
            );
        }
    }
    largest
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
