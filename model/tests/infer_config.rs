//! Reference checkpoints read without a model at hand: configurations inferred from tensor
//! names and shapes, and the official Swin checkpoint loaded into a bare backbone.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::config::Config;
use burn::prelude::*;
use burn::tensor::Distribution;
use vidcls_model::loader::{
    LoadError, TensorShapes, infer_classifier_config, infer_pretrain_config, infer_swin_config,
    is_pretrain_state_dict, load_official_swin, load_official_swin_backbone,
    official_swin_tensor_shapes, reference_tensor_shapes,
};
use vidcls_model::{BertConfig, VideoModelConfig};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/model")
        .join(name)
}

fn fixture_config() -> VideoModelConfig {
    VideoModelConfig::load(fixture("config.json")).unwrap()
}

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap()
}

fn fixture_bert() -> BertConfig {
    BertConfig::load_hf(fixture("bert_hf_bin/config.json")).unwrap()
}

#[test]
fn fixture_checkpoints_give_the_fixture_config() {
    for name in ["classifier.pth", "classifier.safetensors"] {
        let shapes = reference_tensor_shapes(fixture(name)).unwrap();
        let config = infer_classifier_config(&shapes, Some(&fixture_bert())).unwrap();
        assert_eq!(json(&config), json(&fixture_config()), "{name}");
    }
}

#[test]
fn pretraining_checkpoints_give_the_fixture_encoder_config() {
    let shapes = reference_tensor_shapes(fixture("pretrain.safetensors")).unwrap();
    assert!(is_pretrain_state_dict(&shapes));
    let config = infer_pretrain_config(&shapes, Some(&fixture_bert())).unwrap();
    assert_eq!(json(&config.encoder), json(&fixture_config().encoder));

    let classifier = reference_tensor_shapes(fixture("classifier.safetensors")).unwrap();
    assert!(!is_pretrain_state_dict(&classifier));
    match infer_pretrain_config(&classifier, Some(&fixture_bert())) {
        Err(LoadError::Config(message)) => assert!(message.contains("newfc_itm_cls.weight")),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn seed_shapes_give_the_seed_config_without_hints() {
    let text = std::fs::read_to_string(fixture("seed_parameters.json")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    let shapes: TensorShapes = serde_json::from_value(all["classifier"].clone()).unwrap();
    let config = infer_classifier_config(&shapes, None).unwrap();
    assert_eq!(json(&config), json(&VideoModelConfig::seed()));
}

#[test]
fn official_swin_checkpoint_gives_the_backbone_config() {
    let shapes = official_swin_tensor_shapes(fixture("swin_official.pth")).unwrap();
    let swin = infer_swin_config(&shapes, "").unwrap();
    assert_eq!(json(&swin), json(&fixture_config().encoder.swin));
}

#[test]
fn pretraining_checkpoints_and_other_files_are_refused() {
    let shapes = reference_tensor_shapes(fixture("pretrain.safetensors")).unwrap();
    match infer_classifier_config(&shapes, Some(&fixture_bert())) {
        Err(LoadError::Config(message)) => assert!(message.contains("classifier.weight")),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    let not_a_checkpoint = fixture("config.json");
    match reference_tensor_shapes(&not_a_checkpoint) {
        Err(error @ LoadError::Read { .. }) => {
            assert!(error.to_string().contains("config.json"), "{error}")
        }
        other => panic!("expected a read error, got {other:?}"),
    }
    let renamed = tempfile::tempdir().unwrap();
    let path = renamed.path().join("config.safetensors");
    std::fs::copy(&not_a_checkpoint, &path).unwrap();
    assert!(matches!(
        reference_tensor_shapes(&path),
        Err(LoadError::Read { .. })
    ));
}

#[test]
fn heads_that_do_not_fit_the_hidden_size_are_an_error() {
    let shapes = reference_tensor_shapes(fixture("classifier.safetensors")).unwrap();
    // Hidden size 32 with no BERT configuration: 32 / 64 = 0 heads.
    assert!(matches!(
        infer_classifier_config(&shapes, None),
        Err(LoadError::Config(_))
    ));
    let mut bert = fixture_bert();
    bert.num_attention_heads = 5;
    assert!(matches!(
        infer_classifier_config(&shapes, Some(&bert)),
        Err(LoadError::Config(_))
    ));
    // A BERT configuration of another size is not the model's.
    let mut bert = fixture_bert();
    bert.hidden_size = 64;
    match infer_classifier_config(&shapes, Some(&bert)) {
        Err(LoadError::Config(message)) => assert!(message.contains("hidden size 64"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn official_swin_checkpoint_loads_into_a_bare_backbone() {
    let device = Default::default();
    let path = fixture("swin_official.pth");
    let mut swin = fixture_config().encoder.swin.init::<Flex>(&device);
    load_official_swin_backbone(&mut swin, &path).unwrap();
    let mut classifier = fixture_config().init_classifier::<Flex>(&device);
    load_official_swin(&mut classifier, &path).unwrap();

    let size = fixture_config().encoder.swin.img_size;
    let images = Tensor::<Flex, 4>::random([2, 3, size, size], Distribution::Default, &device);
    let bare = swin.forward_images(images.clone()).into_data();
    let within = classifier
        .encoder
        .visual_backbone
        .forward_images(images)
        .into_data();
    assert_eq!(bare, within);

    let mut wrong = VideoModelConfig::tiny().encoder.swin.init::<Flex>(&device);
    assert!(load_official_swin_backbone(&mut wrong, &path).is_err());
}
