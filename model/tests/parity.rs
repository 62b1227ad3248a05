//! Parity of the Burn models with the PyTorch reference (`scripts/model_reference.py`) on the
//! fixtures of `scripts/make_model_fixtures.py`: random weights, eval mode, Flex backend.

mod common;

use burn::prelude::*;
use common::{Io, TestBackend, assert_close, fixture, fixture_config};
use vidcls_model::bert::additive_attention_mask;
use vidcls_model::loader::{load_hf_bert, load_reference_weights};
use vidcls_model::{VideoClassifier, VideoPretrainModel, VisualInput};

fn classifier(checkpoint: &str) -> VideoClassifier<TestBackend> {
    let mut model = fixture_config().init_classifier(&Default::default());
    load_reference_weights(&mut model, fixture(checkpoint)).expect("classifier weights load");
    model
}

#[test]
fn swin_features_match_reference() {
    let model = classifier("classifier.safetensors");
    let mut io = Io::open();
    let features = model.encoder.visual_backbone.forward(io.float("frames"));
    assert_close("swin features", features, io.float("swin_features"));
}

#[test]
fn bert_hidden_states_and_pooler_match_transformers() {
    let mut model = fixture_config().init_classifier::<TestBackend>(&Default::default());
    load_hf_bert(&mut model, fixture("bert_hf_safetensors")).expect("HF BERT loads");
    let bert = &model.encoder.two_stream;
    let mut io = Io::open();
    let embeddings = bert.embeddings.forward(io.int("input_ids"));
    let mask = additive_attention_mask(io.float("text_mask"));
    let hidden = bert.text_encoder.forward(embeddings, Some(mask));
    let pooled = bert.pooler.forward(hidden.clone());
    assert_close("bert hidden states", hidden, io.float("bert_hidden"));
    assert_close("bert pooler", pooled, io.float("bert_pooled"));
}

#[test]
fn cross_modality_layer_matches_lxmert() {
    let model = classifier("classifier.safetensors");
    let mut io = Io::open();
    let (text, visual) = model.encoder.two_stream.cross_layers[0].forward(
        io.float("cross_text_in"),
        Some(additive_attention_mask(io.float("text_mask"))),
        io.float("cross_visual_in"),
        Some(additive_attention_mask(io.float("frame_mask"))),
    );
    assert_close("cross layer text", text, io.float("cross_text_out"));
    assert_close("cross layer visual", visual, io.float("cross_visual_out"));
}

#[test]
fn classifier_logits_match_reference_from_frames_and_features() {
    for checkpoint in ["classifier.safetensors", "classifier.pth"] {
        let model = classifier(checkpoint);
        let mut io = Io::open();
        let logits = model.forward(
            io.int("input_ids"),
            io.float("text_mask"),
            VisualInput::Frames(io.float("frames")),
            Some(io.float("frame_mask")),
        );
        assert_close(
            &format!("classifier logits ({checkpoint})"),
            logits,
            io.float("classifier_logits"),
        );
    }
    let model = classifier("classifier.safetensors");
    let mut io = Io::open();
    let logits = model.forward(
        io.int("input_ids"),
        io.float("text_mask"),
        VisualInput::Features(io.float("swin_features")),
        Some(io.float("frame_mask")),
    );
    assert_close(
        "classifier logits (features)",
        logits,
        io.float("classifier_logits"),
    );
}

#[test]
fn pretrain_logits_match_reference() {
    let mut model: VideoPretrainModel<TestBackend> =
        fixture_config().init_pretrain(&Default::default());
    load_reference_weights(&mut model, fixture("pretrain.safetensors"))
        .expect("pre-training weights load");
    let mut io = Io::open();
    let output = model.forward(
        io.int("input_ids"),
        io.float("text_mask"),
        VisualInput::Frames(io.float("frames")),
        None,
    );
    assert_close("mlm logits", output.mlm_logits, io.float("mlm_logits"));
    assert_close("itm logits", output.itm_logits, io.float("itm_logits"));
}

#[test]
fn autodiff_model_is_stochastic_in_training_and_matches_reference_when_valid() {
    use burn::backend::Autodiff;
    use burn::module::AutodiffModule;

    let mut model = fixture_config().init_classifier::<Autodiff<TestBackend>>(&Default::default());
    load_reference_weights(&mut model, fixture("classifier.safetensors")).expect("weights load");
    let mut io = Io::open();
    let (input_ids, text_mask, frames, frame_mask) = (
        io.int("input_ids"),
        io.float("text_mask"),
        io.float("frames"),
        io.float("frame_mask"),
    );

    let train_logits = |seed: u64| {
        TestBackend::seed(&Default::default(), seed);
        model
            .forward(
                Tensor::from_inner(input_ids.clone()),
                Tensor::from_inner(text_mask.clone()),
                VisualInput::Frames(Tensor::from_inner(frames.clone())),
                Some(Tensor::from_inner(frame_mask.clone())),
            )
            .inner()
    };
    let difference: f32 = (train_logits(1) - train_logits(2))
        .abs()
        .max()
        .into_scalar();
    assert!(difference > 1e-3, "dropout/drop path inactive in training");

    let logits = model.valid().forward(
        input_ids,
        text_mask,
        VisualInput::Frames(frames),
        Some(frame_mask),
    );
    assert_close("valid() logits", logits, io.float("classifier_logits"));
}
