"""Train vidcls's `tiny` architecture in PyTorch for a fixed time (the other side of a
learning-quality benchmark against `vidcls finetune --preset tiny`).

    .venv/bin/python scripts/train_tiny_reference.py --data /tmp/synth --minutes 10 --out result.csv

Data (competition layout, as `vidcls synth` writes it): `annotations/{labeled,test}.json`,
`zip_frames/{labeled,test}/<id[-3:]>/<id>.zip`, `bert/vocab.txt`, `test_ground_truth.csv`.

What it reproduces of vidcls's tiny preset (training/src/config.rs `TrainingConfig::tiny()` and
`Preset::model`):

- text: reference_pipeline.py's three segments (title + keywords, ocr, asr), each tokenized by the
  slow `BertTokenizer` over `bert/vocab.txt` without special tokens and cut to 126 ids, in vidcls's
  COMPACT layout (datasets/src/tokenizer.rs `compact_layout`): `[CLS]` + each segment followed by
  `[SEP]`; longer than `--max-text-len` (192): cut to 191 ids and `[SEP]` appended; attention
  mask 1 everywhere; each batch padded with `[PAD]` (mask 0) to its longest text;
- frames: reference_pipeline.py's frame pipeline (selection, Pillow decode + RGB, Resize(256),
  CenterCrop(224), ToTensor + Normalize) into 8 slots, then 7x7 block averages to 32 x 32
  (`avg_pool2d`, what datasets/src/visual.rs `downscaled(32)` computes); as vidcls does, a missing
  zip, an empty zip or an undecodable frame leaves its slots zero with frame mask 0 (the reference
  pipeline would raise), zips are also looked for directly in the split's folder, and
  directory entries are skipped;
- model: model_reference.py's `VideoModel(cfg, pretrain=False)` with
  `VideoModelConfig::tiny()` (micro Swin: 32 px, patch 2, embed 16, depths 2-2-2-2, heads
  2-4-8-16, window 4; BERT hidden 64, 4 heads, FFN 256, 512 positions, 2 text layers, 0 visual
  layers, 1 cross layer, 200 classes), the vocabulary size of the tokenizer, attention-probability
  dropout 0 (as `Preset::model`), hidden dropout 0.1, stochastic depth 0.1, classifier dropout 0.2;
  the frame mask is fed to the classifier. Initialisation (`--init vidcls`, the default) as
  vidcls's: every Linear and Embedding of the two-stream BERT (embeddings, text and cross layers,
  pooler) N(0, 0.02) with zero biases, LayerNorms 1/0, and PyTorch's defaults elsewhere (Swin,
  `video_dense`, classifier: the same Kaiming-uniform bounds as Burn's default `LinearConfig`);
  `--init pytorch` keeps PyTorch's defaults everywhere (Embeddings N(0, 1));
- recipe: train_reference.py's `Trainer` (BertAdam without bias correction, lr * lambda(t) *
  w(t/T) with T = steps per epoch * epochs, no decay for biases / LayerNorm weights, optional
  FGM/PGD on the word embeddings, EMA, label-smoothed cross-entropy), with the tiny preset's
  values: batch 8, lr 1e-3, weight decay 0.01, warm-up 20 steps, warm-up ratio 0.05, 6 epochs,
  no adversarial pass (`--adversarial fgm` for the reference's), EMA 0.95, label smoothing 0.1, no
  resampling (`--resample` for the reference's), shuffled every epoch (`--no-shuffle`); 10% of
  the labeled videos held out for validation by the quota rule of datasets/src/split.rs
  `stratified_split` (per-class share by largest remainders, every class keeps one training
  video), the members drawn by numpy's generator (so not the same videos as vidcls's split).

Run: all labeled and test videos are preprocessed into memory first (`--workers` processes; not
part of the budget; reported as `preprocess_seconds`), then training runs until `--minutes` of
wall clock are spent (validation included) or the planned epochs are done. At each epoch end the
EMA weights are validated (mean_f1 on the validation split) and the best kept; when the budget
ends inside an epoch, the EMA weights of that partial epoch are validated too. The best EMA
weights predict the test split, written to `--out` (`id,category_id` lines, annotation order).
Prints one JSON line: the seven test numbers of reference_pipeline.evaluate (`mean_f1` ...),
`val_mean_f1` (best), `epochs_done` (full epochs), `steps`, `stopped` ("epochs", "max_steps" or
"budget"), `train_seconds` (the training loop, validations included), `validation_seconds`,
`preprocess_seconds`, `preprocess_videos_per_s`, `videos_per_s` (training videos per second of
optimizer steps, validation excluded), `threads`, and the split sizes. Progress goes to stderr.
Deterministic for a seed and a thread count (`torch.manual_seed(--seed)`, default 2022).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import multiprocessing
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_reference as ref  # noqa: E402
import train_reference as train  # noqa: E402
from make_model_fixtures import video_model_config  # noqa: E402
from reference_pipeline import (  # noqa: E402
    MAX_FRAMES,
    RESIZE_CROP,
    SEGMENT_LEN,
    TO_TENSOR_NORMALIZE,
    evaluate,
    load_competition_dataset,
    load_tokenizer,
    select_frames,
    text_segments,
)

ROOT = Path(__file__).resolve().parent.parent
CATEGORY_IDS = ROOT / "datasets" / "src" / "category_ids.txt"
CROP = 224
FRAME_SIDE = 32  # the tiny model's frames (datasets/src/visual.rs `downscaled(32)`)


def tiny_config(vocab_size: int) -> dict:
    """`Preset::Tiny.model(vocab_size)`: `VideoModelConfig::tiny()` with the tokenizer's
    vocabulary and no attention-probability dropout."""
    config = video_model_config(
        img_size=FRAME_SIDE, patch_size=2, embed_dim=16, depths=[2, 2, 2, 2], num_heads=[2, 4, 8, 16],
        window_size=4, vocab_size=vocab_size, hidden_size=64, num_attention_heads=4, intermediate_size=256,
        max_position_embeddings=512, text_layers=2, visual_layers=0, cross_layers=1, num_classes=200,
    )
    config["encoder"]["two_stream"]["bert"]["attention_probs_dropout_prob"] = 0.0
    return config


def set_dropout(config: dict, probability: float) -> None:
    """`VideoModelConfig::set_dropout`: every dropout and the stochastic depth rate."""
    bert = config["encoder"]["two_stream"]["bert"]
    bert["hidden_dropout_prob"] = probability
    bert["attention_probs_dropout_prob"] = probability
    config["encoder"]["swin"]["drop_path_rate"] = probability
    config["classifier_dropout"] = probability


def init_like_vidcls(model: ref.VideoModel, std: float) -> None:
    """vidcls's initialisation: N(0, std) for every Linear and Embedding of the two-stream BERT
    (zero biases); LayerNorms and everything outside `encoder` keep PyTorch's defaults."""
    for module in model.encoder.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)


# --------------------------------------------------------------------------------------------
# Preprocessing (one video -> compact ids, 8 x 3 x 32 x 32 frames, frame mask)
# --------------------------------------------------------------------------------------------

_TOKENIZER = None
_MAX_TEXT_LEN = 192


def _init_worker(bert_dir: str, max_text_len: int, threads: int) -> None:
    global _TOKENIZER, _MAX_TEXT_LEN
    torch.set_num_threads(threads)
    _TOKENIZER = load_tokenizer(bert_dir)
    _MAX_TEXT_LEN = max_text_len


def compact_ids(tokenizer, segments: dict, max_len: int) -> list[int]:
    """datasets/src/tokenizer.rs `compact_layout`."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids = [cls]
    for key in ("title_segment", "ocr_segment", "asr_segment"):
        tokens = tokenizer.encode(segments[key], add_special_tokens=False)
        ids.extend(tokens[:SEGMENT_LEN - 2])
        ids.append(sep)
    if len(ids) > max_len:
        ids = ids[:max_len - 1] + [sep]
    return ids


def frames_zip(frames_dir: str, video_id: str) -> str | None:
    """datasets/src/frames.rs `frames_zip_path`: `<dir>/<id[-3:]>/<id>.zip`, else `<dir>/<id>.zip`."""
    for path in (os.path.join(frames_dir, video_id[-3:], video_id + ".zip"),
                 os.path.join(frames_dir, video_id + ".zip")):
        if os.path.isfile(path):
            return path
    return None


def load_small_frames(frames_dir: str, video_id: str, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference frame pipeline into `max_frames` slots of 224 px, block-averaged to 32 px.
    Problems leave slots empty (zeros, mask 0), as vidcls's loader does."""
    frames = torch.zeros((max_frames, 3, CROP, CROP), dtype=torch.float32)
    mask = np.zeros(max_frames, dtype=np.float32)
    path = frames_zip(frames_dir, video_id)
    if path is not None:
        try:
            with zipfile.ZipFile(path) as handle:
                names = sorted(name for name in handle.namelist() if not name.endswith("/"))
                for slot, index in enumerate(select_frames(len(names), max_frames)):
                    try:
                        image = Image.open(io.BytesIO(handle.read(names[index]))).convert("RGB")
                        frames[slot] = TO_TENSOR_NORMALIZE(RESIZE_CROP(image))
                        mask[slot] = 1.0
                    except Exception:  # noqa: BLE001 (an undecodable frame: empty slot)
                        pass
        except (zipfile.BadZipFile, OSError):
            pass
    small = F.avg_pool2d(frames, CROP // FRAME_SIDE)
    return small.numpy(), mask


def prepare_video(job: tuple[dict, str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    video, frames_dir, max_frames = job
    segments = text_segments(video.get("title", ""), video.get("asr", ""), video.get("ocr", []))
    ids = np.asarray(compact_ids(_TOKENIZER, segments, _MAX_TEXT_LEN), dtype=np.int64)
    frames, mask = load_small_frames(frames_dir, video["id"], max_frames)
    return ids, frames, mask


class Prepared:
    """One split in memory: ids per video, frames [N, F, 3, 32, 32], frame mask [N, F]."""

    def __init__(self, results: list[tuple[np.ndarray, np.ndarray, np.ndarray]]):
        self.ids = [torch.from_numpy(ids) for ids, _, _ in results]
        self.frames = torch.from_numpy(np.stack([frames for _, frames, _ in results]))
        self.frame_mask = torch.from_numpy(np.stack([mask for _, _, mask in results]))

    def batch(self, indices: list[int], pad_id: int) -> dict:
        length = max(len(self.ids[i]) for i in indices)
        input_ids = torch.full((len(indices), length), pad_id, dtype=torch.long)
        text_mask = torch.zeros((len(indices), length), dtype=torch.float32)
        for row, index in enumerate(indices):
            ids = self.ids[index]
            input_ids[row, :len(ids)] = ids
            text_mask[row, :len(ids)] = 1.0
        return {"input_ids": input_ids, "text_mask": text_mask, "frames": self.frames[indices],
                "frame_mask": self.frame_mask[indices]}


def preprocess(splits: dict, data: str, bert_dir: str, args) -> dict:
    jobs = {split: [(video, os.path.join(data, "zip_frames", split), args.max_frames) for video in videos]
            for split, videos in splits.items()}
    flat = [job for split in splits for job in jobs[split]]
    if args.workers <= 1:
        _init_worker(bert_dir, args.max_text_len, torch.get_num_threads())
        results = [prepare_video(job) for job in flat]
    else:
        context = multiprocessing.get_context("fork")
        with context.Pool(args.workers, initializer=_init_worker,
                          initargs=(bert_dir, args.max_text_len, 1)) as pool:
            results = list(pool.imap(prepare_video, flat, chunksize=4))
    out, start = {}, 0
    for split in splits:
        out[split] = Prepared(results[start:start + len(jobs[split])])
        start += len(jobs[split])
    return out


# --------------------------------------------------------------------------------------------
# Split, evaluation
# --------------------------------------------------------------------------------------------


def stratified_split(labels: list[int], ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """datasets/src/split.rs `stratified_split`'s quotas (round(ratio * n) videos: each class's
    floor share, the rest to the largest remainders, never a class's last video), members drawn
    with numpy's generator. Returns (train, validation), ascending."""
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    classes = sorted(by_class)
    target = int(math.floor(ratio * len(labels) + 0.5))
    shares = {c: ratio * len(by_class[c]) for c in classes}
    cap = {c: max(len(by_class[c]) - 1, 0) for c in classes}
    quota = {c: min(int(math.floor(shares[c])), cap[c]) for c in classes}
    order = sorted(classes, key=lambda c: (-(shares[c] - math.floor(shares[c])), c))
    missing = max(target - sum(quota.values()), 0)
    for class_ in (order * 2):
        if missing == 0:
            break
        if quota[class_] < cap[class_]:
            quota[class_] += 1
            missing -= 1
    rng = np.random.default_rng(seed)
    train_idx, validation = [], []
    for class_ in classes:
        members = list(rng.permutation(by_class[class_]))
        validation.extend(int(i) for i in members[:quota[class_]])
        train_idx.extend(int(i) for i in members[quota[class_]:])
    return sorted(train_idx), sorted(validation)


@torch.inference_mode()
def predict(model: nn.Module, data: Prepared, indices: list[int], batch_size: int, pad_id: int) -> list[int]:
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(indices), batch_size):
        batch = data.batch(indices[start:start + batch_size], pad_id)
        logits = model(batch["input_ids"], batch["text_mask"], frames=batch["frames"],
                       frame_mask=batch["frame_mask"])
        out.extend(logits.argmax(dim=1).tolist())
    model.train(was_training)
    return out


class SwappedWeights:
    """Context manager: the model's trainable parameters replaced by `weights` (e.g. the EMA
    shadow) inside the block, restored after."""

    def __init__(self, model: nn.Module, weights: dict | None):
        self.model, self.weights, self.backup = model, weights, {}

    def __enter__(self):
        if self.weights is not None:
            for name, param in self.model.named_parameters():
                if name in self.weights:
                    self.backup[name] = param.data.clone()
                    param.data.copy_(self.weights[name])
        return self.model

    def __exit__(self, *exc):
        for name, param in self.model.named_parameters():
            if name in self.backup:
                param.data.copy_(self.backup[name])
        return False


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", required=True, help="dataset directory (competition layout)")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock training budget")
    parser.add_argument("--out", default="result.csv", help="test predictions to write")
    parser.add_argument("--bert-dir", default=None, help="tokenizer folder (default: DATA/bert)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (also T)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--warmup-ratio", type=float, default=0.05)
    parser.add_argument("--adversarial", choices=["fgm", "pgd", "none"], default="none")
    parser.add_argument("--fgm-eps", type=float, default=1.0)
    parser.add_argument("--ema-decay", type=float, default=0.95, help="0 = no EMA")
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--resample", action="store_true", help="repeat rare categories (reference rule)")
    parser.add_argument("--no-shuffle", action="store_true", help="keep annotation order every epoch")
    parser.add_argument("--val-ratio", type=float, default=0.1)
    parser.add_argument("--split-seed", type=int, default=2022)
    parser.add_argument("--seed", type=int, default=2022, help="init, dropout and data order")
    parser.add_argument("--dropout", type=float, default=None, help="override every dropout / drop path")
    parser.add_argument("--init", choices=["vidcls", "pytorch"], default="vidcls")
    parser.add_argument("--max-text-len", type=int, default=192)
    parser.add_argument("--max-frames", type=int, default=MAX_FRAMES)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--workers", type=int, default=2, help="preprocessing processes")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    bert_dir = args.bert_dir or os.path.join(args.data, "bert")

    labeled, test, truth_by_id = load_competition_dataset(args.data)
    categories = CATEGORY_IDS.read_text(encoding="utf-8").split()
    class_of = {category: index for index, category in enumerate(categories)}
    labels = [class_of[video["category_id"]] for video in labeled]

    tokenizer = load_tokenizer(bert_dir)
    pad_id = tokenizer.pad_token_id

    start = time.perf_counter()
    data = preprocess({"labeled": labeled, "test": test}, args.data, bert_dir, args)
    preprocess_seconds = time.perf_counter() - start
    videos = len(labeled) + len(test)
    log(f"preprocessed {videos} videos in {preprocess_seconds:.1f} s "
        f"({videos / preprocess_seconds:.1f} videos/s, {args.workers} workers)")

    if args.val_ratio > 0:
        train_idx, val_idx = stratified_split(labels, args.val_ratio, args.split_seed)
    else:
        train_idx, val_idx = list(range(len(labeled))), []
    if args.resample:
        train_idx = train.resample(labels, train_idx)
    steps_per_epoch = math.ceil(len(train_idx) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    if args.max_steps is not None:
        total_steps = min(total_steps, args.max_steps)

    torch.manual_seed(args.seed)
    config = tiny_config(len(tokenizer))
    if args.dropout is not None:
        set_dropout(config, args.dropout)
    model = ref.VideoModel(config, pretrain=False)
    if args.init == "vidcls":
        init_like_vidcls(model, config["encoder"]["two_stream"]["bert"]["initializer_range"])
    model.train()
    case = train.TrainCase(
        lr=args.lr, warmup_steps=args.warmup_steps, total_steps=total_steps, warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay, label_smoothing=args.label_smoothing, adversarial=args.adversarial,
        fgm_eps=args.fgm_eps, ema_decay=args.ema_decay,
    )
    trainer = train.Trainer(model, case)
    labels_tensor = torch.tensor(labels, dtype=torch.long)
    log(f"{len(train_idx)} training videos, {len(val_idx)} validation, {len(test)} test; "
        f"{steps_per_epoch} steps per epoch, T = {total_steps}; budget {args.minutes} min, "
        f"{args.threads} threads")

    def ema_weights() -> dict | None:
        return trainer.ema.shadow if trainer.ema is not None else None

    def validate() -> float | None:
        if not val_idx:
            return None
        with SwappedWeights(model, ema_weights()):
            predictions = predict(model, data["labeled"], val_idx, args.batch_size, pad_id)
        return evaluate([categories[labels[i]] for i in val_idx],
                        [categories[p] for p in predictions])["mean_f1"]

    budget = args.minutes * 60.0
    best_f1, best_weights = None, None
    step, epochs_done, step_seconds, validation_seconds, stopped = 0, 0, 0.0, 0.0, "epochs"
    train_start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = list(train_idx)
        if not args.no_shuffle:
            generator = torch.Generator().manual_seed(args.seed * 1000 + epoch)
            order = [order[i] for i in torch.randperm(len(order), generator=generator).tolist()]
        loss_sum, batches, epoch_start = 0.0, 0, time.perf_counter()
        for begin in range(0, len(order), args.batch_size):
            if step >= total_steps:
                stopped = "max_steps"
                break
            if time.perf_counter() - train_start >= budget:
                stopped = "budget"
                break
            indices = order[begin:begin + args.batch_size]
            batch = data["labeled"].batch(indices, pad_id)
            batch["labels"] = labels_tensor[indices]
            t0 = time.perf_counter()
            _, loss = trainer.step(batch)
            step_seconds += time.perf_counter() - t0
            step += 1
            batches += 1
            loss_sum += loss
        full = batches == steps_per_epoch
        if batches == 0:
            break
        epochs_done += int(full)
        t0 = time.perf_counter()
        f1 = validate()
        validation_seconds += time.perf_counter() - t0
        improved = best_f1 is None or f1 is None or f1 > best_f1
        if improved:
            best_f1 = f1 if f1 is not None else best_f1
            weights = ema_weights() or {n: p for n, p in model.named_parameters()}
            best_weights = {n: w.detach().clone() for n, w in weights.items()}
        log(f"epoch {epoch}{'' if full else ' (partial)'}: {batches} steps (total {step}), "
            f"train loss {loss_sum / batches:.4f}, val mean_f1 "
            f"{'-' if f1 is None else f'{f1:.4f}'}{' (best)' if improved and f1 is not None else ''}, "
            f"{time.perf_counter() - epoch_start:.1f} s")
        if not full:
            break
    train_seconds = time.perf_counter() - train_start

    with SwappedWeights(model, best_weights):
        predictions = predict(model, data["test"], list(range(len(test))), args.batch_size, pad_id)
    predicted = [categories[p] for p in predictions]
    with open(args.out, "w", newline="", encoding="utf-8") as handle:
        handle.writelines(f"{video['id']},{category}\n" for video, category in zip(test, predicted))
    metrics = evaluate([truth_by_id[video["id"]] for video in test], predicted)
    trained_videos = sum(min(args.batch_size, len(train_idx) - (i % steps_per_epoch) * args.batch_size)
                         for i in range(step))
    print(json.dumps(dict(
        metrics,
        val_mean_f1=best_f1,
        epochs_done=epochs_done,
        steps=step,
        stopped=stopped,
        train_seconds=round(train_seconds, 3),
        validation_seconds=round(validation_seconds, 3),
        preprocess_seconds=round(preprocess_seconds, 3),
        preprocess_videos_per_s=round(videos / preprocess_seconds, 3),
        videos_per_s=round(trained_videos / step_seconds, 3) if step_seconds > 0 else None,
        threads=args.threads,
        train_videos=len(train_idx),
        val_videos=len(val_idx),
        test_videos=len(test),
    )))


if __name__ == "__main__":
    main()
