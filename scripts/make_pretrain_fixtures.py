"""Writes the pre-training parity fixtures of vidcls (tests/fixtures/pretraining/).

The reference's pre-training pieces in PyTorch (REFERENCE.md, "Pre-training"), as the WBDC 2022
baselines write them: `MaskLM.torch_mask_tokens` (HuggingFace's MLM masking), `ShuffleVideo`
(the reversed-half video-text pairs) and the loss `L = mlm + 0.3 * itm`, on the pre-training
model of scripts/model_reference.py, with scripts/train_reference.py's BertAdam and schedule:

- masking.json       the reference masking applied DRAWS times to a fixed id matrix with special
                     tokens: counts of chosen, [MASK], random and unchanged tokens, and of chosen
                     special tokens (none)
- itm.json           the ITM labels of batches of 1 to 6 videos
- config.json        vidcls `VideoModelConfig` of the model (vidcls's tiny preset with a 100-token
                     vocabulary, every dropout and stochastic-depth probability 0)
- initial.safetensors  the pre-training state dict before training (reference names, Swin
                     buffers and tied decoder included: loads with strict=True)
- inputs.safetensors the batch (5 videos: an odd one, whose middle video of the second half
                     keeps its frames): frames [5, 2, 3, 32, 32], input_ids [5, 24] (i64),
                     text_mask [5, 24], and one fixed masking: masked_ids and mlm_labels
                     ([5, 24] i64, -100 where not chosen)
- steps.json         hyper-parameters, and per step (one) the lr and the total, MLM and ITM losses;
                     `delta_l1` (sum |after - initial| per parameter, Swin included: 0)
- after.safetensors  all trainable parameters after the steps
- keys.json          the state-dict keys of the reference's pre-training model with the tiny
                     preset's layers (what a vidcls export must have for a strict load)

Run with the project venv:  .venv/bin/python scripts/make_pretrain_fixtures.py
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_reference as ref  # noqa: E402
import train_reference as train  # noqa: E402
from make_model_fixtures import contiguous  # noqa: E402
from make_train_fixtures import CONFIG  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "pretraining"
SEED = 2022

# Special tokens of the fixtures' vocabulary (ids of a BERT vocab.txt in this order).
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = [PAD, UNK, CLS, SEP, MASK]
VOCAB = CONFIG["encoder"]["two_stream"]["bert"]["vocab_size"]
BATCH, FRAMES, TEXT_LEN = 5, 2, 24
DRAWS = 2000
ITM_WEIGHT = 0.3
STEPS = dict(lr=3e-4, total_steps=100, warmup_steps=10, warmup_ratio=0.1, start_step=50, steps=1)


def torch_mask_tokens(inputs: torch.Tensor, mlm_probability: float = 0.15):
    """The baselines' `MaskLM.torch_mask_tokens` (HuggingFace's DataCollatorForLanguageModeling)
    with `get_special_tokens_mask(already_has_special_tokens=True)`: every special id is
    excluded."""
    inputs = inputs.clone()
    labels = inputs.clone()
    probability_matrix = torch.full(labels.shape, mlm_probability)
    special_tokens_mask = torch.isin(labels, torch.tensor(SPECIAL))
    probability_matrix.masked_fill_(special_tokens_mask, value=0.0)
    masked_indices = torch.bernoulli(probability_matrix).bool()
    labels[~masked_indices] = -100
    indices_replaced = torch.bernoulli(torch.full(labels.shape, 0.8)).bool() & masked_indices
    inputs[indices_replaced] = MASK
    indices_random = torch.bernoulli(torch.full(labels.shape, 0.5)).bool() & masked_indices & ~indices_replaced
    random_words = torch.randint(VOCAB, labels.shape, dtype=torch.long)
    inputs[indices_random] = random_words[indices_random]
    return inputs, labels


def shuffle_video(video_feature: torch.Tensor):
    """The baselines' `ShuffleVideo`: the first half keeps its frames, the second half takes
    them in reversed order; label 1 where a video kept its own."""
    bs = video_feature.size()[0]
    shuf_index = torch.tensor(list(range(bs // 2)) + list(range(bs // 2, bs))[::-1])
    label = (torch.arange(bs) == shuf_index).float()
    return video_feature[shuf_index], label


def text_ids(generator: torch.Generator) -> torch.Tensor:
    """[5, 24] ids in the reference's layout: [CLS] ... [SEP] ... [SEP] with [PAD] runs, an
    [UNK] and a [MASK] among ordinary ids."""
    ids = torch.randint(len(SPECIAL), VOCAB, (BATCH, TEXT_LEN), generator=generator)
    ids[:, 0] = CLS
    ids[:, 9] = SEP
    ids[:, TEXT_LEN - 1] = SEP
    ids[:, 10:13] = CLS  # a segment's own [CLS] and padding in the middle, as the layout has
    ids[:, 6:9] = PAD
    ids[1, 4] = UNK
    ids[2, 5] = MASK
    ids[4, 14:TEXT_LEN - 1] = PAD
    return ids


def write_masking(ids: torch.Tensor) -> None:
    special = torch.isin(ids, torch.tensor(SPECIAL))
    counts = dict(chosen=0, masked=0, random=0, unchanged=0, special_chosen=0)
    torch.manual_seed(SEED)
    for _ in range(DRAWS):
        masked, labels = torch_mask_tokens(ids)
        chosen = labels != -100
        counts["chosen"] += int(chosen.sum())
        counts["special_chosen"] += int((chosen & special).sum())
        counts["masked"] += int((chosen & (masked == MASK)).sum())
        counts["unchanged"] += int((chosen & (masked == ids)).sum())
        counts["random"] += int((chosen & (masked != MASK) & (masked != ids)).sum())
    data = {
        "special": dict(pad=PAD, unk=UNK, cls=CLS, sep=SEP, mask=MASK),
        "vocab_size": VOCAB,
        "probability": 0.15,
        "draws": DRAWS,
        "input_ids": ids.tolist(),
        "candidates": int((~special).sum()) * DRAWS,
        "counts": counts,
    }
    (OUT / "masking.json").write_text(json.dumps(data) + "\n")
    print(f"masking: {counts} of {data['candidates']} candidates")


def write_itm() -> None:
    labels = {str(b): shuffle_video(torch.zeros(b, 1))[1].tolist() for b in range(1, 7)}
    (OUT / "itm.json").write_text(json.dumps(labels) + "\n")
    print(f"itm labels: {labels}")


def initial_state(generator: torch.Generator) -> dict:
    """The model's own initialisation, then noise (std 0.02) on LayerNorm parameters and
    all-zero parameters, so that none is trivially 1 or 0."""
    torch.manual_seed(SEED)
    model = ref.VideoModel(CONFIG, pretrain=True)
    layer_norms = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    with torch.no_grad():
        for param in model.parameters():
            if id(param) in layer_norms or not param.any():
                param.add_(0.02 * torch.randn(param.shape, generator=generator))
    return contiguous(model.state_dict())


def pretrain_loss(model, batch) -> tuple[torch.Tensor, float, float]:
    """The reference's pre-training forward: Swin frozen (no gradient), the second half's frames
    swapped, no frame mask, L = mlm + 0.3 itm."""
    with torch.no_grad():
        features = model.frame_features(batch["frames"])
    features, itm_labels = shuffle_video(features)
    text, _, pooled = model.encoder.bert(batch["masked_ids"], batch["text_mask"], model.video_dense(features), None)
    mlm_logits = model.encoder.cls.predictions(text)
    mlm = nn.CrossEntropyLoss()(mlm_logits.view(-1, VOCAB), batch["mlm_labels"].view(-1))
    itm = nn.BCEWithLogitsLoss()(model.newfc_itm_cls(pooled).view(-1), itm_labels)
    return mlm + ITM_WEIGHT * itm, mlm.item(), itm.item()


def main() -> None:
    torch.set_num_threads(1)  # fixed reduction order
    generator = torch.Generator().manual_seed(SEED)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)

    ids = text_ids(generator)
    write_masking(ids)
    write_itm()

    (OUT / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    initial = initial_state(generator)
    save_file(initial, OUT / "initial.safetensors")
    keys = sorted(ref.VideoModel(CONFIG, pretrain=True).state_dict().keys())
    (OUT / "keys.json").write_text(json.dumps(keys, indent=0) + "\n")

    torch.manual_seed(SEED + 1)
    masked_ids, mlm_labels = torch_mask_tokens(ids)
    img = CONFIG["encoder"]["swin"]["img_size"]
    batch = {
        "frames": torch.randn(BATCH, FRAMES, 3, img, img, generator=generator),
        "input_ids": ids,
        "text_mask": (ids != PAD).float(),
        "masked_ids": masked_ids,
        "mlm_labels": mlm_labels,
    }
    batch["frames"][3, -1] = 0.0  # a padding frame slot (attended: no frame mask)
    save_file(contiguous(batch), OUT / "inputs.safetensors")
    chosen = int((mlm_labels != -100).sum())
    assert chosen > 5 and (masked_ids == MASK).any() and ((masked_ids != MASK) & (masked_ids != ids)).any()

    model = ref.VideoModel(CONFIG, pretrain=True)
    model.load_state_dict(initial, strict=True)
    model.train()
    for param in model.visual_backbone.parameters():
        param.requires_grad_(False)
    case = train.TrainCase(**STEPS)
    optimizer = train.BertAdam(train.param_groups(model, 0.01), lr=case.lr, warmup=case.warmup_ratio,
                               t_total=case.total_steps, start_step=case.start_step)
    for group in optimizer.param_groups:
        group["initial_lr"] = case.lr
    scheduler = train.get_linear_schedule_with_warmup(optimizer, case.warmup_steps, case.total_steps,
                                                      last_epoch=case.start_step - 1)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    steps = []
    for index in range(case.steps):
        loss, mlm, itm = pretrain_loss(model, batch)
        loss.backward()
        optimizer.step()
        lr = optimizer.last_lr
        assert math.isclose(lr, case.expected_lr(case.start_step + index), rel_tol=1e-12)
        optimizer.zero_grad()
        scheduler.step()
        steps.append({"lr": lr, "loss": loss.item(), "mlm_loss": mlm, "itm_loss": itm})
        print(f"step {index}: lr {lr:.3e} loss {loss.item():.6f} (mlm {mlm:.6f}, itm {itm:.6f})")
    after = {name: p.detach().clone().contiguous() for name, p in model.named_parameters()}
    delta = {name: (after[name].double() - before[name].double()).abs().sum().item() for name in after}
    assert all(delta[n] == 0.0 for n in delta if n.startswith("visual_backbone.")), "Swin moved"
    assert delta["newfc_itm_cls.weight"] > 0 and delta["encoder.cls.predictions.bias"] > 0
    assert delta["encoder.cls.seq_relationship.weight"] == 0.0
    save_file(after, OUT / "after.safetensors")
    (OUT / "steps.json").write_text(json.dumps({**STEPS, "itm_weight": ITM_WEIGHT, "chosen": chosen,
                                                "steps_taken": steps, "delta_l1": delta}, indent=1) + "\n")
    total = sum(path.stat().st_size for path in OUT.rglob("*") if path.is_file())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
