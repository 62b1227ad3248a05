#!/usr/bin/env bash
# Data-pipeline throughput, vidcls against the Python reference, on the same synthetic data in
# one run. Needs a release build (cargo build --release) and the venv of scripts/README.md.
#   scripts/bench_data.sh [VIDEOS]
set -euo pipefail
cd "$(dirname "$0")/.."
videos=${1:-300}
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
./target/release/vidcls synth --output "$data/d" --labeled "$videos" --unlabeled 0 --test 0 --seed 11 2>/dev/null
args=(--annotations "$data/d/annotations/labeled.json" --frames "$data/d/zip_frames/labeled" --bert-dir "$data/d/bert")
rust=$(./target/release/vidcls bench data "${args[@]}" --json 2>/dev/null)
python=$(.venv/bin/python scripts/bench_reference_pipeline.py "${args[@]}")
echo "vidcls: $rust"
echo "python: $python"
python3 - "$rust" "$python" <<'PY'
import json, sys
rust, python = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ratio = rust["per_core_videos_per_s"] / python["videos_per_s"]
print(f"per-core ratio vidcls/python: {ratio:.2f}x "
      f"({rust['per_core_videos_per_s']:.1f} vs {python['videos_per_s']:.1f} videos/s); "
      f"all {rust['cores']} cores: {rust['all_cores_videos_per_s']:.1f} videos/s; "
      f"training loader: {rust['loader_videos_per_s']:.1f} videos/s "
      f"({100 * rust['loader_share']:.0f}% of all cores)")
PY
