#!/usr/bin/env bash
# GPU check, run on a CUDA machine from the repository root with a `--features cuda` build of
# vidcls at $VIDCLS (default target/release/vidcls): CPU/GPU agreement of predict on the
# reference fixtures (logits vs PyTorch's), then throughput. Results go to $OUT (or ./device-out).
set -uo pipefail
bin=${VIDCLS:-target/release/vidcls}
out=${OUT:-device-out}
mkdir -p "$out"
nvidia-smi -L
fx=tests/fixtures
for device in cpu cuda; do
  "$bin" predict --checkpoint $fx/model/predict/classifier.safetensors --bert-dir $fx/pipeline/bert \
    --annotations $fx/pipeline/annotations.json --frames $fx/pipeline/frames --batch-size 4 \
    --device $device --output "$out/pred-$device.csv" --logits "$out/logits-$device.npy" 2>&1 | tail -2
done
python3 - "$out" <<'PY'
import sys, numpy as np
out = sys.argv[1]
ref = np.load("tests/fixtures/model/predict/logits.npy")
for device in ("cpu", "cuda"):
    ours = np.load(f"{out}/logits-{device}.npy")
    print(device, "max |logits - pytorch|:", float(np.abs(ours - ref).max()),
          "argmax equal:", bool((ours.argmax(1) == ref.argmax(1)).all()))
PY
cmp "$out/pred-cpu.csv" "$out/pred-cuda.csv" && echo "cpu and cuda predictions identical"
for batch in 2 8; do
  "$bin" bench infer --preset seed --device cuda --batch-size $batch --json | tee -a "$out/bench.jsonl"
done
"$bin" bench data --videos 400 --device cuda --json | tee -a "$out/bench.jsonl"
