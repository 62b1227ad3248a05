//! Pre-training against the PyTorch reference (`scripts/make_pretrain_fixtures.py`, which runs
//! the WBDC baselines' `MaskLM` masking and `ShuffleVideo` pairs on the pre-training model of
//! `scripts/model_reference.py`): masking statistics, ITM labels, and optimizer steps on a
//! fixed masking.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use burn::lr_scheduler::LrScheduler;
use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::prelude::*;
use burn::tensor::DType;
use rand::SeedableRng;
use rand::rngs::StdRng;
use safetensors::SafeTensors;
use serde_json::Value;
use vidcls_datasets::batcher::{VideoBatch, VisualBatch};
use vidcls_datasets::tokenizer::SpecialTokens;
use vidcls_model::VideoModelConfig;
use vidcls_model::loader::{load_reference_weights, save_pretrain_safetensors};
use vidcls_training::config::TrainingConfig;
use vidcls_training::optim::{AdamOptimizer, AdamSettings};
use vidcls_training::pretrain::masking::{MaskedTokens, MlmMasking, itm_labels, itm_pairing};
use vidcls_training::pretrain::step::{PretrainModel, PretrainObjective};
use vidcls_training::schedule::LrSchedule;

mod common;
use common::{read_tensors, tensor};

type B = Autodiff<Flex>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/pretraining")
        .join(name)
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn masking(fixture: &Value) -> MlmMasking {
    let id = |name: &str| fixture["special"][name].as_u64().unwrap() as u32;
    MlmMasking {
        probability: fixture["probability"].as_f64().unwrap(),
        special: SpecialTokens {
            pad: id("pad"),
            unk: id("unk"),
            cls: id("cls"),
            sep: id("sep"),
            mask: id("mask"),
        },
        vocab_size: fixture["vocab_size"].as_u64().unwrap() as usize,
    }
}

/// Asserts that two observed rates `hits / trials` agree within sampling error (4.5 standard
/// deviations of their difference), and with the rate the rule states.
fn assert_same_rate(what: &str, ours: (u64, u64), reference: (u64, u64), stated: f64) {
    let rate = |(hits, trials): (u64, u64)| hits as f64 / trials as f64;
    let (p1, p2) = (rate(ours), rate(reference));
    let pooled = (ours.0 + reference.0) as f64 / (ours.1 + reference.1) as f64;
    let sigma = (pooled * (1.0 - pooled) * (1.0 / ours.1 as f64 + 1.0 / reference.1 as f64)).sqrt();
    assert!(
        (p1 - p2).abs() <= 4.5 * sigma,
        "{what}: vidcls {p1:.4}, reference {p2:.4} (sigma {sigma:.4})"
    );
    let sigma_stated = (stated * (1.0 - stated) / ours.1 as f64).sqrt();
    assert!(
        (p1 - stated).abs() <= 4.5 * sigma_stated,
        "{what}: vidcls {p1:.4}, stated {stated:.4}"
    );
}

#[test]
fn masking_rates_match_the_reference() {
    let fixture = json("masking.json");
    let masking = masking(&fixture);
    let ids: Vec<i64> = fixture["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()))
        .collect();
    let draws = fixture["draws"].as_u64().unwrap();
    let (mut chosen, mut masked, mut random, mut unchanged, mut special) = (0, 0, 0, 0, 0);
    for draw in 0..draws {
        let result = masking.mask(&ids, &mut StdRng::seed_from_u64(draw));
        for (&position, &target) in result.positions.iter().zip(&result.targets) {
            assert_eq!(target, ids[position]);
            chosen += 1;
            special += u64::from(masking.is_special(target));
            let seen = result.input_ids[position];
            if seen == i64::from(masking.special.mask) {
                masked += 1;
            } else if seen == target {
                unchanged += 1;
            } else {
                random += 1;
            }
        }
    }
    let counts = &fixture["counts"];
    let count = |name: &str| counts[name].as_u64().unwrap();
    let candidates = fixture["candidates"].as_u64().unwrap();
    assert_eq!(special, 0, "vidcls chose special tokens");
    assert_eq!(count("special_chosen"), 0);
    let vocab = masking.vocab_size as f64;
    assert_same_rate(
        "chosen",
        (chosen, candidates),
        (count("chosen"), candidates),
        0.15,
    );
    let of_chosen = |hits: u64, name: &str| ((hits, chosen), (count(name), count("chosen")));
    let (ours, reference) = of_chosen(masked, "masked");
    assert_same_rate("[MASK]", ours, reference, 0.8 + 0.1 / vocab);
    let (ours, reference) = of_chosen(random, "random");
    assert_same_rate("random id", ours, reference, 0.1 * (1.0 - 2.0 / vocab));
    let (ours, reference) = of_chosen(unchanged, "unchanged");
    assert_same_rate("unchanged", ours, reference, 0.1 + 0.1 / vocab);
}

#[test]
fn itm_labels_match_the_reference() {
    let fixture = json("itm.json");
    for (batch, labels) in fixture.as_object().unwrap() {
        let batch: usize = batch.parse().unwrap();
        let expected: Vec<f32> = labels
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(
            itm_labels(&itm_pairing(batch)),
            expected,
            "batch of {batch}"
        );
    }
}

/// The fixture's batch and its fixed masking.
fn batch() -> (VideoBatch<B>, MaskedTokens) {
    let bytes = std::fs::read(fixture("inputs.safetensors")).unwrap();
    let inputs = SafeTensors::deserialize(&bytes).unwrap();
    let input_ids: Tensor<B, 2, Int> = tensor(&inputs, "input_ids", DType::I64);
    let [videos, text_len] = input_ids.dims();
    let frames: Tensor<B, 5> = tensor(&inputs, "frames", DType::F32);
    let values = |name: &str| -> Vec<i64> {
        tensor::<B, 2, Int>(&inputs, name, DType::I64)
            .into_data()
            .convert::<i64>()
            .into_vec()
            .unwrap()
    };
    let labels = values("mlm_labels");
    let positions: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] != -100).collect();
    let masked = MaskedTokens {
        input_ids: values("masked_ids"),
        targets: positions.iter().map(|&i| labels[i]).collect(),
        positions,
    };
    let batch = VideoBatch {
        frame_mask: Tensor::ones([videos, frames.dims()[1]], &Default::default()),
        visual: VisualBatch::Frames(frames),
        input_ids,
        attention_mask: tensor::<B, 2, Float>(&inputs, "text_mask", DType::F32).int(),
        labels: None,
        ids: (0..videos).map(|i| i.to_string()).collect(),
        issues: Vec::new(),
    };
    assert_eq!(masked.input_ids.len(), videos * text_len);
    (batch, masked)
}

#[test]
fn pretraining_steps_match_pytorch() {
    let config: VideoModelConfig =
        serde_json::from_str(&std::fs::read_to_string(fixture("config.json")).unwrap()).unwrap();
    let case = json("steps.json");
    let float = |key: &str| case[key].as_f64().unwrap();
    let int = |key: &str| case[key].as_u64().unwrap() as usize;
    let training = TrainingConfig {
        lr: float("lr"),
        warmup_steps: int("warmup_steps"),
        warmup_ratio: float("warmup_ratio"),
        ..TrainingConfig::seed()
    };
    let device = Default::default();
    let mut pretrain = config.init_pretrain::<B>(&device);
    load_reference_weights(&mut pretrain, fixture("initial.safetensors")).unwrap();
    pretrain.encoder.visual_backbone = pretrain.encoder.visual_backbone.no_grad();
    let masking_fixture = json("masking.json");
    let mut model = PretrainModel::new(
        pretrain,
        PretrainObjective {
            masking: masking(&masking_fixture),
            itm_weight: float("itm_weight"),
        },
    );
    let mut optimizer = AdamOptimizer::<B>::new(AdamSettings::from_config(&training));
    let mut schedule = LrSchedule::new(&training, int("total_steps")).at_step(int("start_step"));
    let (batch, masked) = batch();
    assert_eq!(masked.positions.len(), int("chosen"));
    for (step, expected) in case["steps_taken"].as_array().unwrap().iter().enumerate() {
        let lr = schedule.step();
        let want_lr = expected["lr"].as_f64().unwrap();
        assert!(
            (lr - want_lr).abs() <= 1e-12 + 1e-9 * want_lr,
            "step {step}: lr {lr}"
        );
        let output = model.step_masked(batch.clone(), &masked);
        let stats = output.item.clone().stats();
        for (name, got) in [
            ("loss", stats.loss),
            ("mlm_loss", stats.mlm_loss),
            ("itm_loss", stats.itm_loss),
        ] {
            let want = expected[name].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "step {step}: {name} {got} vs PyTorch {want}"
            );
        }
        model = optimizer.step(lr, model, output.grads);
    }

    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("after.safetensors");
    save_pretrain_safetensors(&model.valid().model, &path).unwrap();
    let actual = read_tensors(&path);
    let expected = read_tensors(&fixture("after.safetensors"));
    let initial = read_tensors(&fixture("initial.safetensors"));
    let mut moved = 0;
    for (name, (shape, want)) in &expected {
        let (got_shape, got) = &actual[name];
        assert_eq!(got_shape, shape, "shape of {name}");
        let (_, before) = &initial[name];
        let worst = got
            .iter()
            .zip(want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0, f32::max);
        assert!(worst <= 1e-5, "{name} differs from PyTorch by {worst:e}");
        let movement: f64 = got
            .iter()
            .zip(before)
            .map(|(g, b)| (g - b).abs() as f64)
            .sum();
        let want_movement = case["delta_l1"][name].as_f64().unwrap();
        // Parameters whose gradient is 0 in theory (attention key biases) move by rounding
        // noise: up to about 1e-7 per value.
        let noise = 1e-7 * got.len() as f64;
        assert!(
            (movement - want_movement).abs() <= 1e-3 * want_movement + noise,
            "summed movement of {name}: vidcls {movement:e}, PyTorch {want_movement:e}"
        );
        if name.starts_with("visual_backbone.") {
            assert_eq!(got, before, "the frozen backbone moved: {name}");
        } else if want_movement > 0.0 {
            moved += 1;
        }
    }
    assert!(moved > 50, "only {moved} tensors moved");
}

#[test]
fn pre_extracted_features_train_as_the_frames_do() {
    let config: VideoModelConfig =
        serde_json::from_str(&std::fs::read_to_string(fixture("config.json")).unwrap()).unwrap();
    let device = Default::default();
    let mut pretrain = config.init_pretrain::<B>(&device);
    load_reference_weights(&mut pretrain, fixture("initial.safetensors")).unwrap();
    pretrain.encoder.visual_backbone = pretrain.encoder.visual_backbone.no_grad();
    let masking_fixture = json("masking.json");
    let model = PretrainModel::new(
        pretrain,
        PretrainObjective {
            masking: masking(&masking_fixture),
            itm_weight: 0.3,
        },
    );
    let (batch, masked) = batch();
    let VisualBatch::Frames(frames) = batch.visual.clone() else {
        unreachable!()
    };
    let features = model
        .model
        .encoder
        .visual_backbone
        .valid()
        .forward(frames.inner());
    let with_features = VideoBatch {
        visual: VisualBatch::Features(Tensor::from_inner(features)),
        ..batch.clone()
    };
    let from_frames = model.step_masked(batch, &masked);
    let from_features = model.step_masked(with_features, &masked);
    assert_eq!(
        from_frames.item.clone().stats(),
        from_features.item.clone().stats()
    );
    let mut optimizer = AdamOptimizer::<B>::new(AdamSettings::from_config(&TrainingConfig::seed()));
    let a = optimizer
        .step(1e-3, model.clone(), from_frames.grads)
        .valid()
        .model;
    let mut optimizer = AdamOptimizer::<B>::new(AdamSettings::from_config(&TrainingConfig::seed()));
    let b = optimizer
        .step(1e-3, model, from_features.grads)
        .valid()
        .model;
    let out = tempfile::tempdir().unwrap();
    let (path_a, path_b) = (out.path().join("a"), out.path().join("b"));
    save_pretrain_safetensors(&a, &path_a).unwrap();
    save_pretrain_safetensors(&b, &path_b).unwrap();
    assert!(std::fs::read(path_a).unwrap() == std::fs::read(path_b).unwrap());
}
