//! One fine-tuning step (and a few in a row) against the PyTorch implementation of
//! REFERENCE.md in `scripts/train_reference.py`: the fixtures of
//! `scripts/make_train_fixtures.py` hold the initial weights, a batch, and the weights after
//! the steps of each case (plain, no smoothing, FGM, PGD, several steps with EMA, weight decay,
//! AdamW), with the learning rates and losses PyTorch saw; `scripts/make_loss_scale_fixtures.py`
//! writes PyTorch's GradScaler steps for the dynamic loss scaling of f16 training.

use std::path::{Path, PathBuf};

use burn::backend::flex::FlexDevice;
use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::nn::LinearConfig;
use burn::optim::GradientsParams;
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
use vidcls_training::ema::Ema;
use vidcls_training::loss_scale::{DEFAULT_INITIAL_SCALE, LossScaler};
use vidcls_training::optim::{AdamOptimizer, AdamSettings};
use vidcls_training::schedule::LrSchedule;
use vidcls_training::step::{FinetuneModel, Objective};
use vidcls_training::strategy::RunComponents;
use vidcls_training::update::train_update;

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

/// Summed movement below which a key bias counts as unmoved in f32: its true gradient is 0 (a
/// softmax ignores a constant added to its row), so the optimizer's normalized step moves it
/// by the products' rounding noise alone, which differs between any two implementations (at
/// most 1.5e-6 in PyTorch's cases, 1.9e-6 in vidcls's), while every tensor with a gradient
/// moves by at least 2.5e-3.
const ROUNDING_NOISE: f64 = 1e-5;

/// Checks the summed movement of every trainable parameter against PyTorch's, within
/// `tolerance` relative, and returns the largest relative difference. Key biases are checked
/// to stay within [`ROUNDING_NOISE`] on both sides instead.
///
/// Reduced precision leaves out the key biases and Swin's joint `qkv` biases, of which they
/// are a third: its rounding noise is larger than f32's.
fn assert_total_movement(case: &Value, actual: &Path, tolerance: &Tolerance) -> f64 {
    let actual = read_tensors(actual);
    let initial = read_tensors(&fixture("initial.safetensors"));
    let mut largest = 0.0f64;
    for (name, want) in case["delta_l1"].as_object().unwrap() {
        let zero_gradient = name.ends_with("key.bias");
        if (zero_gradient || name.ends_with("qkv.bias"))
            && tolerance.precision != MatmulPrecision::F32
        {
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
        if zero_gradient {
            assert!(
                got <= ROUNDING_NOISE && want <= ROUNDING_NOISE,
                "{}: summed movement of {name}, whose true gradient is 0: vidcls {got:e}, \
                 PyTorch {want:e}",
                case["name"]
            );
            continue;
        }
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

/// A learner at the start of `case`: the initial weights, fresh optimizer moments, the
/// schedule at the case's first step.
fn case_learner(case: &Value, device: &FlexDevice) -> Learner<RunComponents<B, FinetuneModel<B>>> {
    let config: VideoModelConfig =
        serde_json::from_str(&std::fs::read_to_string(fixture("config.json")).unwrap()).unwrap();
    let training = training_config(case);
    let mut classifier = config.init_classifier::<B>(device);
    load_reference_weights(&mut classifier, fixture("initial.safetensors")).unwrap();
    let schedule = LrSchedule::new(&training, case["total_steps"].as_u64().unwrap() as usize)
        .at_step(case["start_step"].as_u64().unwrap() as usize);
    let model = FinetuneModel::new(
        classifier,
        Objective {
            label_smoothing: training.label_smoothing,
            adversarial: training.adversarial,
        },
    );
    let optimizer = AdamOptimizer::<B>::new(AdamSettings::from_config(&training));
    Learner::new(model, optimizer, schedule)
}

/// Every trainable weight of `learner`'s model, flattened in visiting order.
fn weights(learner: &Learner<RunComponents<B, FinetuneModel<B>>>) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    save_classifier_safetensors(&learner.model().valid().classifier, &path).unwrap();
    let mut tensors: Vec<_> = read_tensors(&path).into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
        .into_iter()
        .flat_map(|(_, (_, values))| values)
        .collect()
}

/// f16 FGM steps from a loss scale so large that the gradients overflow f16: each such step
/// leaves the weights as they were and halves the scale (the learning-rate schedule goes on,
/// as with GradScaler); the first step that does not overflow moves the weights as a step at
/// GradScaler's initial 65536 does at the same point of the schedule, up to f16's rounding.
#[test]
fn overflowing_f16_steps_are_skipped_and_halve_the_loss_scale() {
    let case = cases()
        .into_iter()
        .find(|case| case["adversarial"] == "fgm")
        .unwrap();
    let device = Default::default();
    MatmulPrecision::F16.scope(|| {
        let mut learner = case_learner(&case, &device);
        let initial = weights(&learner);
        let mut scaler = LossScaler::new(2f32.powi(40));
        let mut skipped = 0;
        loop {
            let scale = scaler.scale;
            let update = train_update(&mut learner, batch(), &[device], Some(&mut scaler));
            let Some(overflowed_at) = update.overflowed_at else {
                break;
            };
            assert_eq!(overflowed_at, scale);
            assert_eq!(scaler.scale, scale / 2.0, "the scale halves");
            assert!(
                weights(&learner) == initial,
                "a skipped step moved the weights"
            );
            skipped += 1;
            assert!(skipped < 40, "the gradients overflow at every scale");
        }
        assert!(skipped >= 10, "only {skipped} steps overflowed from 2^40");
        let scaled = weights(&learner);

        let mut usual = case_learner(&case, &device);
        for _ in 0..skipped {
            usual.lr_step();
        }
        let mut scaler = LossScaler::new(DEFAULT_INITIAL_SCALE);
        let update = train_update(&mut usual, batch(), &[device], Some(&mut scaler));
        assert_eq!(update.overflowed_at, None);
        assert_eq!(usual.lr_current(), learner.lr_current());
        let expected = weights(&usual);
        let (mut moved, mut differs) = (0.0f64, 0.0f64);
        for ((got, want), before) in scaled.iter().zip(&expected).zip(&initial) {
            moved += (want - before).abs() as f64;
            differs += (got - want).abs() as f64;
        }
        eprintln!(
            "{skipped} steps skipped; then moved {moved:.3e}, {differs:.3e} from the step at 65536"
        );
        assert!(moved > 0.0);
        assert!(differs <= 0.02 * moved, "{differs} vs {moved}");
    });
}

/// Dynamic loss scaling follows PyTorch's GradScaler step for step
/// (`scripts/make_loss_scale_fixtures.py`): the unscaled gradients, which steps are skipped
/// (a gradient holds inf or NaN) and the scale after each step.
#[test]
fn loss_scaling_follows_pytorchs_grad_scaler() {
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("grad_scaler.json")).unwrap())
            .unwrap();
    let matrix = |value: &Value| -> Vec<f32> {
        value
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap())
            .map(|v| match v {
                Value::String(text) => text.parse().unwrap(),
                number => number.as_f64().unwrap() as f32,
            })
            .collect()
    };
    let device = Default::default();
    let layer = LinearConfig::new(2, 2).with_bias(false).init::<B>(&device);
    let mut scaler = LossScaler {
        growth_interval: fixture["growth_interval"].as_u64().unwrap() as usize,
        ..LossScaler::new(fixture["initial_scale"].as_f64().unwrap() as f32)
    };
    let steps = fixture["steps"].as_array().unwrap();
    assert!(steps.iter().any(|step| !step["applied"].as_bool().unwrap()));
    for (index, step) in steps.iter().enumerate() {
        assert_eq!(
            scaler.scale as f64,
            step["scale"].as_f64().unwrap(),
            "step {index}"
        );
        let mut grads = GradientsParams::new();
        let scaled = TensorData::new(matrix(&step["scaled"]), [2, 2]);
        grads.register::<Flex, 2>(layer.weight.id, Tensor::from_data(scaled, &device));
        let unscaled = scaler.unscale::<B, _>(grads, &layer);
        let applied = step["applied"].as_bool().unwrap();
        assert_eq!(unscaled.is_some(), applied, "step {index}: skipped?");
        if let Some(grads) = unscaled {
            let got: Vec<f32> = grads
                .get::<Flex, 2>(layer.weight.id)
                .unwrap()
                .into_data()
                .to_vec()
                .unwrap();
            assert_eq!(got, matrix(&step["unscaled"]), "step {index}");
        }
        scaler.update(!applied);
        assert_eq!(
            scaler.scale as f64,
            step["scale_after"].as_f64().unwrap(),
            "step {index}"
        );
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
    let out = tempfile::tempdir().unwrap();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let training = training_config(case);
        let label = format!(
            "{name} on {} device(s) in {:?}",
            devices.len(),
            tolerance.precision
        );
        let mut learner = case_learner(case, &devices[0]);
        let mut ema = (training.ema_decay > 0.0)
            .then(|| Ema::new(training.ema_decay, &learner.model().classifier));
        let batch = batch();
        // f16 scales its losses (as `finetune` does), which must not change the steps.
        let mut scaler = (tolerance.precision == MatmulPrecision::F16)
            .then(|| LossScaler::new(DEFAULT_INITIAL_SCALE));
        for step in 0..case["steps"].as_u64().unwrap() as usize {
            let output = train_update(&mut learner, batch.clone(), devices, scaler.as_mut());
            assert_eq!(output.overflowed_at, None, "{label} step {step}");
            let lr = learner.lr_current();
            let want_lr = case["lrs"][step].as_f64().unwrap();
            assert!(
                (lr - want_lr).abs() <= 1e-12 + 1e-9 * want_lr,
                "{label} step {step}: lr {lr} vs {want_lr}"
            );
            let loss: f32 = output.item.loss.clone().into_scalar();
            let want_loss = case["losses"][step].as_f64().unwrap();
            assert!(
                (loss as f64 - want_loss).abs() < tolerance.loss * want_loss.max(1.0),
                "{label} step {step}: loss {loss} vs {want_loss}"
            );
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
