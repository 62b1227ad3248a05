"""Writes the model parity fixtures of vidcls (tests/fixtures/model/).

Small random-weight models built by scripts/model_reference.py, saved with the reference's
state-dict names, with inputs and the reference's outputs (eval mode, float32):

- config.json                  vidcls `VideoModelConfig` of the fixture models
- classifier.safetensors       classifier state dict (Swin buffers included)
- classifier.pth               the same as a reference checkpoint
                               torch.save({"epoch": 0, "model_state_dict": sd, "mean_f1": 0.0})
- pretrain.safetensors         pre-training model state dict (tied decoder written out)
- swin_official.pth            the classifier's Swin as an official checkpoint {"model": sd}
                               (with a classification head)
- bert_hf_bin/                 the classifier's BERT as a HuggingFace dir: pytorch_model.bin with
                               `bert.` prefix, old LayerNorm gamma/beta names, cls.* heads and
                               one extra layer; config.json
- bert_hf_safetensors/         the same without prefix, heads and extra layer: model.safetensors;
                               config.json without layer_norm_eps
- io.safetensors               inputs and outputs (see `main`)
- seed_parameters.json         names and shapes of the parameters of the reference-size models
                               (vidcls `VideoModelConfig::seed()`), built without weights

Run with the project venv:  .venv/bin/python scripts/make_model_fixtures.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import BertModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_reference as ref  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "model"

BATCH, FRAMES, TEXT_LEN = 2, 3, 12

def video_model_config(
    *,
    img_size: int,
    patch_size: int,
    embed_dim: int,
    depths: list[int],
    num_heads: list[int],
    window_size: int,
    vocab_size: int,
    hidden_size: int,
    num_attention_heads: int,
    intermediate_size: int,
    max_position_embeddings: int,
    text_layers: int,
    visual_layers: int,
    cross_layers: int,
    num_classes: int,
) -> dict:
    """A vidcls `VideoModelConfig` as JSON, with the reference's other settings (3 channels,
    MLP ratio 4, stochastic depth 0.1, 2 token types, dropout 0.1, LayerNorm epsilon 1e-12,
    initializer range 0.02, classifier dropout 0.2)."""
    return {
        "encoder": {
            "swin": {
                "img_size": img_size,
                "patch_size": patch_size,
                "in_channels": 3,
                "embed_dim": embed_dim,
                "depths": depths,
                "num_heads": num_heads,
                "window_size": window_size,
                "mlp_ratio": 4.0,
                "drop_path_rate": 0.1,
            },
            "two_stream": {
                "bert": {
                    "vocab_size": vocab_size,
                    "hidden_size": hidden_size,
                    "num_hidden_layers": text_layers,
                    "num_attention_heads": num_attention_heads,
                    "intermediate_size": intermediate_size,
                    "max_position_embeddings": max_position_embeddings,
                    "type_vocab_size": 2,
                    "hidden_dropout_prob": 0.1,
                    "attention_probs_dropout_prob": 0.1,
                    "layer_norm_eps": 1e-12,
                    "initializer_range": 0.02,
                },
                "text_layers": text_layers,
                "visual_layers": visual_layers,
                "cross_layers": cross_layers,
            },
        },
        "num_classes": num_classes,
        "classifier_dropout": 0.2,
    }


CONFIG = video_model_config(
    img_size=32, patch_size=2, embed_dim=8, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4], window_size=4,
    vocab_size=100, hidden_size=32, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
    text_layers=2, visual_layers=1, cross_layers=2, num_classes=10,
)

SEED_CONFIG = video_model_config(
    img_size=224, patch_size=4, embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
    vocab_size=21128, hidden_size=768, num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512,
    text_layers=12, visual_layers=0, cross_layers=5, num_classes=200,
)


def write_seed_parameters() -> None:
    """Parameter names and shapes of the reference-size models (tied parameters once)."""
    shapes = {}
    with torch.device("meta"):
        for name, pretrain in (("classifier", False), ("pretrain", True)):
            model = ref.VideoModel(SEED_CONFIG, pretrain=pretrain)
            shapes[name] = {key: list(param.shape) for key, param in model.named_parameters()}
    lines = ",\n".join(
        f"  {json.dumps(model)}: {{\n"
        + ",\n".join(f"    {json.dumps(key)}: {json.dumps(shape)}" for key, shape in params.items())
        + "\n  }"
        for model, params in shapes.items()
    )
    (OUT / "seed_parameters.json").write_text("{\n" + lines + "\n}\n")


def randomize(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Random values everywhere, LayerNorms and biases included, so that any swapped or
    mis-mapped tensor changes the outputs."""
    layer_norm_scales = {
        id(module.weight) for module in model.modules() if isinstance(module, torch.nn.LayerNorm)
    }
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if id(param) in layer_norm_scales:
                param.copy_(1.0 + 0.2 * noise)
            elif param.ndim == 1:
                param.copy_(0.2 * noise)
            elif "relative_position_bias_table" in name:
                param.copy_(noise)
            else:
                param.copy_(noise / param[0].numel() ** 0.5)


def model_inputs(config: dict, generator: torch.Generator, batch: int, frames: int, text_len: int) -> dict:
    """Random inputs of a model of `config`, named as `ref.VideoModel.forward`'s arguments:
    frames, input_ids, text_mask, frame_mask (the second video's last 4 text positions and last
    frame slot are padding)."""
    img = config["encoder"]["swin"]["img_size"]
    vocab = config["encoder"]["two_stream"]["bert"]["vocab_size"]
    inputs = {
        "frames": torch.randn(batch, frames, 3, img, img, generator=generator),
        "input_ids": torch.randint(0, vocab, (batch, text_len), generator=generator),
        "text_mask": torch.ones(batch, text_len),
        "frame_mask": torch.ones(batch, frames),
    }
    inputs["text_mask"][1, -4:] = 0.0
    inputs["frame_mask"][1, -1] = 0.0
    return inputs


def contiguous(state_dict: dict) -> dict:
    return {key: value.detach().clone().contiguous() for key, value in state_dict.items()}


def save_official_swin(model, state_dict, head_classes, generator, path):
    """Saves the Swin backbone of `model` (its tensors in `state_dict`) as an official
    checkpoint `{"model": sd}`, with a random classification head of `head_classes`."""
    swin = {
        key.removeprefix("visual_backbone."): value
        for key, value in state_dict.items()
        if key.startswith("visual_backbone.")
    }
    features = model.visual_backbone.num_features
    swin["head.weight"] = torch.randn(head_classes, features, generator=generator)
    swin["head.bias"] = torch.randn(head_classes, generator=generator)
    torch.save({"model": swin}, path)


def check_swin_against_timm(swin: ref.SwinTransformer, frames: torch.Tensor) -> None:
    """Independent check of the official-layout Swin: timm's implementation with the same
    weights, converted by timm's own official-checkpoint filter."""
    from timm.models.swin_transformer import SwinTransformer, checkpoint_filter_fn

    cfg = CONFIG["encoder"]["swin"]
    timm_swin = SwinTransformer(
        img_size=cfg["img_size"], patch_size=cfg["patch_size"], in_chans=cfg["in_channels"], num_classes=0,
        embed_dim=cfg["embed_dim"], depths=cfg["depths"], num_heads=cfg["num_heads"],
        window_size=cfg["window_size"], mlp_ratio=cfg["mlp_ratio"], drop_path_rate=cfg["drop_path_rate"],
    ).eval()
    converted = checkpoint_filter_fn(contiguous(swin.state_dict()), timm_swin)
    missing, unexpected = timm_swin.load_state_dict(converted, strict=False)
    assert not unexpected and all("relative_position_index" in k or "attn_mask" in k for k in missing), (
        missing,
        unexpected,
    )
    with torch.no_grad():
        error = (timm_swin(frames) - swin(frames)).abs().max().item()
    assert error < 1e-5, f"official-layout Swin differs from timm by {error}"
    print(f"Swin matches timm (max abs diff {error:.2e})")


def hf_bert_state_dict(bert: ref.TwoStreamBert) -> dict:
    """The text part of the two-stream BERT under HuggingFace `BertModel` names."""
    return {
        key: value
        for key, value in contiguous(bert.state_dict()).items()
        if not key.startswith(("encoder.r_layers.", "encoder.x_layers."))
    }


def write_hf_dirs(bert_sd: dict, generator: torch.Generator) -> None:
    bert_cfg = dict(CONFIG["encoder"]["two_stream"]["bert"])
    hidden, vocab = bert_cfg["hidden_size"], bert_cfg["vocab_size"]
    extra_layer = {
        key.replace("encoder.layer.0.", "encoder.layer.2."): torch.randn(value.shape, generator=generator)
        for key, value in bert_sd.items()
        if key.startswith("encoder.layer.0.")
    }
    heads = {
        "cls.predictions.transform.dense.weight": torch.randn(hidden, hidden, generator=generator),
        "cls.predictions.transform.dense.bias": torch.randn(hidden, generator=generator),
        "cls.predictions.transform.LayerNorm.weight": torch.randn(hidden, generator=generator),
        "cls.predictions.transform.LayerNorm.bias": torch.randn(hidden, generator=generator),
        "cls.predictions.bias": torch.randn(vocab, generator=generator),
        "cls.predictions.decoder.weight": bert_sd["embeddings.word_embeddings.weight"].clone(),
        "cls.seq_relationship.weight": torch.randn(2, hidden, generator=generator),
        "cls.seq_relationship.bias": torch.randn(2, generator=generator),
    }

    def old_names(key: str) -> str:
        return key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")

    bin_dir = OUT / "bert_hf_bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    bin_sd = {old_names(f"bert.{key}"): value for key, value in {**bert_sd, **extra_layer}.items()}
    bin_sd.update({old_names(key): value for key, value in heads.items()})
    torch.save(bin_sd, bin_dir / "pytorch_model.bin")
    hf_config = {"architectures": ["BertForPreTraining"], "model_type": "bert", "hidden_act": "gelu",
                 "pad_token_id": 0, **bert_cfg, "num_hidden_layers": 3}
    (bin_dir / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")

    st_dir = OUT / "bert_hf_safetensors"
    st_dir.mkdir(parents=True, exist_ok=True)
    save_file(bert_sd, st_dir / "model.safetensors")
    hf_config = {"model_type": "bert", **bert_cfg}
    del hf_config["layer_norm_eps"]
    (st_dir / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")


def main() -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(2022)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")

    classifier = ref.VideoModel(CONFIG, pretrain=False).eval()
    randomize(classifier, generator)
    pretrain = ref.VideoModel(CONFIG, pretrain=True).eval()
    randomize(pretrain, generator)

    bert_cfg = CONFIG["encoder"]["two_stream"]["bert"]
    inputs = model_inputs(CONFIG, generator, BATCH, FRAMES, TEXT_LEN)
    frames, input_ids, text_mask, frame_mask = (
        inputs[name] for name in ("frames", "input_ids", "text_mask", "frame_mask")
    )
    hidden = bert_cfg["hidden_size"]
    cross_text_in = torch.randn(BATCH, TEXT_LEN, hidden, generator=generator)
    cross_visual_in = torch.randn(BATCH, FRAMES, hidden, generator=generator)

    check_swin_against_timm(classifier.visual_backbone, frames.flatten(0, 1))

    bert_sd = hf_bert_state_dict(classifier.encoder.bert)
    hf_config = ref.bert_config(bert_cfg)
    hf_bert = BertModel(hf_config).eval()
    hf_bert.load_state_dict(bert_sd, strict=True)

    with torch.no_grad():
        swin_features = classifier.frame_features(frames)
        bert_out = hf_bert(input_ids=input_ids, attention_mask=text_mask)
        cross_text_out, cross_visual_out = classifier.encoder.bert.encoder.x_layers[0](
            cross_text_in, ref.additive_mask(text_mask), cross_visual_in, ref.additive_mask(frame_mask)
        )
        classifier_logits = classifier(input_ids, text_mask, frames=frames, frame_mask=frame_mask)
        features_logits = classifier(input_ids, text_mask, features=swin_features, frame_mask=frame_mask)
        assert torch.allclose(classifier_logits, features_logits)
        mlm_logits, itm_logits = pretrain(input_ids, text_mask, frames=frames)

    io = {
        **inputs,
        "swin_features": swin_features,
        "bert_hidden": bert_out.last_hidden_state,
        "bert_pooled": bert_out.pooler_output,
        "cross_text_in": cross_text_in,
        "cross_visual_in": cross_visual_in,
        "cross_text_out": cross_text_out,
        "cross_visual_out": cross_visual_out,
        "classifier_logits": classifier_logits,
        "mlm_logits": mlm_logits,
        "itm_logits": itm_logits,
    }
    save_file(contiguous(io), OUT / "io.safetensors")

    classifier_sd = contiguous(classifier.state_dict())
    save_file(classifier_sd, OUT / "classifier.safetensors")
    torch.save({"epoch": 0, "model_state_dict": classifier_sd, "mean_f1": 0.0}, OUT / "classifier.pth")
    save_file(contiguous(pretrain.state_dict()), OUT / "pretrain.safetensors")

    save_official_swin(classifier, classifier_sd, 5, generator, OUT / "swin_official.pth")

    write_hf_dirs(bert_sd, generator)
    write_seed_parameters()

    total = sum(path.stat().st_size for path in OUT.rglob("*") if path.is_file())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
