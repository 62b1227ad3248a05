"""Writes the export round-trip fixtures of vidcls (tests/fixtures/model/export/).

The weights come from vidcls, not from PyTorch: vidcls's own random initialisation of a small
classifier and pre-training model (plus noise drawn by vidcls, see
model/examples/random_models.rs). `vidcls export` writes them with the reference's names; this
script loads the exports into scripts/model_reference.py's models with
`load_state_dict(strict=True)` and records their outputs (eval mode, float32):

- classifier/                  vidcls run directory (config.json, model.mpk) of the classifier,
                               as written by vidcls
- classifier.safetensors       `vidcls export --checkpoint classifier`: what the reference
                               classifier loaded
- pretrain.safetensors         `vidcls export` of the pre-training model (written by vidcls's
                               `save_pretrain_safetensors`; exporting it again changes no byte,
                               which this script checks): what the reference pre-training model
                               loaded, `encoder.cls.seq_relationship.*` included
- pretrain.pth                 the reference pre-training model's state dict after that load,
                               as a reference checkpoint
                               torch.save({"epoch": 0, "model_state_dict": sd, "mean_f1": 0.0})
- bert/config.json             HuggingFace BERT config of the models (the attention heads that
                               `vidcls export --bert-dir` needs for a reference checkpoint)
- io.safetensors               inputs (frames, input_ids, text_mask, frame_mask) and the
                               reference's outputs: classifier_logits (with the frame mask),
                               mlm_logits and itm_logits (without, as in pre-training)

Before loading, it checks what strict loading would not: the exported Swin buffers equal those
the reference computes itself, and the tied MLM decoder equals the word embeddings and MLM bias.

It builds and runs the vidcls binary and example with cargo (release).
Run with the project venv:  .venv/bin/python scripts/make_export_fixtures.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_reference as ref  # noqa: E402
from make_model_fixtures import contiguous, model_inputs, video_model_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "model" / "export"
SEED = 2022

BATCH, FRAMES, TEXT_LEN = 2, 3, 8

CONFIG = video_model_config(
    img_size=16, patch_size=2, embed_dim=8, depths=[2, 2], num_heads=[1, 2], window_size=4,
    vocab_size=50, hidden_size=16, num_attention_heads=2, intermediate_size=32, max_position_embeddings=16,
    text_layers=1, visual_layers=1, cross_layers=1, num_classes=5,
)


def cargo_run(*args: str | Path) -> None:
    subprocess.run(["cargo", "run", "--release", "--quiet", *map(str, args)], cwd=ROOT, check=True)


def vidcls_export(checkpoint: Path, output: Path, *extra: str | Path) -> None:
    cargo_run("--bin", "vidcls", "--", "export", "--checkpoint", checkpoint, *extra, "--output", output)


def load_strict(model: ref.VideoModel, path: Path) -> None:
    """Loads a vidcls export, after checking what strict loading would not: that the exported
    buffers are those the reference computes, and that tied tensors agree."""
    state_dict = load_file(path)
    own = model.state_dict()
    for name, buffer in model.named_buffers():
        if name in own:  # persistent buffers: the Swin's relative_position_index and attn_mask
            assert torch.equal(state_dict[name], buffer), f"{path.name}: buffer {name} differs"
    if model.pretrain:
        predictions = "encoder.cls.predictions."
        assert torch.equal(
            state_dict[predictions + "decoder.weight"], state_dict["encoder.bert.embeddings.word_embeddings.weight"]
        )
        assert torch.equal(state_dict[predictions + "decoder.bias"], state_dict[predictions + "bias"])
    assert sorted(state_dict) == sorted(own), f"{path.name}: {sorted(set(state_dict) ^ set(own))}"
    model.load_state_dict(state_dict, strict=True)


def write_vidcls_models(bert_dir: Path) -> None:
    """vidcls's random models, exported by `vidcls export`."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = tmp / "config.json"
        config.write_text(json.dumps(CONFIG, indent=2) + "\n")
        cargo_run("-p", "vidcls-model", "--example", "random_models", "--", config, tmp, str(SEED))
        shutil.copytree(tmp / "classifier", OUT / "classifier")
        vidcls_export(OUT / "classifier", OUT / "classifier.safetensors")
        vidcls_export(tmp / "pretrain.safetensors", OUT / "pretrain.safetensors", "--bert-dir", bert_dir)
        assert (tmp / "pretrain.safetensors").read_bytes() == (OUT / "pretrain.safetensors").read_bytes()


def main() -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(SEED)
    if OUT.exists():
        shutil.rmtree(OUT)
    bert_dir = OUT / "bert"
    bert_dir.mkdir(parents=True)
    bert_cfg = CONFIG["encoder"]["two_stream"]["bert"]
    hf_config = {"model_type": "bert", "hidden_act": "gelu", "pad_token_id": 0, **bert_cfg}
    (bert_dir / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
    write_vidcls_models(bert_dir)

    classifier = ref.VideoModel(CONFIG, pretrain=False).eval()
    load_strict(classifier, OUT / "classifier.safetensors")
    pretrain = ref.VideoModel(CONFIG, pretrain=True).eval()
    load_strict(pretrain, OUT / "pretrain.safetensors")

    inputs = model_inputs(CONFIG, generator, BATCH, FRAMES, TEXT_LEN)
    with torch.no_grad():
        classifier_logits = classifier(**inputs)
        mlm_logits, itm_logits = pretrain(inputs["input_ids"], inputs["text_mask"], frames=inputs["frames"])
    io = {
        **inputs,
        "classifier_logits": classifier_logits,
        "mlm_logits": mlm_logits,
        "itm_logits": itm_logits,
    }
    save_file(contiguous(io), OUT / "io.safetensors")
    torch.save(
        {"epoch": 0, "model_state_dict": contiguous(pretrain.state_dict()), "mean_f1": 0.0}, OUT / "pretrain.pth"
    )

    for name, logits in (("classifier", classifier_logits), ("mlm", mlm_logits), ("itm", itm_logits)):
        print(f"{name} logits: shape {list(logits.shape)}, std {logits.std().item():.3f}")
    total = sum(path.stat().st_size for path in OUT.rglob("*") if path.is_file())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
