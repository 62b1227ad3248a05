//! Weight import/export: reference checkpoints, HuggingFace BERT directories, the official Swin
//! checkpoint, and export with the reference's names.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use burn_store::{
    BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, ModuleStore, SafetensorsStore,
};
use common::{Io, TestBackend, assert_close, fixture, fixture_config};
use vidcls_model::bert::additive_attention_mask;
use vidcls_model::loader::{
    BURN_TO_REFERENCE, LoadError, load_hf_bert, load_official_swin, load_reference_weights,
    load_reference_weights_partial, save_classifier_safetensors, save_pretrain_safetensors,
};
use vidcls_model::{BertConfig, VideoModelConfig, VisualInput};

fn read_safetensors(path: &Path) -> BTreeMap<String, TensorData> {
    SafetensorsStore::from_file(path)
        .get_all_snapshots()
        .expect("safetensors file is readable")
        .iter()
        .map(|(name, snapshot)| (name.clone(), snapshot.to_data().expect("tensor data")))
        .collect()
}

fn assert_same_state_dict(
    exported: &BTreeMap<String, TensorData>,
    reference: &BTreeMap<String, TensorData>,
) {
    let exported_keys: Vec<&String> = exported.keys().collect();
    let reference_keys: Vec<&String> = reference.keys().collect();
    assert_eq!(exported_keys, reference_keys);
    for (name, expected) in reference {
        let actual = &exported[name];
        assert_eq!(actual.dtype, expected.dtype, "{name}: dtype");
        assert_eq!(actual.shape, expected.shape, "{name}: shape");
        assert_eq!(actual.as_bytes(), expected.as_bytes(), "{name}: values");
    }
}

#[test]
fn classifier_export_reproduces_the_reference_state_dict() {
    let mut model = fixture_config().init_classifier::<TestBackend>(&Default::default());
    load_reference_weights(&mut model, fixture("classifier.pth")).expect("checkpoint loads");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("classifier.safetensors");
    save_classifier_safetensors(&model, &path).expect("export succeeds");
    assert_same_state_dict(
        &read_safetensors(&path),
        &read_safetensors(&fixture("classifier.safetensors")),
    );
}

#[test]
fn pretrain_export_reproduces_the_reference_state_dict() {
    let mut model = fixture_config().init_pretrain::<TestBackend>(&Default::default());
    load_reference_weights(&mut model, fixture("pretrain.safetensors")).expect("weights load");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pretrain.safetensors");
    save_pretrain_safetensors(&model, &path).expect("export succeeds");
    assert_same_state_dict(
        &read_safetensors(&path),
        &read_safetensors(&fixture("pretrain.safetensors")),
    );
}

#[test]
fn pretrain_state_dicts_without_the_next_sentence_head_load_strictly() {
    let bytes = std::fs::read(fixture("pretrain.safetensors")).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let without_head: Vec<_> = reference
        .tensors()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("encoder.cls.seq_relationship."))
        .collect();
    assert_eq!(without_head.len() + 2, reference.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pretrain.safetensors");
    safetensors::serialize_to_file(without_head, None, &path).unwrap();

    let mut model = fixture_config().init_pretrain::<TestBackend>(&Default::default());
    let initial = model.nsp_head.weight.val();
    let result = load_reference_weights(&mut model, &path).expect("weights load");
    let missing: Vec<&str> = result
        .missing
        .iter()
        .map(|(path, _)| path.as_str())
        .collect();
    assert_eq!(missing, ["nsp_head.bias", "nsp_head.weight"]);
    initial
        .into_data()
        .assert_eq(&model.nsp_head.weight.val().into_data(), true);
}

#[test]
fn strict_load_reports_missing_parameters_and_partial_load_keeps_them() {
    let device = Default::default();
    let mut model = fixture_config().init_classifier::<TestBackend>(&device);
    match load_reference_weights(&mut model, fixture("pretrain.safetensors")) {
        Err(LoadError::Missing(missing)) => {
            assert_eq!(missing, ["classifier.bias", "classifier.weight"])
        }
        other => panic!("expected missing classifier tensors, got {other:?}"),
    }
    let mut model = fixture_config().init_classifier::<TestBackend>(&device);
    let result = load_reference_weights_partial(&mut model, fixture("pretrain.safetensors"))
        .expect("partial load succeeds");
    assert_eq!(result.missing.len(), 2);
    assert!(result.unused.iter().any(|name| name == "mlm_head.bias"));
}

#[test]
fn official_swin_checkpoint_loads_into_the_backbone() {
    let mut model = fixture_config().init_classifier::<TestBackend>(&Default::default());
    load_official_swin(&mut model, fixture("swin_official.pth")).expect("Swin loads");
    let mut io = Io::open();
    let features = model.encoder.visual_backbone.forward(io.float("frames"));
    assert_close("swin features", features, io.float("swin_features"));
}

#[test]
fn hf_bert_bin_with_prefix_and_gamma_beta_loads_encoder_and_pretraining_heads() {
    let mut model = fixture_config().init_pretrain::<TestBackend>(&Default::default());
    let result = load_hf_bert(&mut model, fixture("bert_hf_bin")).expect("HF BERT loads");
    for name in [
        "mlm_head.dense.weight",
        "mlm_head.layer_norm.gamma",
        "mlm_head.bias",
        "nsp_head.weight",
    ] {
        assert!(
            result.applied.iter().any(|applied| applied == name),
            "{name} not loaded"
        );
    }
    let bert = &model.encoder.two_stream;
    let mut io = Io::open();
    let hidden = bert.text_encoder.forward(
        bert.embeddings.forward(io.int("input_ids")),
        Some(additive_attention_mask(io.float("text_mask"))),
    );
    assert_close(
        "bert pooler",
        bert.pooler.forward(hidden.clone()),
        io.float("bert_pooled"),
    );
    assert_close("bert hidden states", hidden, io.float("bert_hidden"));
}

#[test]
fn hf_config_json_parses_with_unknown_and_absent_keys() {
    let expected = &fixture_config().encoder.two_stream.bert;
    for dir in ["bert_hf_bin", "bert_hf_safetensors"] {
        let config = BertConfig::load_hf(fixture(dir).join("config.json")).expect("config parses");
        assert_eq!(config.vocab_size, expected.vocab_size);
        assert_eq!(config.hidden_size, expected.hidden_size);
        assert_eq!(config.num_attention_heads, expected.num_attention_heads);
        assert_eq!(config.intermediate_size, expected.intermediate_size);
        assert_eq!(
            config.max_position_embeddings,
            expected.max_position_embeddings
        );
        assert_eq!(config.layer_norm_eps, expected.layer_norm_eps);
    }
    assert!(BertConfig::from_hf_json(r#"{"hidden_size": 8}"#).is_err());
}

#[test]
fn model_config_presets_round_trip_through_json() {
    let dir = tempfile::tempdir().unwrap();
    for (name, config) in [
        ("seed", VideoModelConfig::seed()),
        ("tiny", VideoModelConfig::tiny()),
    ] {
        let path = dir.path().join(format!("{name}.json"));
        config.save(&path).unwrap();
        let loaded = VideoModelConfig::load(&path).unwrap();
        assert_eq!(
            serde_json::to_string(&loaded).unwrap(),
            serde_json::to_string(&config).unwrap()
        );
    }
    let seed = VideoModelConfig::seed();
    assert_eq!(seed.encoder.swin.num_features(), 768);
    assert_eq!(seed.encoder.two_stream.cross_layers, 5);
}

#[test]
fn tiny_preset_runs_end_to_end() {
    let device = Default::default();
    let config = VideoModelConfig::tiny();
    let img = config.encoder.swin.img_size;
    let classifier = config.init_classifier::<TestBackend>(&device);
    let input_ids = Tensor::<TestBackend, 2, Int>::from_data([[101, 2769, 102, 0]], &device);
    let text_mask = Tensor::<TestBackend, 2>::from_data([[1.0, 1.0, 1.0, 0.0]], &device);
    let frames = Tensor::<TestBackend, 5>::zeros([1, 2, 3, img, img], &device);
    let logits = classifier.forward(
        input_ids.clone(),
        text_mask.clone(),
        VisualInput::Frames(frames.clone()),
        Some(Tensor::ones([1, 2], &device)),
    );
    assert_eq!(logits.dims(), [1, config.num_classes]);
    let output = config.init_pretrain::<TestBackend>(&device).forward(
        input_ids,
        text_mask,
        VisualInput::Frames(frames),
        None,
    );
    assert_eq!(output.mlm_logits.dims(), [1, 4, 21128]);
    assert_eq!(output.itm_logits.dims(), [1, 1]);
}

/// Parameter names (reference naming) and PyTorch-layout shapes of a model.
fn reference_parameter_shapes<M: ModuleSnapshot<TestBackend>>(
    model: &M,
) -> BTreeMap<String, Vec<usize>> {
    let snapshots = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false);
    let remapper = KeyRemapper::from_patterns(BURN_TO_REFERENCE.to_vec()).unwrap();
    remapper
        .remap(snapshots)
        .0
        .into_iter()
        .map(|snapshot| (snapshot.full_path(), snapshot.shape.to_vec()))
        .collect()
}

#[test]
fn seed_models_have_the_reference_parameters() {
    let json = std::fs::read_to_string(fixture("seed_parameters.json")).unwrap();
    let reference: BTreeMap<String, BTreeMap<String, Vec<usize>>> =
        serde_json::from_str(&json).unwrap();
    let config = VideoModelConfig::seed();
    let device = Default::default();

    let classifier = config.init_classifier::<TestBackend>(&device);
    assert_eq!(
        reference_parameter_shapes(&classifier),
        reference["classifier"]
    );
    drop(classifier);

    let pretrain = config.init_pretrain::<TestBackend>(&device);
    assert_eq!(reference_parameter_shapes(&pretrain), reference["pretrain"]);
}
