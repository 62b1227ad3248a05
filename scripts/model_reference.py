"""PyTorch reference of the vidcls models, for parity fixtures.

The architecture of the WeChat Big Data Challenge 2022 reference (see
shared/reference/REFERENCE.md, "Model"), assembled from independent parts:

- the visual backbone is the official Microsoft Swin Transformer layout (written out below,
  parameter and buffer names as in `swin_tiny_patch4_window7_224.pth`); the fixture script
  cross-checks it against timm's implementation;
- the text side uses `transformers`' `BertEmbeddings`, `BertLayer`, `BertPooler` and
  `BertLMPredictionHead`; the cross-modality layers are `transformers`' `LxmertXLayer`.

Module names reproduce the reference's state-dict names: `visual_backbone.*`, `video_dense.*`,
`encoder.bert.{embeddings, encoder.layer, encoder.r_layers, encoder.x_layers, pooler}.*`,
`classifier.*`, and for pre-training `encoder.cls.{predictions, seq_relationship}.*` and
`newfc_itm_cls.*`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, LxmertConfig
from transformers.models.bert.modeling_bert import (
    BertEmbeddings,
    BertLayer,
    BertLMPredictionHead,
    BertPooler,
)
from transformers.models.lxmert.modeling_lxmert import LxmertXLayer

MASKED_SCORE = -10000.0


# --------------------------------------------------------------------------------------------
# Swin Transformer, official layout (microsoft/Swin-Transformer, models/swin_transformer.py)
# --------------------------------------------------------------------------------------------


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval mode)."""

    def __init__(self, prob: float):
        super().__init__()
        self.prob = prob

    def forward(self, x):
        if self.prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.prob
        mask = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) < keep
        return x * mask / keep


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def window_partition(x, window: int):
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window, window, c)


def window_reverse(windows, window: int, h: int, w: int):
    b = int(windows.shape[0] / (h * w / window / window))
    x = windows.view(b, h // window, w // window, window, window, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window: int, num_heads: int):
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) * (2 * window - 1), num_heads)
        )
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
        coords_flatten = torch.flatten(coords, 1)
        relative = coords_flatten[:, :, None] - coords_flatten[:, None, :]
        relative = relative.permute(1, 2, 0).contiguous()
        relative[:, :, 0] += window - 1
        relative[:, :, 1] += window - 1
        relative[:, :, 0] *= 2 * window - 1
        self.register_buffer("relative_position_index", relative.sum(-1))
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x, mask=None):
        b_, n, c = x.shape
        qkv = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, -1).permute(2, 0, 1).contiguous()
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b_, n, c)
        return self.proj(x)


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim, resolution, num_heads, window, shift, mlp_ratio, drop_path):
        super().__init__()
        self.resolution = resolution
        if min(resolution) <= window:
            shift = 0
            window = min(resolution)
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if shift > 0:
            h, w = resolution
            img_mask = torch.zeros((1, h, w, 1))
            slices = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            count = 0
            for hs in slices:
                for ws in slices:
                    img_mask[:, hs, ws, :] = count
                    count += 1
            mask_windows = window_partition(img_mask, window).view(-1, window * window)
            attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
            attn_mask = attn_mask.masked_fill(attn_mask != 0, float(-100.0)).masked_fill(attn_mask == 0, float(0.0))
        else:
            attn_mask = None
        self.register_buffer("attn_mask", attn_mask)

    def forward(self, x):
        h, w = self.resolution
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if self.shift > 0:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = window_partition(x, self.window).view(-1, self.window * self.window, c)
        windows = self.attn(windows, mask=self.attn_mask).view(-1, self.window, self.window, c)
        x = window_reverse(windows, self.window, h, w)
        if self.shift > 0:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + self.drop_path(x.view(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    def __init__(self, resolution, dim):
        super().__init__()
        self.resolution = resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x):
        h, w = self.resolution
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        x0 = x[:, 0::2, 0::2, :]
        x1 = x[:, 1::2, 0::2, :]
        x2 = x[:, 0::2, 1::2, :]
        x3 = x[:, 1::2, 1::2, :]
        x = torch.cat([x0, x1, x2, x3], -1).view(b, -1, 4 * c)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    def __init__(self, dim, resolution, depth, num_heads, window, mlp_ratio, drop_path, downsample):
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                SwinTransformerBlock(
                    dim, resolution, num_heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio, drop_path[i]
                )
                for i in range(depth)
            ]
        )
        self.downsample = PatchMerging(resolution, dim) if downsample else None

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, patch_size, in_chans, embed_dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class SwinTransformer(nn.Module):
    """Official Swin feature extractor (ape off, patch norm on, no head): images -> [N, C]."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim, depths, num_heads, window_size, mlp_ratio,
                 drop_path_rate):
        super().__init__()
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        patches = img_size // patch_size
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            side = patches // 2**i
            self.layers.append(
                BasicLayer(
                    embed_dim * 2**i,
                    (side, side),
                    depth,
                    num_heads[i],
                    window_size,
                    mlp_ratio,
                    rates[sum(depths[:i]) : sum(depths[: i + 1])],
                    i < len(depths) - 1,
                )
            )
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(self.num_features)

    def forward(self, x):
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x).mean(dim=1)


# --------------------------------------------------------------------------------------------
# Two-stream encoder (LXMERT-style) from transformers parts
# --------------------------------------------------------------------------------------------


def additive_mask(mask):
    """[B, L] (1 = attend) -> [B, 1, 1, L] additive mask (1 - mask) * -10000."""
    return (1.0 - mask[:, None, None, :].float()) * MASKED_SCORE


class LayerStacks(nn.Module):
    """`encoder.bert.encoder`: `layer` (text), `r_layers` (visual), `x_layers` (cross)."""

    def __init__(self, config: BertConfig, text_layers: int, visual_layers: int, cross_layers: int):
        super().__init__()
        lxmert_config = LxmertConfig(
            hidden_size=config.hidden_size,
            num_attention_heads=config.num_attention_heads,
            intermediate_size=config.intermediate_size,
            hidden_act="gelu",
            hidden_dropout_prob=config.hidden_dropout_prob,
            attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        )
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(text_layers)])
        self.r_layers = nn.ModuleList([BertLayer(config) for _ in range(visual_layers)])
        self.x_layers = nn.ModuleList([LxmertXLayer(lxmert_config) for _ in range(cross_layers)])


class TwoStreamBert(nn.Module):
    """`encoder.bert`: embeddings, layer stacks and pooler."""

    def __init__(self, config: BertConfig, text_layers: int, visual_layers: int, cross_layers: int):
        super().__init__()
        self.embeddings = BertEmbeddings(config)
        self.encoder = LayerStacks(config, text_layers, visual_layers, cross_layers)
        self.pooler = BertPooler(config)

    def forward(self, input_ids, text_mask, visual, visual_mask=None):
        text_mask = additive_mask(text_mask)
        visual_mask = additive_mask(visual_mask) if visual_mask is not None else None
        text = self.embeddings(input_ids=input_ids)
        for layer in self.encoder.layer:
            text = layer(text, attention_mask=text_mask)[0]
        for layer in self.encoder.r_layers:
            visual = layer(visual, attention_mask=visual_mask)[0]
        for layer in self.encoder.x_layers:
            text, visual = layer(text, text_mask, visual, visual_mask)
        return text, visual, self.pooler(text)


class PretrainingHeads(nn.Module):
    """`encoder.cls`: MLM predictions (decoder tied to the word embeddings) and the unused
    next-sentence head."""

    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.predictions.decoder.weight = word_embeddings.weight
        self.seq_relationship = nn.Linear(config.hidden_size, 2)


class Encoder(nn.Module):
    """`encoder`: the two-stream BERT, plus the pre-training heads when pre-training."""

    def __init__(self, config: BertConfig, text_layers, visual_layers, cross_layers, pretrain: bool):
        super().__init__()
        self.bert = TwoStreamBert(config, text_layers, visual_layers, cross_layers)
        if pretrain:
            self.cls = PretrainingHeads(config, self.bert.embeddings.word_embeddings)


def bert_config(cfg: dict) -> BertConfig:
    config = BertConfig(**cfg, hidden_act="gelu")
    config._attn_implementation = "eager"
    return config


class VideoModel(nn.Module):
    """The reference model, from a vidcls `VideoModelConfig` dict.

    `pretrain=False`: classifier (`forward` -> logits); `pretrain=True`: pre-training model
    (`forward` -> (mlm_logits, itm_logits)).
    """

    def __init__(self, cfg: dict, pretrain: bool):
        super().__init__()
        swin = cfg["encoder"]["swin"]
        two_stream = cfg["encoder"]["two_stream"]
        config = bert_config(two_stream["bert"])
        self.visual_backbone = SwinTransformer(
            swin["img_size"], swin["patch_size"], swin["in_channels"], swin["embed_dim"], swin["depths"],
            swin["num_heads"], swin["window_size"], swin["mlp_ratio"], swin["drop_path_rate"],
        )
        self.video_dense = nn.Linear(self.visual_backbone.num_features, config.hidden_size)
        self.encoder = Encoder(
            config, two_stream["text_layers"], two_stream["visual_layers"], two_stream["cross_layers"], pretrain
        )
        self.pretrain = pretrain
        if pretrain:
            self.newfc_itm_cls = nn.Linear(config.hidden_size, 1)
        else:
            self.dropout = nn.Dropout(cfg["classifier_dropout"])
            self.classifier = nn.Linear(config.hidden_size, cfg["num_classes"])

    def frame_features(self, frames):
        b, f = frames.shape[:2]
        return self.visual_backbone(frames.flatten(0, 1)).view(b, f, -1)

    def forward(self, input_ids, text_mask, frames=None, features=None, frame_mask=None):
        if features is None:
            features = self.frame_features(frames)
        text, _, pooled = self.encoder.bert(input_ids, text_mask, self.video_dense(features), frame_mask)
        if self.pretrain:
            return self.encoder.cls.predictions(text), self.newfc_itm_cls(pooled)
        return self.classifier(self.dropout(pooled))
