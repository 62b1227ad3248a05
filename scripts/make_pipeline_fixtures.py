"""Write the data-pipeline and metric fixtures under tests/fixtures/pipeline/.

Usage (from the repository root, with the dev venv of scripts/README.md):

    .venv/bin/python scripts/make_pipeline_fixtures.py [--out tests/fixtures/pipeline]

Everything is generated from fixed seeds, and the expected values come from
`reference_pipeline.py` (sklearn / transformers slow BertTokenizer / Pillow /
torchvision), so re-running it with the pinned versions of
scripts/requirements.txt reproduces the same files. The Rust tests only read
the committed output; they never run Python.

Files written (schemas in scripts/README.md):
    bert/vocab.txt, bert/tokenizer_config.json   small WordPiece vocabulary
    bert_fast/                                   the same vocabulary as a fast tokenizer
                                                 (BertTokenizerFast.save_pretrained: tokenizer.json, ...)
    annotations.json                             12 videos, competition format
    frames/<id[-3:]>/<id>.zip                    raw frames of those videos
    expected.jsonl                               expected model inputs per video
    pixels/<id>.npy                              uint8 crops [n, 224, 224, 3]
    text_cases.jsonl                             ~300 text-only cases
    text_cases_bert_fast.jsonl                   the cases where bert_fast's ids differ
    selection.json                               frame selection for n = 0..40
    metric_cases.json                            metric cases (sklearn values)
    metric_truth.csv, metric_result.csv          first metric case as CSV files
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sys
import zipfile

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from transformers import BertTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_pipeline as rp  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATEGORY_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'datasets', 'src', 'category_ids.txt')
ZIP_DATE = (2022, 5, 1, 12, 0, 0)   # fixed zip entry timestamps -> reproducible bytes

# ---------------------------------------------------------------------------
# Text material. Everything the fixtures' texts are made of comes from here,
# so the vocabulary below can cover it (except the deliberately missing chars).
# ---------------------------------------------------------------------------
CN_SENTENCES = [
    '今天教大家做一道家常菜红烧肉', '这个视频太好笑了哈哈哈', '美丽的风景让人心旷神怡',
    '欢迎来到我的直播间', '点赞关注不迷路', '新手必看的化妆技巧', '宝宝的第一次旅行',
    '中国队夺得冠军', '手机摄影小技巧分享', '春天来了，花都开了。', '你知道吗？这是真的！',
    '他说：“我们明天见。”', '（完）', '是的是的呀', '小猫咪在睡觉', '周末去爬山看日出',
    '这款游戏真的太难了', '老师讲得非常清楚', '一分钟学会折纸', '龘龘鬱鬱好难写',
    '燚的读音', '𠀀这个字你认识吗', '汽车保养的小知识', '健身房减脂训练计划',
    '街头篮球比赛精彩瞬间', '【重要】请转发', '《新闻联播》摘要', '第①步：准备材料、工具',
]
EN_PIECES = [
    'Hello World', 'iPhone 14 Pro Max', 'NBA Finals 2022', 'DIY tutorial', 'café', 'naïve',
    'nai\u0308ve', 'UNBELIEVABLE', 'COVID-19', 'vlog', '5G', '2022年', '3.14', '100%',
    'A_B_C', 'snake_case_name', 'e-mail', "O'Neil", 'x²', '½杯', '①②③', 'ΟΔΟΣ',
    'ΣΟΦΟΣ σοφός', 'İstanbul', 'Straße', 'ありがとう', 'Good Morning', 'HappyNewYear',
    'Crème Brûlée', 'ÉCOLE', 'Ωmega', 'λambda', 'tab\tseparated', 'line\nbreak',
]
DIGITS = ['0', '7', '42', '2022', '13800138000', '3.1415926', '2022-07-15', '12:30', '1,000', '½', '²']
EMOJI = ['😂', '👍', '❤️', '🇨🇳', '😂😂😂', '🔥']
PUNCT = ['，', '。', '！', '？', '：', '“', '”', '（', '）', '、', '【', '】', '...', '!!', '~', '——', '_']
UM_RUNS = ['嗯', '嗯嗯', '嗯嗯嗯', '嗯嗯嗯嗯嗯', '嗯嗯嗯嗯嗯嗯嗯嗯']
# Words separated by whitespace: repeated words across "documents" make TF-IDF ties.
TIE_WORDS = ['猫', '狗', 'abc', 'Abc', 'ABC', 'x1', 'x_1', '2022', '是', '的', '呀', '嗯', 'hello',
             '世界', '½', '①', '是的', 'ΟΔΟΣ', 'café']
# Separators: mostly nothing, else every whitespace flavour that matters somewhere:
# Python str.split() splits on all of these except U+200B / U+FEFF; BERT drops
# U+001C, U+0085, U+200B, U+FEFF as control/format chars and splits on the rest.
SEPARATORS = ['', '', '', '', ' ', ' ', '  ', '\t', '\n', '\r\n', '\u3000', '\x1c', '\u00a0',
              '\u200b', '\ufeff', '\u0085']

# Characters left out of the vocabulary on purpose, so that [UNK] occurs.
MISSING_CHARS = set('龘鬱燚𠀀【】👍🔥λßあ')


# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------
def is_cjk(ch: str) -> bool:
    """BERT's _is_chinese_char ranges (each such char is its own token)."""
    cp = ord(ch)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def build_vocab(all_text: str) -> list[str]:
    """A small Chinese-BERT-like vocabulary covering most of `all_text`.

    Layout as in hfl/chinese-roberta-wwm-ext: [PAD]=0, [unused1..99], [UNK]=100,
    [CLS]=101, [SEP]=102, [MASK]=103, then single characters, whole words and
    '##' word pieces.
    """
    vocab = ['[PAD]'] + [f'[unused{i}]' for i in range(1, 100)]
    vocab += ['[UNK]', '[CLS]', '[SEP]', '[MASK]', '<S>', '<T>']
    vocab += [chr(c) for c in range(33, 127) if not chr(c).isalnum()]      # ASCII punctuation
    vocab += [str(d) for d in range(10)] + [chr(c) for c in range(ord('a'), ord('z') + 1)]
    vocab += ['²', '½', '①', '②', '③', '×', '°', '…', '·', '—', '～', '~']
    vocab += ['α', 'β', 'δ', 'ο', 'σ', 'ς', 'φ', 'ω', 'μ']                # Greek subset, no λ
    vocab += ['，', '。', '！', '？', '：', '；', '“', '”', '‘', '’', '（', '）', '、', '《', '》']
    vocab += ['😂', '❤', '🇨', '🇳']                                         # emoji subset
    cjk = sorted({ch for ch in all_text if is_cjk(ch)} - MISSING_CHARS)
    vocab += cjk
    vocab += ['2022', '14', '19', '100', '000', '13', '12', '30', '3', '1415926']
    vocab += ['hello', 'world', 'iphone', 'pro', 'max', 'nba', 'final', 'diy', 'tutorial',
              'cafe', 'naive', 'un', 'vlog', 'covid', 'mail', 'good', 'morning', 'happy',
              'new', 'year', 'snake', 'case', 'name', 'creme', 'brulee', 'ecole', 'tab',
              'line', 'break', 'stra', 'abc', 'the']
    vocab += ['##' + str(d) for d in range(10)] + ['##' + chr(c) for c in range(ord('a'), ord('z') + 1)]
    vocab += ['##s', '##ing', '##ed', '##able', '##liev', '##be', '##ie', '##ve', '##ab', '##22',
              '##00', '##ne', '##il', '##ega', '##mega', '##year', '##ates', '##ted']
    vocab += ['##' + ch for ch in ['δ', 'ο', 'σ', 'ς', 'φ', 'ω', 'μ', '²', '½']]
    vocab += ['##' + ch for ch in cjk[:40]]          # realism only: never produced for CJK
    seen: set[str] = set()
    unique = []
    for token in vocab:
        if token not in seen:
            seen.add(token)
            unique.append(token)
    return unique


# ---------------------------------------------------------------------------
# Output helpers
# ---------------------------------------------------------------------------
def _escape_invisible(text: str) -> str:
    """Escape non-printable chars (U+0085, U+200B, U+3000, ...) inside JSON text.

    json.dumps(ensure_ascii=False) keeps them raw; escaping them keeps the files
    readable and safe for line-based readers (U+0085 is a line break to some).
    Only string contents can hold such chars, so this never touches the syntax.
    """
    out = []
    for ch in text:
        if ch.isprintable() or ch in '\n':
            out.append(ch)
        elif ord(ch) > 0xFFFF:
            cp = ord(ch) - 0x10000
            out.append('\\u%04x\\u%04x' % (0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)))
        else:
            out.append('\\u%04x' % ord(ch))
    return ''.join(out)


def dumps(obj, indent=None) -> str:
    """JSON with readable non-ASCII text; compact unless indented."""
    separators = None if indent is not None else (',', ':')
    return _escape_invisible(json.dumps(obj, ensure_ascii=False, indent=indent, separators=separators))


def write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8', newline='\n') as handle:
        handle.write(text)


# ---------------------------------------------------------------------------
# Synthetic images with natural-looking content
# ---------------------------------------------------------------------------
def natural_rgb(seed: int, width: int, height: int, noise: float = 6.0,
                blur: float | None = None) -> Image.Image:
    """Gradient + sinusoid background, random shapes, blur and sensor-like noise."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xx / max(width - 1, 1), yy / max(height - 1, 1)
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(20, 200), rng.uniform(-120, 120), rng.uniform(-120, 120)
        f1, f2, ph = rng.uniform(0.5, 4), rng.uniform(0.5, 4), rng.uniform(0, 6.3)
        channels.append(a + b * u + c * v + 25 * np.sin(2 * np.pi * (f1 * u + f2 * v) + ph))
    image = Image.fromarray(np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8), 'RGB')
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.randint(3, 9))):
        x0, x1 = sorted(rng.randint(-width // 4, width + width // 4, size=2).tolist())
        y0, y1 = sorted(rng.randint(-height // 4, height + height // 4, size=2).tolist())
        color = tuple(int(c) for c in rng.randint(0, 256, size=3))
        shape = rng.randint(0, 3)
        if shape == 0:
            draw.ellipse([x0, y0, x1 + 1, y1 + 1], fill=color)
        elif shape == 1:
            draw.rectangle([x0, y0, x1 + 1, y1 + 1], fill=color)
        else:
            draw.line([x0, y0, x1, y1], fill=color, width=max(1, min(width, height) // 20))
    radius = blur if blur is not None else max(0.6, min(width, height) / 160)
    image = image.filter(ImageFilter.GaussianBlur(radius))
    pixels = np.asarray(image).astype(np.float64) + rng.normal(0, noise, (height, width, 3))
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), 'RGB')


def jpeg_bytes(image: Image.Image, quality: int, subsampling: int = 2, **kwargs) -> bytes:
    """subsampling: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0 (ignored for 'L' / 'CMYK')."""
    buffer = io.BytesIO()
    if image.mode in ('L', 'CMYK'):
        image.save(buffer, 'JPEG', quality=quality, **kwargs)
    else:
        image.save(buffer, 'JPEG', quality=quality, subsampling=subsampling, **kwargs)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, 'PNG', optimize=False)
    return buffer.getvalue()


def frame_set(kind: str, seed: int) -> tuple[list[tuple[str, bytes]], int]:
    """(entries in the order they are written to the zip, zip compression) of one video.

    The write order differs from the string-sorted order on purpose.
    """
    if kind == 'mixed3':            # names sort as 1, 10, 2; odd sizes; 4:2:0 and 4:4:4
        return [
            ('2.jpg', jpeg_bytes(natural_rgb(seed + 1, 5, 7), 85, 2)),
            ('1.jpg', jpeg_bytes(natural_rgb(seed + 2, 320, 240), 90, 2)),
            ('10.jpg', jpeg_bytes(natural_rgb(seed + 3, 301, 257), 95, 0)),
        ], zipfile.ZIP_STORED
    if kind == 'strided30':          # 30 small frames: selection 0, 3, ..., 21 of the sorted names
        entries = []
        for i in range(30):
            entries.append((f'{i}.jpg', jpeg_bytes(natural_rgb(seed + 100 + i, 64, 48, noise=4.0),
                                                   85 + (i % 3) * 4, (0, 1, 2)[i % 3])))
        return entries, zipfile.ZIP_STORED
    if kind == 'portrait':           # one 1080x1920 frame, modest quality
        image = natural_rgb(seed + 5, 1080, 1920, noise=1.5, blur=6.0)
        return [('frame_001.jpg', jpeg_bytes(image, 72, 2))], zipfile.ZIP_STORED
    if kind == 'gray_cmyk':          # 'L' JPEG and CMYK JPEG (with a real K channel)
        gray = natural_rgb(seed + 6, 200, 150).convert('L')
        rng = np.random.RandomState(seed + 7)
        rgb = np.asarray(natural_rgb(seed + 8, 180, 240)).astype(np.float64) / 255.0
        k = np.clip(1.0 - rgb.max(-1) + rng.normal(0, 0.02, rgb.shape[:2]), 0, 1)
        cmy = np.clip((1.0 - rgb - k[..., None]) / np.maximum(1.0 - k[..., None], 1e-3), 0, 1)
        cmyk = np.concatenate([cmy, k[..., None]], -1)
        cmyk_image = Image.fromarray(np.round(cmyk * 255).astype(np.uint8), 'CMYK')
        return [('b.jpg', jpeg_bytes(cmyk_image, 90)), ('a.jpg', jpeg_bytes(gray, 90))], \
            zipfile.ZIP_STORED
    if kind == 'png_modes':          # RGBA PNG, palette PNG, tiny 16x16 4:4:4 JPEG
        rgba = natural_rgb(seed + 9, 128, 96).convert('RGBA')
        alpha = np.tile(np.linspace(0, 255, 128).astype(np.uint8), (96, 1))
        rgba.putalpha(Image.fromarray(alpha, 'L'))
        palette = natural_rgb(seed + 10, 97, 130).quantize(colors=48)
        return [
            ('03.jpg', jpeg_bytes(natural_rgb(seed + 11, 16, 16), 92, 0)),
            ('01.png', png_bytes(rgba)),
            ('02.png', png_bytes(palette)),
        ], zipfile.ZIP_STORED
    if kind == 'empty':
        return [], zipfile.ZIP_STORED
    if kind == 'first8of10':         # 10 frames: the first 8 sorted names, frame_10 among them
        sizes = [(96, 72), (72, 96), (100, 100), (129, 77), (80, 60), (61, 93), (120, 90),
                 (90, 64), (77, 129), (64, 64)]
        entries = []
        for i, (w, h) in enumerate(sizes, start=1):
            extra = {'progressive': True} if i == 4 else {}
            entries.append((f'frame_{i}.jpg', jpeg_bytes(natural_rgb(seed + 200 + i, w, h),
                                                         88 + i % 8, (2, 1, 0)[i % 3], **extra)))
        return entries, zipfile.ZIP_STORED
    if kind == 'progressive_exif':   # progressive JPEG; EXIF orientation 6 (must NOT be applied)
        exif = Image.Exif()
        exif[0x0112] = 6
        return [
            ('img_b.jpg', jpeg_bytes(natural_rgb(seed + 12, 240, 320), 88, 2, exif=exif.tobytes())),
            ('img_a.jpg', jpeg_bytes(natural_rgb(seed + 13, 256, 192), 91, 2, progressive=True)),
        ], zipfile.ZIP_DEFLATED
    if kind == 'tiny1':
        return [('0.jpg', jpeg_bytes(natural_rgb(seed + 14, 7, 5), 90, 2))], zipfile.ZIP_STORED
    raise ValueError(kind)


def write_zip(path: str, entries: list[tuple[str, bytes]], compression: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, 'w') as handle:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            handle.writestr(info, data)


# ---------------------------------------------------------------------------
# Annotations: 12 hand-made videos
# ---------------------------------------------------------------------------
def make_videos(categories: list[str]) -> list[dict]:
    """Videos with tricky text; 'frames' says which frame_set (None = no zip)."""
    rng = random.Random(20220501)
    ids = [str(rng.randrange(10 ** 18, 10 ** 19)) for _ in range(12)]
    ids[11] = ids[11][:-3] + ids[0][-3:]          # shares the frames folder with video 0
    cats = [rng.choice(categories) for _ in ids]
    long_title = ('【重要】今天教大家做一道家常菜红烧肉，Easy DIY tutorial！！超级简单😂'
                  '点赞关注不迷路 NBA Finals 2022 第①步')
    long_title = long_title[:70]
    long_asr = ('嗯嗯嗯大家好欢迎来到我的直播间😂今天我们来讲一讲汽车保养的小知识嗯嗯'
                '首先要准备材料、工具，然后COVID-19期间注意安全。' * 3)
    videos = [
        dict(title='今天教大家做红烧肉，超级简单！Easy DIY 😂',
             asr='嗯嗯嗯大家好，今天教大家做一道家常菜嗯嗯嗯嗯嗯红烧肉嗯嗯',
             ocr=[{'time': 5, 'text': '第二步'}, {'time': 1, 'text': '第一步：准备材料'},
                  {'time': 5, 'text': '第三步（完）'}, {'time': 0, 'text': '红烧肉 RED'}],
             frames='mixed3'),
        dict(title=long_title, asr=long_asr, ocr=[], frames='strided30'),
        dict(title='好', asr='', ocr=[{'time': 3, 'text': '这个视频太好笑了'}, {'time': 3, 'text': '哈哈哈'}],
             frames='portrait'),
        dict(title='', asr='美丽的风景让人心旷神怡',
             ocr=[{'time': t, 'text': s} for t, s in
                  [(9, '周末去爬山看日出🇨🇳'), (2, '手机摄影小技巧分享，Good Morning'),
                   (7, '健身房减脂训练计划' * 4), (2, '街头篮球比赛精彩瞬间'), (4, 'iPhone 14 Pro Max')]],
             frames='gray_cmyk'),
        dict(title='美食', asr='嗯嗯', ocr=[{'time': 0, 'text': ''}], frames='png_modes'),
        dict(title='Café NAÏVE naïve ΟΔΟΣ ΣΟΦΟΣ σοφός İstanbul Straße',
             asr='Crème Brûlée ÉCOLE Ωmega λambda', ocr=[{'time': 1, 'text': 'café'}],
             frames='empty'),
        dict(title='x²+½杯①②③ snake_case\tA_B_C\n第①步\u3000准备\x1c材料',
             asr='tab\tseparated line\nbreak\u3000ideographic\x1cfs\u200bzw',
             ocr=[{'time': 2, 'text': '½'}, {'time': 1, 'text': '²'}], frames=None),
        dict(title='宝宝的第一次旅行 vlog',
             asr='嗯嗯宝宝嗯嗯嗯嗯嗯睡觉了嗯嗯嗯嗯嗯嗯嗯嗯',
             ocr=[{'time': 10, 'text': '小猫咪在睡觉'}, {'time': 9, 'text': '宝宝'}, {'time': 10, 'text': '宝宝'}],
             frames='first8of10'),
        dict(title='HappyNewYear 2022-07-15 12:30 👍👍 ❤️ 🔥 ありがとう',
             asr='COVID-19 e-mail O\'Neil 100% 3.14 13800138000',
             ocr=[{'time': 1, 'text': '龘龘鬱鬱好难写'}, {'time': 0, 'text': '𠀀这个字你认识吗'}],
             frames='progressive_exif'),
        dict(title='', asr='', ocr=[], frames='tiny1'),
        dict(title='是的呀嗯', asr='是 的 呀 嗯', ocr=[{'time': 0, 'text': '嗯嗯嗯'}], frames=None),
        dict(title='\u3000\u3000', asr='', ocr=[], frames=None),
    ]
    out = []
    for video_id, cat, video in zip(ids, cats, videos):
        out.append(dict(id=video_id, title=video['title'], asr=video['asr'], ocr=video['ocr'],
                        category_id=cat, _frames=video['frames']))
    return out


# ---------------------------------------------------------------------------
# Text-only cases
# ---------------------------------------------------------------------------
def random_text(rng: random.Random, target_len: int) -> str:
    """Random mix of the tricky pieces, about target_len code points long."""
    parts: list[str] = []
    length = 0
    while length < target_len:
        r = rng.random()
        if r < 0.33:
            piece = rng.choice(CN_SENTENCES)
        elif r < 0.53:
            piece = rng.choice(EN_PIECES)
        elif r < 0.61:
            piece = rng.choice(EMOJI)
        elif r < 0.71:
            piece = rng.choice(PUNCT)
        elif r < 0.80:
            piece = rng.choice(DIGITS)
        elif r < 0.92:
            piece = rng.choice(TIE_WORDS)
        else:
            piece = rng.choice(UM_RUNS)
        piece += rng.choice(SEPARATORS)
        parts.append(piece)
        length += len(piece)
    return ''.join(parts)


def tie_text(rng: random.Random, words: int) -> str:
    """Whitespace-separated repeated words: many equal TF-IDF scores."""
    return ' '.join(rng.choice(TIE_WORDS) for _ in range(words))


def random_length(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.10:
        return 0
    if r < 0.16:
        return rng.randint(1, 2)
    if r < 0.55:
        return rng.randint(3, 40)
    if r < 0.78:
        return rng.randint(41, 130)
    return rng.randint(131, 420)


def random_case(rng: random.Random) -> dict:
    if rng.random() < 0.15:
        title = tie_text(rng, rng.randint(1, 25))
    elif rng.random() < 0.1:
        title = random_text(rng, 60)[:rng.choice([62, 63, 64, 65, 66, 70])]
    else:
        title = random_text(rng, random_length(rng))
    asr = tie_text(rng, rng.randint(0, 30)) if rng.random() < 0.15 else random_text(rng, random_length(rng))
    ocr = []
    for _ in range(rng.choice([0, 0, 1, 2, 3, 4, 6])):
        text = random_text(rng, random_length(rng) // 3) if rng.random() < 0.85 else ''
        ocr.append({'time': rng.randint(0, 6), 'text': text})
    return {'name': 'random', 'title': title, 'asr': asr, 'ocr': ocr}


def explicit_cases() -> list[dict]:
    """Boundary cases, each named."""
    def case(name, title='', asr='', ocr=None):
        return {'name': name, 'title': title, 'asr': asr, 'ocr': ocr or []}

    mix = '今天教大家做一道家常菜红烧肉Hello World😂，'      # 28 code points, emoji included
    long = (mix * 20)
    words = [f'{c}{c}{c}' for c in 'abcdefghijklmnopqrstuvwxyz']   # distinct 3-letter terms
    cjk = ''.join(CN_SENTENCES[i % 8] for i in range(40)).replace('，', '').replace('。', '')
    return [
        case('all_empty'),
        case('title_1_char', title='a', asr='hello world'),
        case('title_2_chars', title='ab'),
        case('title_63', title=long[:63]), case('title_64', title=long[:64]),
        case('title_65', title=long[:65]),
        case('asr_127', asr=long[:127]), case('asr_128', asr=long[:128]), case('asr_129', asr=long[:129]),
        case('ocr_128_from_items', ocr=[{'time': 1, 'text': long[:60]}, {'time': 0, 'text': long[:67]}]),
        case('asr_only_um3', asr='嗯嗯嗯'), case('asr_um2', asr='嗯嗯'),
        case('asr_um_mixed', title='嗯嗯嗯嗯', asr='嗯 嗯嗯嗯 嗯嗯嗯嗯好嗯嗯'),
        case('ocr_equal_times', title='顺序', ocr=[{'time': 1, 'text': t} for t in ['c', 'a', 'b']]),
        case('ocr_decreasing', title='顺序', ocr=[{'time': 3 - i, 'text': str(i)} for i in range(4)]),
        case('ocr_empty_texts', title='空的', ocr=[{'time': 0, 'text': ''}, {'time': 0, 'text': ''}]),
        # keyword strings of 60..68 chars around the 64 cut (each term adds 4 chars)
        *[case(f'keywords_{4 * n + extra}', title=' '.join(words[:n]) + (' ' + 'z' * (extra - 1) if extra else ''))
          for n, extra in [(15, 0), (15, 3), (16, 0), (16, 2), (17, 0)]],
        case('word_100_chars', title='长词', asr='x' * 100), case('word_101_chars', title='长词', asr='x' * 101),
        case('stop_words_joined', title='是的呀嗯'), case('stop_words_split', title='是 的 呀 嗯'),
        case('whitespace_title_only', title='  '), case('ideographic_space_title', title='\u3000\u3000'),
        case('control_chars', title='A\x1cB C\u0085D', asr='E\u200bF\ufeffG\x00H\ufffdI', ocr=[{'time': 0, 'text': '\x7f\x1f'}]),
        case('final_sigma', title='ΟΔΟΣ ΣΟΦΟΣ σοφός ΟΔΟΣ.ΑΒ Σ', asr='ΟΔΟΣ'),
        case('dotted_i', title='İstanbul İİ', asr='İ'),
        case('combining_marks', title='nai\u0308ve naïve cafe\u0301', asr='e\u0301\u0301\u0301'),
        case('underscore_and_numbers', title='a_b_c x² ½ ① 3.14 1,000 2022年', asr='_'),
        case('special_token_literal', title='[SEP] [sep] [UNK]test', asr='[CLS]'),
        case('all_unknown', title='龘鬱燚𠀀', asr='👍🔥', ocr=[{'time': 0, 'text': 'λß'}]),
        case('emoji_joined_to_words', title='hello😂 😂hello ❤️world', asr='🇨🇳china'),
        # token-level truncation: [CLS] + 126 tokens + [SEP] fill a 128-id segment exactly
        *[case(f'asr_cjk_{n}', asr=cjk[:n]) for n in (125, 126, 127, 128, 200)],
        case('title_cjk_overflow', title=cjk[:70]),          # 64 + 64 CJK chars -> truncated
        case('long_everything', title=long[:90], asr=long, ocr=[{'time': i % 3, 'text': long[i:i + 50]} for i in range(6)]),
    ]


# ---------------------------------------------------------------------------
# Metric cases
# ---------------------------------------------------------------------------
def metric_cases(categories: list[str]) -> list[dict]:
    rng = np.random.RandomState(2022)
    cases = []
    # 1) 2000 videos: truth skewed over all 200 classes; half the predictions copy
    #    the truth, the other half are uniform over all 200 classes.
    weights = np.exp(-np.arange(200) / 40.0)
    weights = weights[rng.permutation(200)]
    truth = rng.choice(200, size=2000, p=weights / weights.sum())
    pred = np.where(rng.rand(2000) < 0.5, truth, rng.randint(0, 200, size=2000))
    cases.append(([categories[i] for i in truth], [categories[i] for i in pred]))
    # 2) predictions use classes absent from the truth and vice versa
    truth_set = [categories[i] for i in range(0, 60, 3)]
    pred_set = [categories[i] for i in range(30, 120, 4)]
    truth2 = [truth_set[i] for i in rng.randint(0, len(truth_set), size=80)]
    pred2 = [t if rng.rand() < 0.4 else pred_set[rng.randint(len(pred_set))] for t in truth2]
    cases.append((truth2, pred2))
    # 3) small hand-checkable case (0801 and 0802 share level 1 = 8)
    cases.append((['0801', '0801', '0802', '1000', '1001', '0000'],
                   ['0801', '0802', '0802', '1001', '0000', '0000']))
    # 4) all correct, 5) a single wrong prediction
    cases.append((['0100', '0100', '2201'], ['0100', '0100', '2201']))
    cases.append((['0100'], ['0200']))
    return [dict(truth=t, pred=p, **rp.evaluate(t, p)) for t, p in cases]


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=os.path.join(REPO, 'tests', 'fixtures', 'pipeline'))
    args = parser.parse_args()
    out = args.out
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)

    categories = [line.strip() for line in open(CATEGORY_FILE, encoding='utf-8') if line.strip()]
    assert len(categories) == 200

    videos = make_videos(categories)
    text_rng = random.Random(2022)
    cases = explicit_cases()
    while len(cases) < 300:
        cases.append(random_case(text_rng))

    # Vocabulary over every text the fixtures contain (minus MISSING_CHARS).
    material = ''.join(CN_SENTENCES + EN_PIECES + DIGITS + EMOJI + PUNCT + UM_RUNS + TIE_WORDS)
    for item in videos + cases:
        material += item['title'] + item['asr'] + ''.join(o['text'] for o in item['ocr'])
    bert_dir = os.path.join(out, 'bert')
    write_text(os.path.join(bert_dir, 'vocab.txt'), ''.join(t + '\n' for t in build_vocab(material)))
    write_text(os.path.join(bert_dir, 'tokenizer_config.json'), '{"do_lower_case": true}\n')
    tokenizer = rp.load_tokenizer(bert_dir)
    # The same vocabulary as a HuggingFace fast tokenizer (what `tokenizer.json` loads).
    fast_dir = os.path.join(out, 'bert_fast')
    BertTokenizerFast.from_pretrained(bert_dir).save_pretrained(fast_dir)
    fast_tokenizer = BertTokenizerFast.from_pretrained(fast_dir)
    for tok in (tokenizer, fast_tokenizer):
        assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id,
                tok.sep_token_id, tok.mask_token_id) == (0, 100, 101, 102, 103)

    # Annotations + frames + expected per-video values.
    annotations = [{k: v for k, v in video.items() if not k.startswith('_')} for video in videos]
    write_text(os.path.join(out, 'annotations.json'), dumps(annotations, indent=1) + '\n')
    frames_dir = os.path.join(out, 'frames')
    for n, video in enumerate(videos):
        if video['_frames'] is not None:
            entries, compression = frame_set(video['_frames'], seed=1000 * (n + 1))
            write_zip(rp.zip_path_for(frames_dir, video['id']), entries, compression)
    os.makedirs(os.path.join(out, 'pixels'), exist_ok=True)
    lines = []
    for video in annotations:
        item = rp.process_video(tokenizer, video, frames_dir, keep_pixels=True)
        frames, mask = item['frames'], item['frame_mask']
        # Mean of each slot's normalized float32 tensor, accumulated in float64.
        frame_mean = [float(frames[s].double().mean()) if mask[s] else 0.0 for s in range(rp.MAX_FRAMES)]
        if len(item['frame_indices']):
            np.save(os.path.join(out, 'pixels', video['id'] + '.npy'), item['pixels'])
        lines.append(dumps({
            'id': video['id'],
            'input_ids': item['input_ids'],
            'attention_mask': item['attention_mask'],
            'frame_indices': item['frame_indices'],
            'frame_mask': [int(m) for m in mask],
            'frame_mean': frame_mean,
            'title_segment': item['title_segment'],
            'ocr_segment': item['ocr_segment'],
            'asr_segment': item['asr_segment'],
        }))
    write_text(os.path.join(out, 'expected.jsonl'), '\n'.join(lines) + '\n')

    # Text-only cases; for bert_fast only the cases whose ids differ from the slow tokenizer's.
    lines, fast_lines = [], []
    for index, case in enumerate(cases):
        enc = rp.encode_text(tokenizer, case['title'], case['asr'], case['ocr'])
        fast = rp.encode_text(fast_tokenizer, case['title'], case['asr'], case['ocr'])
        assert {k: v for k, v in fast.items() if k.endswith('_segment')} == \
            {k: v for k, v in enc.items() if k.endswith('_segment')}
        if (fast['input_ids'], fast['attention_mask']) != (enc['input_ids'], enc['attention_mask']):
            fast_lines.append(dumps({'case': index, 'name': case['name'],
                                     'input_ids': fast['input_ids'],
                                     'attention_mask': fast['attention_mask']}))
        lines.append(dumps({
            'case': index, 'name': case['name'],
            'title': case['title'], 'asr': case['asr'], 'ocr': case['ocr'],
            'input_ids': enc['input_ids'], 'attention_mask': enc['attention_mask'],
            'title_segment': enc['title_segment'], 'ocr_segment': enc['ocr_segment'],
            'asr_segment': enc['asr_segment'],
            'keywords': [[term, score] for term, score in enc['keywords']],
        }))
    write_text(os.path.join(out, 'text_cases.jsonl'), '\n'.join(lines) + '\n')
    write_text(os.path.join(out, 'text_cases_bert_fast.jsonl'), ''.join(line + '\n' for line in fast_lines))

    # Frame selection for n = 0..40.
    ns = list(range(41))
    write_text(os.path.join(out, 'selection.json'),
               json.dumps({'n': ns, 'indices': [rp.select_frames(n) for n in ns]}) + '\n')

    # Metric cases, and the first one as ground-truth / result CSV files.
    mcases = metric_cases(categories)
    write_text(os.path.join(out, 'metric_cases.json'), dumps(mcases, indent=1) + '\n')
    id_rng = random.Random(7)
    ids = []
    seen = set()
    while len(ids) < len(mcases[0]['truth']):
        vid = str(id_rng.randrange(10 ** 18, 10 ** 19))
        if vid not in seen:
            seen.add(vid)
            ids.append(vid)
    write_text(os.path.join(out, 'metric_truth.csv'),
               ''.join(f'{i},{c}\n' for i, c in zip(ids, mcases[0]['truth'])))
    order = list(range(len(ids)))
    id_rng.shuffle(order)            # result lines in another order: matched by id
    write_text(os.path.join(out, 'metric_result.csv'),
               ''.join(f'{ids[k]},{mcases[0]["pred"][k]}\n' for k in order))
    print(f'wrote fixtures to {out}')


if __name__ == '__main__':
    main()
