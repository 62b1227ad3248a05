"""Time the PyTorch reference's fine-tuning step (the other side of a vidcls training benchmark).

    .venv/bin/python scripts/bench_reference_train.py [--preset seed|tiny] [--threads 2] \
        [--batch-size 2] [--adversarial fgm|none] [--iterations 3]

Builds the classifier of scripts/model_reference.py with random weights: `seed` is the
reference's size (Swin-T on 8 frames of 224 px, 12 text layers of 768 hidden / 12 heads,
vocabulary 21128, 5 cross-modality layers, 200 classes); `tiny` is vidcls's tiny preset (micro
Swin on 8 frames of 32 px, hidden 64, 2 text layers, 1 cross layer, vocabulary 21128). Both keep
the reference's dropouts (0.1, stochastic depth 0.1, classifier 0.2) in train mode.

One timed step is scripts/train_reference.py's `Trainer.step` on random inputs (388 ids, all
frames and tokens real): forward + label-smoothed cross-entropy, backward, FGM (by default),
BertAdam step, EMA update, zero grad, scheduler step; after one untimed warm-up step, with
`torch.set_num_threads(threads)`. Prints one JSON line:
{"preset", "threads", "batch_size", "frames", "text_len", "adversarial", "iterations",
"seconds_per_step", "videos_per_s"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_reference as ref  # noqa: E402
import train_reference as train  # noqa: E402
from make_model_fixtures import SEED_CONFIG, video_model_config  # noqa: E402

TINY_CONFIG = video_model_config(
    img_size=32, patch_size=2, embed_dim=16, depths=[2, 2, 2, 2], num_heads=[2, 4, 8, 16], window_size=4,
    vocab_size=21128, hidden_size=64, num_attention_heads=4, intermediate_size=256, max_position_embeddings=512,
    text_layers=2, visual_layers=0, cross_layers=1, num_classes=200,
)
PRESETS = {"seed": SEED_CONFIG, "tiny": TINY_CONFIG}
FRAMES, TEXT_LEN = 8, 388


def main() -> None:
    parser = argparse.ArgumentParser(description="Time the PyTorch reference's fine-tuning step.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="seed", help="model size")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batch-size", type=int, default=2, help="videos per step")
    parser.add_argument("--adversarial", choices=["fgm", "none"], default="fgm", help="adversarial training")
    parser.add_argument("--iterations", type=int, default=3, help="timed steps")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = PRESETS[args.preset]
    model = ref.VideoModel(config, pretrain=False).train()
    # the reference's hyper-parameters; the step index only sets the (non-zero) lr
    case = train.TrainCase(lr=4e-5, warmup_steps=1000, total_steps=20000, warmup_ratio=0.1, start_step=1000,
                           adversarial=args.adversarial, ema_decay=0.999)
    trainer = train.Trainer(model, case)

    size = config["encoder"]["swin"]["img_size"]
    vocab = config["encoder"]["two_stream"]["bert"]["vocab_size"]
    batch = {
        "frames": torch.randn(args.batch_size, FRAMES, 3, size, size),
        "input_ids": torch.randint(0, vocab, (args.batch_size, TEXT_LEN)),
        "text_mask": torch.ones(args.batch_size, TEXT_LEN),
        "frame_mask": torch.ones(args.batch_size, FRAMES),
        "labels": torch.randint(0, config["num_classes"], (args.batch_size,)),
    }

    trainer.step(batch)
    start = time.perf_counter()
    for _ in range(args.iterations):
        trainer.step(batch)
    seconds = (time.perf_counter() - start) / args.iterations

    print(json.dumps({
        "preset": args.preset,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "frames": FRAMES,
        "text_len": TEXT_LEN,
        "adversarial": args.adversarial,
        "iterations": args.iterations,
        "seconds_per_step": round(seconds, 6),
        "videos_per_s": round(args.batch_size / seconds, 6),
    }))


if __name__ == "__main__":
    main()
