"""Time the Python reference data pipeline, one process, one thread.

    .venv/bin/python scripts/bench_reference_pipeline.py \
        --annotations ANNOTATIONS.json --frames FRAMES_DIR --bert-dir BERT_DIR [--limit N]

For every video (in annotation order, the first N with --limit) it does what
the reference's dataset does per item: open `<frames>/<id[-3:]>/<id>.zip`,
decode the selected frames, Resize(256) + CenterCrop(224) + ToTensor +
Normalize, run the text pipeline (asr cleanup, ocr join, TF-IDF keywords,
truncation) and tokenize the three segments. Loading the tokenizer is not
timed. Prints one JSON line: {"videos": N, "seconds": S, "videos_per_s": V}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_pipeline as rp  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description='Time the Python reference pipeline.')
    parser.add_argument('--annotations', required=True, help='JSON array of videos')
    parser.add_argument('--frames', required=True, help='folder holding <id[-3:]>/<id>.zip')
    parser.add_argument('--bert-dir', required=True, help='folder holding vocab.txt')
    parser.add_argument('--limit', type=int, default=None, help='only the first N videos')
    args = parser.parse_args()

    torch.set_num_threads(1)
    with open(args.annotations, encoding='utf-8') as handle:
        videos = json.load(handle)
    if args.limit is not None:
        videos = videos[:args.limit]
    tokenizer = rp.load_tokenizer(args.bert_dir)

    start = time.perf_counter()
    for video in videos:
        item = rp.process_video(tokenizer, video, args.frames)
        assert item['frames'].shape == (rp.MAX_FRAMES, 3, 224, 224)
    seconds = time.perf_counter() - start

    print(json.dumps({
        'videos': len(videos),
        'seconds': round(seconds, 6),
        'videos_per_s': round(len(videos) / seconds, 6) if seconds > 0 else None,
    }))


if __name__ == '__main__':
    main()
