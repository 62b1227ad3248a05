"""Time the PyTorch reference model's forward pass (the other side of `vidcls bench infer`).

    .venv/bin/python scripts/bench_reference_infer.py [--threads 2] [--batch-size 2] \
        [--frames 8] [--text-len 388] [--iterations 3] [--precision f32|bf16]

Builds the seed-size classifier of scripts/model_reference.py (Swin-T on 224 px frames,
12 text layers, 5 cross-modality layers; random weights), and times `forward` in eval mode
under `torch.inference_mode()` on random inputs (all frames and tokens real), after one
untimed warm-up pass, with `torch.set_num_threads(threads)`; `--precision bf16` runs it under
`torch.autocast("cpu", dtype=torch.bfloat16)` (what a PyTorch user turns on for speed: linear
layers and matrix products in bf16, softmax and LayerNorm in f32). Prints one JSON line:
{"threads", "precision", "batch_size", "frames", "text_len", "iterations", "seconds_per_batch",
"videos_per_s"}.
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
from make_model_fixtures import SEED_CONFIG  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="Time the PyTorch reference model's forward pass.")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batch-size", type=int, default=2, help="videos per forward pass")
    parser.add_argument("--frames", type=int, default=8, help="frame slots per video")
    parser.add_argument("--text-len", type=int, default=388, help="text ids per video")
    parser.add_argument("--iterations", type=int, default=3, help="timed forward passes")
    parser.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                        help="bf16: run under torch.autocast('cpu', dtype=torch.bfloat16)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ref.VideoModel(SEED_CONFIG, pretrain=False).eval()
    size = SEED_CONFIG["encoder"]["swin"]["img_size"]
    vocab = SEED_CONFIG["encoder"]["two_stream"]["bert"]["vocab_size"]
    input_ids = torch.randint(0, vocab, (args.batch_size, args.text_len))
    text_mask = torch.ones(args.batch_size, args.text_len)
    frames = torch.randn(args.batch_size, args.frames, 3, size, size)
    frame_mask = torch.ones(args.batch_size, args.frames)

    def forward() -> torch.Tensor:
        return model(input_ids, text_mask, frames=frames, frame_mask=frame_mask)

    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")
    with torch.inference_mode(), autocast:
        forward()
        start = time.perf_counter()
        for _ in range(args.iterations):
            forward()
        seconds = (time.perf_counter() - start) / args.iterations

    print(json.dumps({
        "threads": args.threads,
        "precision": args.precision,
        "batch_size": args.batch_size,
        "frames": args.frames,
        "text_len": args.text_len,
        "iterations": args.iterations,
        "seconds_per_batch": round(seconds, 6),
        "videos_per_s": round(args.batch_size / seconds, 6),
    }))


if __name__ == "__main__":
    main()
