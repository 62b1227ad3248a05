"""Writes the fine-tuning parity fixtures of vidcls (tests/fixtures/training/).

A tiny classifier (vidcls's tiny preset with a 100-token vocabulary, every dropout and
stochastic-depth probability 0, so that train mode is deterministic) takes fine-tuning steps
with scripts/train_reference.py (the reference's BertAdam / AdamW, lr schedules, label
smoothing, FGM / PGD and EMA) on one fixed batch:

- config.json                  vidcls `VideoModelConfig` of the model
- initial.safetensors          its state dict before training (reference names, Swin buffers
                               included: loads with strict=True)
- inputs.safetensors           the batch: frames [3, 2, 3, 32, 32], input_ids [3, 24] (i64),
                               text_mask [3, 24], frame_mask [3, 2], labels [3] (i64)
- cases.json                   list of cases: hyper-parameters, the lr and clean loss of every
                               step, `delta_l1` (sum |after - initial| per trainable parameter)
- <case>.safetensors           trainable parameters after the steps (a subset, see CHECKED)
- <case>.ema.safetensors       the EMA shadow of the same subset (cases with EMA)
- resample.json                labels, train indices and the resampled index list

Every case starts from initial.safetensors with fresh optimizer moments at schedule index
`start_step`. Running the script twice gives byte-identical files.

Run with the project venv:  .venv/bin/python scripts/make_train_fixtures.py
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_reference as ref  # noqa: E402
import train_reference as train  # noqa: E402
from make_model_fixtures import contiguous, video_model_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "training"
SEED = 2022

BATCH, FRAMES, TEXT_LEN, PADDING = 3, 2, 24, 6

CONFIG = video_model_config(
    img_size=32, patch_size=2, embed_dim=16, depths=[2, 2, 2, 2], num_heads=[2, 4, 8, 16], window_size=4,
    vocab_size=100, hidden_size=64, num_attention_heads=4, intermediate_size=256, max_position_embeddings=512,
    text_layers=2, visual_layers=0, cross_layers=1, num_classes=200,
)
CONFIG["encoder"]["swin"]["drop_path_rate"] = 0.0
CONFIG["encoder"]["two_stream"]["bert"]["hidden_dropout_prob"] = 0.0
CONFIG["encoder"]["two_stream"]["bert"]["attention_probs_dropout_prob"] = 0.0
CONFIG["classifier_dropout"] = 0.0

# The parameters written after training. All 856k would take 3.4 MB per file; this subset
# (~50k values) has every kind: the word embeddings (FGM/PGD), an embedding with zero-gradient
# rows (decay only), decayed and undecayed LayerNorm / norm weights, biases, attention, FFN,
# cross-attention, pooler, classifier, video_dense, relative position bias tables of a shifted,
# an unshifted and a window-clamped Swin block, patch merging, and a parameter that gets no
# gradient (the last cross layer's visual branch: left untouched, not even decayed).
# `delta_l1` in cases.json covers every parameter.
CHECKED = [
    "visual_backbone.patch_embed.proj.weight",
    "visual_backbone.patch_embed.proj.bias",
    "visual_backbone.patch_embed.norm.weight",
    "visual_backbone.patch_embed.norm.bias",
    "visual_backbone.layers.0.blocks.0.norm1.weight",
    "visual_backbone.layers.0.blocks.0.norm1.bias",
    "visual_backbone.layers.0.blocks.1.attn.relative_position_bias_table",
    "visual_backbone.layers.0.blocks.1.attn.qkv.weight",
    "visual_backbone.layers.0.blocks.1.attn.qkv.bias",
    "visual_backbone.layers.0.blocks.1.mlp.fc1.bias",
    "visual_backbone.layers.0.downsample.norm.weight",
    "visual_backbone.layers.0.downsample.reduction.weight",
    "visual_backbone.layers.2.blocks.1.attn.relative_position_bias_table",
    "visual_backbone.layers.2.blocks.1.norm2.weight",
    "visual_backbone.layers.3.blocks.1.attn.relative_position_bias_table",
    "visual_backbone.layers.3.blocks.1.mlp.fc2.bias",
    "visual_backbone.norm.weight",
    "visual_backbone.norm.bias",
    "video_dense.weight",
    "video_dense.bias",
    "encoder.bert.embeddings.word_embeddings.weight",
    "encoder.bert.embeddings.token_type_embeddings.weight",
    "encoder.bert.embeddings.LayerNorm.weight",
    "encoder.bert.embeddings.LayerNorm.bias",
    "encoder.bert.encoder.layer.0.attention.self.query.weight",
    "encoder.bert.encoder.layer.0.attention.self.key.bias",
    "encoder.bert.encoder.layer.1.intermediate.dense.bias",
    "encoder.bert.encoder.layer.1.output.LayerNorm.weight",
    "encoder.bert.encoder.layer.1.output.LayerNorm.bias",
    "encoder.bert.encoder.x_layers.0.visual_attention.att.value.weight",
    "encoder.bert.encoder.x_layers.0.visual_attention.output.LayerNorm.weight",
    "encoder.bert.encoder.x_layers.0.lang_self_att.output.dense.bias",
    "encoder.bert.encoder.x_layers.0.lang_inter.dense.bias",
    "encoder.bert.encoder.x_layers.0.lang_output.LayerNorm.weight",
    "encoder.bert.encoder.x_layers.0.visn_self_att.self.query.weight",
    "encoder.bert.encoder.x_layers.0.visn_output.LayerNorm.weight",
    "encoder.bert.pooler.dense.weight",
    "encoder.bert.pooler.dense.bias",
    "classifier.weight",
    "classifier.bias",
]

DECAYED = "visual_backbone.layers.0.blocks.0.norm1.weight"
UNDECAYED = "encoder.bert.embeddings.LayerNorm.weight"

T = train.TrainCase
CASES = {
    # both warm-ups: w(0.03) = 0.3, lambda(3) = 0.3
    "plain": T(lr=1e-3, total_steps=100, warmup_steps=10, warmup_ratio=0.1, start_step=3),
    "no_smoothing": T(lr=1e-3, total_steps=100, warmup_steps=10, warmup_ratio=0.1, start_step=3,
                      label_smoothing=0.0),
    # both decaying: w(0.5) = lambda(50) = 5/9
    "fgm": T(lr=3e-4, total_steps=100, warmup_steps=10, warmup_ratio=0.1, start_step=50, adversarial="fgm"),
    # w decaying (w(0.2) = 8/9), lambda warming up (lambda(20) = 0.5)
    "pgd": T(lr=2e-4, total_steps=100, warmup_steps=40, warmup_ratio=0.1, start_step=20, adversarial="pgd"),
    # steps of 0.6 leave the eps = 1 ball after two attacks: the projection acts
    "pgd_projected": T(lr=2e-4, total_steps=100, warmup_steps=40, warmup_ratio=0.1, start_step=20,
                       adversarial="pgd", pgd_alpha=0.6),
    # steps t = 0..3 of 8: lr factors 0, 0.25, 1, 25/36
    "multi_ema": T(lr=1e-4, total_steps=8, warmup_steps=2, warmup_ratio=0.25, start_step=0, steps=4,
                   adversarial="fgm", ema_decay=0.9),
    "decay": T(lr=3e-4, total_steps=100, warmup_steps=10, warmup_ratio=0.1, start_step=50, weight_decay=5.0),
    # lambda(2) = 1, lambda(3) = 7/8
    "adamw": T(lr=1e-4, total_steps=10, warmup_steps=2, start_step=2, steps=2, optimizer="adamw",
               weight_decay=0.5),
}


def initial_state(generator: torch.Generator) -> dict:
    """The model's own initialisation under a fixed seed, then noise (std 0.02) on the LayerNorm
    weights and biases and on all-zero parameters, so that none is trivially 1 or 0."""
    torch.manual_seed(SEED)
    model = ref.VideoModel(CONFIG, pretrain=False)
    layer_norms = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
    with torch.no_grad():
        for param in model.parameters():
            if id(param) in layer_norms or not param.any():
                param.add_(0.02 * torch.randn(param.shape, generator=generator))
    return contiguous(model.state_dict())


def make_inputs(generator: torch.Generator) -> dict:
    """The batch: the third video's last 6 text positions and the second video's last frame slot
    are padding (id 0 / zero frame, mask 0); labels are distinct."""
    img = CONFIG["encoder"]["swin"]["img_size"]
    vocab = CONFIG["encoder"]["two_stream"]["bert"]["vocab_size"]
    classes = CONFIG["num_classes"]
    inputs = {
        "frames": torch.randn(BATCH, FRAMES, 3, img, img, generator=generator),
        "input_ids": torch.randint(1, vocab, (BATCH, TEXT_LEN), generator=generator),
        "text_mask": torch.ones(BATCH, TEXT_LEN),
        "frame_mask": torch.ones(BATCH, FRAMES),
        "labels": torch.randperm(classes, generator=generator)[:BATCH],
    }
    inputs["input_ids"][2, -PADDING:] = 0
    inputs["text_mask"][2, -PADDING:] = 0.0
    inputs["frames"][1, -1] = 0.0
    inputs["frame_mask"][1, -1] = 0.0
    return inputs


def max_diff(a: dict, b: dict) -> float:
    return max((a[name] - b[name]).abs().max().item() for name in a)


def write_resample() -> None:
    """Category counts 99, 100, 499, 500, 999, 1000 (5, 3, 3, 2, 2, 1 repetitions), shuffled;
    60 train indices (unsorted) with every class represented."""
    generator = torch.Generator().manual_seed(SEED)
    counts = {3: 99, 0: 100, 5: 499, 1: 500, 4: 999, 2: 1000}
    labels = [label for label, count in counts.items() for _ in range(count)]
    labels = [labels[i] for i in torch.randperm(len(labels), generator=generator).tolist()]
    train_indices = []
    for label in counts:
        of_label = [i for i, value in enumerate(labels) if value == label]
        train_indices += of_label[:10]
    train_indices = [train_indices[i] for i in torch.randperm(len(train_indices), generator=generator).tolist()]
    expected = train.resample(labels, train_indices)
    assert len(expected) == 10 * (5 + 3 + 3 + 2 + 2 + 1)
    data = {"labels": labels, "train": train_indices, "expected": expected}
    (OUT / "resample.json").write_text(json.dumps(data, separators=(",", ":")) + "\n")


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # fixed reduction order
    generator = torch.Generator().manual_seed(SEED)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    (OUT / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")

    initial = initial_state(generator)
    save_file(initial, OUT / "initial.safetensors")
    inputs = make_inputs(generator)
    save_file(contiguous(inputs), OUT / "inputs.safetensors")
    initial_params = train.trainable_state(train.build_model(CONFIG, initial))
    assert all(name in initial_params for name in CHECKED)

    def run(case: train.TrainCase) -> dict:
        return train.run_steps(CONFIG, copy.deepcopy(initial), inputs, case)

    cases = []
    results = {}
    for name, case in CASES.items():
        result = run(case)
        results[name] = result
        weights = result["weights"]
        entry = {"name": name, **asdict(case), "lrs": result["lrs"], "losses": result["losses"]}
        entry["delta_l1"] = {
            key: (weights[key].double() - initial_params[key].double()).abs().sum().item() for key in weights
        }
        save_file({key: weights[key] for key in CHECKED}, OUT / f"{name}.safetensors")
        if result["ema"] is not None:
            save_file({key: result["ema"][key] for key in CHECKED}, OUT / f"{name}.ema.safetensors")
        if name == "decay":
            entry["decayed_param"] = DECAYED
            entry["undecayed_param"] = UNDECAYED
        cases.append(entry)
        moved = max_diff(weights, initial_params)
        losses = ", ".join(f"{loss:.6f}" for loss in result["losses"])
        lrs = ", ".join(f"{lr:.3e}" for lr in result["lrs"])
        print(f"{name:13s} max |after - initial| {moved:.3e}  losses [{losses}]  lrs [{lrs}]")

    # Sanity checks: what each case is meant to show is visible.
    multi = results["multi_ema"]
    assert max_diff(multi["ema"], multi["weights"]) > 1e-5, "EMA equals the raw weights"
    assert max_diff(multi["ema"], initial_params) > 1e-6, "EMA did not move"
    for name in ("fgm", "pgd"):
        clean = run(replace(CASES[name], adversarial="none"))
        difference = max_diff(results[name]["weights"], clean["weights"])
        print(f"{name}: max |with attack - without| {difference:.3e}")
        assert difference > 1e-5, f"{name} changes nothing"
        assert clean["losses"] == results[name]["losses"], "the clean loss depends on the attack"
    unprojected = run(replace(CASES["pgd_projected"], pgd_eps=100.0))["weights"]
    difference = max_diff(results["pgd_projected"]["weights"], unprojected)
    print(f"pgd_projected: max |projected - unprojected| {difference:.3e}")
    assert difference > 1e-5, "the PGD projection changes nothing"
    no_decay = run(replace(CASES["decay"], weight_decay=0.0))["weights"]
    decayed = results["decay"]["weights"]
    difference = (decayed[DECAYED] - no_decay[DECAYED]).abs().max().item()
    print(f"decay: {DECAYED} differs from the no-decay update by {difference:.3e}")
    assert difference > 1e-5
    assert torch.equal(decayed[UNDECAYED], no_decay[UNDECAYED]), f"{UNDECAYED} was decayed"
    assert not torch.equal(decayed[UNDECAYED], initial_params[UNDECAYED])
    untouched = [key for key, value in cases[0]["delta_l1"].items() if value == 0.0]
    print(f"parameters without gradient (untouched): {len(untouched)}, e.g. {untouched[:2]}")
    assert "encoder.bert.encoder.x_layers.0.visn_self_att.self.query.weight" in untouched

    (OUT / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    write_resample()

    total = sum(path.stat().st_size for path in OUT.rglob("*") if path.is_file())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
