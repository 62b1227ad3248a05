#!/usr/bin/env bash
# Full fine-tuning steps (forward, backward, the adversarial pass, BertAdam, EMA), vidcls (Burn)
# vs the PyTorch reference, measured one after the other on the same machine: random weights
# and inputs, 8 frames, 388 text ids.
#
#   scripts/bench_train.sh [seed|tiny] [extra `vidcls bench train` arguments]
#
# Environment: VIDCLS (default target/release/vidcls), PYTHON (default .venv/bin/python),
# THREADS (PyTorch intra-op threads, default 2), ITERATIONS (timed steps, default 3),
# BATCH (videos per step, default 2), ADVERSARIAL (fgm or none, default fgm).
# Prints the two JSON lines, then one JSON line with the ratio vidcls / PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${1:-seed}
shift || true
vidcls=${VIDCLS:-target/release/vidcls}
python=${PYTHON:-.venv/bin/python}
threads=${THREADS:-2}
iterations=${ITERATIONS:-3}
batch=${BATCH:-2}
adversarial=${ADVERSARIAL:-fgm}

ours=$("$vidcls" bench train --preset "$preset" --batch-size "$batch" --adversarial "$adversarial" \
    --iterations "$iterations" --json "$@")
echo "vidcls:  $ours"
theirs=$("$python" scripts/bench_reference_train.py --preset "$preset" --threads "$threads" \
    --batch-size "$batch" --adversarial "$adversarial" --iterations "$iterations")
echo "pytorch: $theirs"
"$python" - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = (json.loads(line) for line in sys.argv[1:3])
print(json.dumps({
    "vidcls_videos_per_s": ours["videos_per_s"],
    "pytorch_videos_per_s": theirs["videos_per_s"],
    "ratio": round(ours["videos_per_s"] / theirs["videos_per_s"], 3),
}))
PY
