"""Writes the dynamic loss scaling fixture of vidcls (tests/fixtures/training/grad_scaler.json).

PyTorch's `torch.amp.GradScaler` (on the CPU, initial scale 1024, growth interval 3) steps an
SGD optimizer (lr 1) on one 2 x 2 parameter whose gradients are given, already multiplied by
the scale as a backward pass of a scaled loss leaves them; some hold inf or NaN. For each step
the fixture records the gradients given, the scale they were made with, the gradients after
`unscale_`, whether `step` applied them (the parameter moved) and the scale after `update`.

Run with the project venv:  .venv/bin/python scripts/make_loss_scale_fixtures.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "training" / "grad_scaler.json"
INITIAL_SCALE = 1024.0
GROWTH_INTERVAL = 3
INF = math.inf
NAN = math.nan

# Unscaled gradients of each step (the fixture stores them times the scale of their step).
GRADIENTS = [
    [[0.5, -0.25], [1.0, 2.0]],
    [[INF, 0.0], [1.0, 2.0]],
    [[0.125, 0.5], [-1.0, 3.0]],
    [[1e-3, 2e-3], [3e-3, -4e-3]],
    [[0.5, 0.5], [0.5, 0.5]],  # the third finite step in a row: the scale doubles
    [[0.0, NAN], [0.0, 0.0]],
    [[-INF, 1.0], [1.0, INF]],
    [[2.0, 4.0], [8.0, 16.0]],
    [[1.0, 1.0], [1.0, 1.0]],
    [[3.0, -3.0], [0.25, 0.75]],  # doubles again
    [[1.5, 2.5], [3.5, 4.5]],
]


def number(value: float) -> float | str:
    """JSON has no inf or NaN: they are written as strings."""
    return str(value) if not math.isfinite(value) else value


def main() -> None:
    torch.manual_seed(0)
    parameter = torch.nn.Parameter(torch.zeros(2, 2))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=INITIAL_SCALE, growth_interval=GROWTH_INTERVAL)
    scaler.scale(torch.ones(()))  # creates the scale tensor
    steps = []
    for gradient in GRADIENTS:
        scale = scaler.get_scale()
        scaled = torch.tensor(gradient) * scale
        parameter.grad = scaled.clone()
        before = parameter.detach().clone()
        scaler.unscale_(optimizer)
        unscaled = parameter.grad.clone()
        scaler.step(optimizer)
        scaler.update()
        applied = not torch.equal(before, parameter.detach())
        steps.append(
            {
                "scale": scale,
                "scaled": [[number(v) for v in row] for row in scaled.tolist()],
                "unscaled": [[number(v) for v in row] for row in unscaled.tolist()],
                "applied": applied,
                "scale_after": scaler.get_scale(),
            }
        )
        optimizer.zero_grad()
    fixture = {
        "torch": torch.__version__,
        "initial_scale": INITIAL_SCALE,
        "growth_interval": GROWTH_INTERVAL,
        "steps": steps,
    }
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
