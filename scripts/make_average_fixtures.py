"""Expected results of checkpoint averaging (`vidcls average`), computed with NumPy.

    .venv/bin/python scripts/make_average_fixtures.py

Reads the small classifier `tests/fixtures/model/predict/classifier.safetensors` (reference
names) and describes three variants of it: every parameter `w` (every F32 tensor but the Swin
`attn_mask` buffers) becomes `w * scale + offset` in float32, with the scales and offsets below.
The average of the three variants is `np.mean(np.stack([v0, v1, v2]), axis=0)` (float32), as a
NumPy user would compute the reference's SWA. Writes `tests/fixtures/average/expected.json`:
the scales, offsets, the transformed tensor names, and the SHA-256 of the little-endian bytes of
every F32 tensor of the average. `tests/cli_average.rs` builds the same variants, averages them
with `vidcls average` and compares the hashes: a bit-exact comparison with a small fixture.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests/fixtures/model/predict/classifier.safetensors"
OUT = ROOT / "tests/fixtures/average/expected.json"
SCALES = [1.0, -0.5, 1.5]
OFFSETS = [0.0, 0.25, -0.125]


def main() -> None:
    tensors = load_file(str(SOURCE))
    transformed = sorted(
        name for name, value in tensors.items() if value.dtype == np.float32 and not name.endswith("attn_mask")
    )
    hashes = {}
    for name, value in sorted(tensors.items()):
        if value.dtype != np.float32:
            continue
        if name in transformed:
            variants = [value * np.float32(s) + np.float32(o) for s, o in zip(SCALES, OFFSETS)]
        else:
            variants = [value] * len(SCALES)
        mean = np.mean(np.stack(variants), axis=0)
        assert mean.dtype == np.float32
        hashes[name] = hashlib.sha256(np.ascontiguousarray(mean).astype("<f4").tobytes()).hexdigest()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {"scales": SCALES, "offsets": OFFSETS, "transformed": transformed, "sha256": hashes},
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {OUT}: {len(hashes)} tensors, {len(transformed)} transformed")


if __name__ == "__main__":
    main()
