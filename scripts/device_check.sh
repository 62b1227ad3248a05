#!/usr/bin/env bash
# GPU check, run on a CUDA machine from the repository root with a `--features cuda` build of
# vidcls at $VIDCLS (default target/release/vidcls): CPU/GPU agreement of predict on the
# reference fixtures per precision (logits vs PyTorch's f32 ones), then throughput: inference at
# batch 2 and 32 and seed training steps, per precision. Results go to $OUT (or ./device-out).
set -uo pipefail
bin=${VIDCLS:-target/release/vidcls}
out=${OUT:-device-out}
mkdir -p "$out"
nvidia-smi -L
fx=tests/fixtures
predict() { # device precision
  "$bin" predict --checkpoint $fx/model/predict/classifier.safetensors --bert-dir $fx/pipeline/bert \
    --annotations $fx/pipeline/annotations.json --frames $fx/pipeline/frames --batch-size 4 \
    --device "$1" --precision "$2" --output "$out/pred-$1-$2.csv" --logits "$out/logits-$1-$2.npy" 2>&1 | tail -2
}
predict cpu f32
for precision in f32 bf16 f16; do predict cuda $precision; done
python3 - "$out" <<'PY'
import glob, os, sys, numpy as np
out = sys.argv[1]
ref = np.load("tests/fixtures/model/predict/logits.npy")
for path in sorted(glob.glob(f"{out}/logits-*.npy")):
    ours = np.load(path)
    print(os.path.basename(path), "max |logits - pytorch f32|:", float(np.abs(ours - ref).max()),
          "argmax equal:", bool((ours.argmax(1) == ref.argmax(1)).all()))
PY
cmp "$out/pred-cpu-f32.csv" "$out/pred-cuda-f32.csv" && echo "cpu and cuda f32 predictions identical"
for precision in f32 bf16 f16; do
  for batch in 2 32; do
    "$bin" bench infer --preset seed --device cuda --precision $precision --batch-size $batch --json \
      | tee -a "$out/bench.jsonl"
  done
  "$bin" bench train --preset seed --device cuda --precision $precision --batch-size 8 \
    --adversarial fgm --iterations 3 --json | tee -a "$out/bench.jsonl"
done
"$bin" bench data --videos 400 --device cuda --json | tee -a "$out/bench.jsonl"
