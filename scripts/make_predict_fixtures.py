"""Writes the end-to-end fixtures of `vidcls predict` and `vidcls extract-features`
(tests/fixtures/model/predict/).

A small random-weight classifier of scripts/model_reference.py that takes the real data
pipeline's inputs (224 px frames, 388 text ids; its classifier centred so that the videos' top
classes differ), run by the reference pipeline of
scripts/reference_pipeline.py on the videos of tests/fixtures/pipeline/ (annotation order):

- config.json                  vidcls `VideoModelConfig` of the model (BERT hidden 64 and
                               1 head, so that `hidden / 64` heads are inferred without a
                               BERT config.json; the fixture vocabulary has none)
- classifier.safetensors       its state dict with the reference's names (Swin buffers included)
- swin_official.pth            its Swin as an official checkpoint {"model": sd}, with a head
- logits.npy                   float32 [videos, 200]: the reference's logits, eval mode, frames
                               selected and preprocessed as the reference does (zeros and a
                               zero mask for missing frames)
- logits_bf16.npy              float32 [videos, 200]: the same under PyTorch's bf16 autocast
                               (`torch.autocast("cpu", dtype=torch.bfloat16)`), the yardstick
                               of `vidcls predict --precision bf16`
- logits_f16.npy               float32 [videos, 200]: the same under f16 autocast
                               (`torch.autocast("cpu", dtype=torch.float16)`), the yardstick
                               of `vidcls predict --precision f16`
- features.safetensors         per video with frames, float32 [n, 32] under its id: the Swin
                               features of its first min(n, 32) frames (the feature extractor)

Run with the project venv:  .venv/bin/python scripts/make_predict_fixtures.py
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_reference as ref  # noqa: E402
import reference_pipeline as rp  # noqa: E402
from make_model_fixtures import (  # noqa: E402
    contiguous,
    randomize,
    save_official_swin,
    video_model_config,
)

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "tests" / "fixtures" / "pipeline"
OUT = ROOT / "tests" / "fixtures" / "model" / "predict"
EXTRACT_FRAMES = 32

CONFIG = video_model_config(
    img_size=224, patch_size=16, embed_dim=16, depths=[2, 2], num_heads=[1, 2], window_size=7,
    vocab_size=542, hidden_size=64, num_attention_heads=1, intermediate_size=128, max_position_embeddings=388,
    text_layers=1, visual_layers=0, cross_layers=1, num_classes=200,
)


def first_frames(frames_dir: Path, video_id: str) -> torch.Tensor | None:
    """The first min(n, 32) frames of a video, preprocessed; None without frames."""
    path = Path(rp.zip_path_for(str(frames_dir), video_id))
    if not path.exists():
        return None
    with zipfile.ZipFile(path) as handle:
        names = sorted(handle.namelist())[:EXTRACT_FRAMES]
        if not names:
            return None
        return torch.stack([rp.TO_TENSOR_NORMALIZE(rp.decode_frame(handle.read(name))) for name in names])


def main() -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(7)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")

    model = ref.VideoModel(CONFIG, pretrain=False).eval()
    randomize(model, generator)
    tokenizer = rp.load_tokenizer(str(PIPELINE / "bert"))
    videos = json.loads((PIPELINE / "annotations.json").read_text(encoding="utf-8"))
    frames_dir = PIPELINE / "frames"
    items = [rp.process_video(tokenizer, video, str(frames_dir)) for video in videos]

    def forward(item: dict) -> torch.Tensor:
        input_ids = torch.tensor(item["input_ids"])[None]
        text_mask = torch.tensor(item["attention_mask"], dtype=torch.float32)[None]
        frame_mask = item["frame_mask"].float()[None]
        return model(input_ids, text_mask, frames=item["frames"][None], frame_mask=frame_mask)[0]

    with torch.no_grad():
        # The pooled outputs of the videos differ little from their mean: centre the classifier
        # on it, so that the videos' top classes differ.
        model.classifier.bias.zero_()
        mean = torch.stack([forward(item) for item in items]).mean(0)
        model.classifier.bias.copy_(-mean)
        model.classifier.weight.mul_(10.0)
        model.classifier.bias.mul_(10.0)

    logits = []
    features = {}
    with torch.no_grad():
        for video, item in zip(videos, items):
            logits.append(forward(item))
            frames = first_frames(frames_dir, video["id"])
            if frames is not None:
                features[video["id"]] = model.visual_backbone(frames)
    np.save(OUT / "logits.npy", torch.stack(logits).numpy().astype(np.float32))
    for name, dtype in [("bf16", torch.bfloat16), ("f16", torch.float16)]:
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
            autocast = [forward(item).float() for item in items]
        np.save(OUT / f"logits_{name}.npy", torch.stack(autocast).numpy().astype(np.float32))
    save_file(contiguous(features), OUT / "features.safetensors")

    state_dict = contiguous(model.state_dict())
    save_file(state_dict, OUT / "classifier.safetensors")
    save_official_swin(model, state_dict, 3, generator, OUT / "swin_official.pth")
    total = sum(path.stat().st_size for path in OUT.iterdir())
    print(f"wrote {OUT} ({len(videos)} videos, {len(features)} with frames, {total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
