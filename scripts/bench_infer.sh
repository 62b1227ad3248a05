#!/usr/bin/env bash
# Seed-model forward pass, vidcls (Burn) vs the PyTorch reference, measured one after the other
# on the same machine: batch 2, 8 frames of 224 px, 388 text ids, random weights and inputs.
#
#   scripts/bench_infer.sh [extra `vidcls bench infer` arguments, e.g. --device cuda]
#
# Environment: VIDCLS (default target/release/vidcls), PYTHON (default .venv/bin/python),
# THREADS (PyTorch intra-op threads, default 2), ITERATIONS (timed passes, default 3),
# PRECISION (f32 or bf16: vidcls --precision, PyTorch bf16 autocast; default f32).
# Prints the two JSON lines, then one JSON line with the ratio vidcls / PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."

vidcls=${VIDCLS:-target/release/vidcls}
python=${PYTHON:-.venv/bin/python}
threads=${THREADS:-2}
iterations=${ITERATIONS:-3}
precision=${PRECISION:-f32}

ours=$("$vidcls" bench infer --preset seed --batch-size 2 --num-frames 8 --text-len 388 \
    --iterations "$iterations" --precision "$precision" --json "$@")
echo "vidcls:  $ours"
theirs=$("$python" scripts/bench_reference_infer.py --threads "$threads" --batch-size 2 --frames 8 \
    --text-len 388 --iterations "$iterations" --precision "$precision")
echo "pytorch: $theirs"
"$python" - "$ours" "$theirs" <<'EOF'
import json, sys
ours, theirs = (json.loads(line) for line in sys.argv[1:3])
ratio = ours["videos_per_s"] / theirs["videos_per_s"]
print(json.dumps({
    "vidcls_videos_per_s": ours["videos_per_s"],
    "pytorch_videos_per_s": theirs["videos_per_s"],
    "vidcls_gflops_per_s": ours["gflops_per_s"],
    "pytorch_gflops_per_s": theirs["videos_per_s"] * ours["gflop_per_video"],
    "ratio": round(ratio, 3),
}))
EOF
