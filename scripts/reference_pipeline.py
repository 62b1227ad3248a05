"""Independent Python reference of the vidcls data pipeline and metric.

This module re-implements, with the same libraries the PyTorch reference used
(scikit-learn, transformers' pure-Python BertTokenizer, Pillow, torchvision),
the parts of the reference specification (REFERENCE.md) that turn one video into model
inputs ("Text pipeline", "Frame pipeline") and the evaluation ("Metric").

It is a development tool only: `make_pipeline_fixtures.py` uses it to write the
fixtures under tests/fixtures/pipeline/ that the Rust tests compare against, and
`bench_reference_pipeline.py` times it. The Rust build and CI never run Python.

Library behaviour that the fixtures therefore pin down (and Rust must match):
  * TF-IDF: sklearn TfidfVectorizer, token_pattern (?u)\\b\\w+\\b over Python
    `re` word characters, lowercase by `str.lower()` on the whole document,
    smooth idf, raw counts, L2 row norm, all in float64.
  * Tokenizer: transformers 4.x slow `BertTokenizer`. Its `tokenize()` first
    lower-cases the text one character at a time (so a word-final capital
    sigma becomes 'σ', never 'ς'), then BasicTokenizer: remove control chars
    and U+0000/U+FFFD, map whitespace to ' ', pad CJK ideographs with spaces,
    NFC, split on whitespace, lower + NFD + drop Mn marks, split on punctuation,
    WordPiece (longest match first, words over 100 chars -> [UNK]).
  * Frames: Pillow decode + convert('RGB'); torchvision Resize(256) (bilinear,
    Pillow antialias) + CenterCrop(224); ToTensor + Normalize in float32.
"""

from __future__ import annotations

import io
import os
import re
import zipfile

import numpy as np
import torch
from PIL import Image
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from torchvision import transforms
from transformers import BertTokenizer

# ---------------------------------------------------------------------------
# Constants from REFERENCE.md
# ---------------------------------------------------------------------------
MAX_FRAMES = 8            # frame slots per video
FIRST_N_LIMIT = 24        # 8 < n <= 24 -> first 8 frames; n > 24 -> strided
SEGMENT_LEN = 128         # ids per text segment ([CLS] tokens [SEP] + padding)
TEXT_CUT = 64             # title / keyword string cut length
LONG_TEXT = 128           # ocr/asr of this many chars or more: first 64 + last 64
STOP_WORDS = ['是', '的', '嗯', '呀']
TOKEN_PATTERN = r"(?u)\b\w+\b"
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)

# ---------------------------------------------------------------------------
# Text pipeline
# ---------------------------------------------------------------------------
_UM_RUN = re.compile('嗯{3,}')


def clean_asr(asr: str) -> str:
    """Step 1: delete every run of 3 or more consecutive '嗯' (runs of 2 stay)."""
    return _UM_RUN.sub('', asr)


def join_ocr(ocr: list[dict]) -> str:
    """Step 2: ocr items sorted by time (Python's sort is stable), joined by ','."""
    items = sorted(ocr, key=lambda item: item['time'])
    return ','.join(item['text'] for item in items)


def tfidf_keywords(text: str) -> list[tuple[str, float]]:
    """Step 3 ranking: (term, score) pairs sorted by (score, term) descending.

    The string is split on whitespace (`str.split()`, which also splits on
    U+001C..U+001F, U+0085, U+00A0, U+3000, ...) into documents, each one
    tokenized by TfidfVectorizer; a term's score is its maximum over the
    documents. When nothing is left to rank (no documents, or only stop
    words / no word characters) sklearn raises ValueError: no keywords.
    """
    documents = text.split()
    vectorizer = TfidfVectorizer(token_pattern=TOKEN_PATTERN, stop_words=STOP_WORDS)
    try:
        matrix = vectorizer.fit_transform(documents)
    except ValueError:  # "empty vocabulary; perhaps the documents only contain stop words"
        return []
    scores = matrix.max(axis=0).toarray().ravel().tolist()
    terms = vectorizer.get_feature_names_out().tolist()
    ranked = sorted(zip(scores, terms), reverse=True)
    return [(term, score) for score, term in ranked]


def cut_long(text: str) -> str:
    """Step 4: an ocr/asr text of 128 code points or more keeps first 64 + last 64."""
    if len(text) >= LONG_TEXT:
        return text[:TEXT_CUT] + text[-TEXT_CUT:]
    return text


def text_segments(title: str, asr: str, ocr: list[dict]) -> dict:
    """Steps 1-4: the three strings fed to the tokenizer (+ the ranked keywords)."""
    asr = clean_asr(asr)
    ocr_text = join_ocr(ocr)
    keywords: list[tuple[str, float]] = []
    if len(title) < 2:
        title_segment = ''
    else:
        # Ranked over the untruncated title + ocr + asr, concatenated with no separator.
        keywords = tfidf_keywords(title + ocr_text + asr)
        keyword_string = ''.join(term + ' ' for term, _ in keywords)
        if len(keyword_string) >= TEXT_CUT:
            keyword_string = keyword_string[:TEXT_CUT]
        cut_title = title[:TEXT_CUT] if len(title) >= TEXT_CUT else title
        title_segment = cut_title + keyword_string
    return {
        'title_segment': title_segment,
        'ocr_segment': cut_long(ocr_text),
        'asr_segment': cut_long(asr),
        'keywords': keywords,
    }


def load_tokenizer(bert_dir: str) -> BertTokenizer:
    """The slow (pure-Python) BertTokenizer over `<bert_dir>/vocab.txt`."""
    return BertTokenizer(os.path.join(bert_dir, 'vocab.txt'), do_lower_case=True)


def encode_segment(tokenizer: BertTokenizer, text: str) -> tuple[list[int], list[int]]:
    """Step 5: [CLS] tokens [SEP], truncated to 128 ids, padded with [PAD] to 128."""
    encoded = tokenizer(text, max_length=SEGMENT_LEN, padding='max_length', truncation=True)
    return list(encoded['input_ids']), list(encoded['attention_mask'])


def encode_text(tokenizer: BertTokenizer, title: str, asr: str, ocr: list[dict]) -> dict:
    """Steps 1-6: 388 input ids and attention mask for one video (plus debug strings)."""
    segments = text_segments(title, asr, ocr)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    title_ids, title_mask = encode_segment(tokenizer, segments['title_segment'])
    ocr_ids, ocr_mask = encode_segment(tokenizer, segments['ocr_segment'])
    asr_ids, asr_mask = encode_segment(tokenizer, segments['asr_segment'])
    input_ids = [cls] + title_ids + [sep] + ocr_ids + [sep] + asr_ids + [sep]
    attention_mask = [1] + title_mask + [1] + ocr_mask + [1] + asr_mask + [1]
    assert len(input_ids) == len(attention_mask) == 3 * SEGMENT_LEN + 4
    return dict(segments, input_ids=input_ids, attention_mask=attention_mask)


# ---------------------------------------------------------------------------
# Frame pipeline
# ---------------------------------------------------------------------------
def select_frames(num_frames: int, max_frames: int = MAX_FRAMES) -> list[int]:
    """Indices (into the string-sorted entry names) of the frames that are used."""
    if num_frames <= max_frames:
        return list(range(num_frames))
    if num_frames <= FIRST_N_LIMIT:
        return list(range(max_frames))
    step = num_frames // max_frames
    return list(range(0, num_frames, step))[:max_frames]


# Resize(256): shorter side -> 256, longer -> int(256 * long / short), Pillow
# bilinear (antialiased); CenterCrop(224): offset round((size - 224) / 2).
RESIZE_CROP = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
TO_TENSOR_NORMALIZE = transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize(mean=IMAGE_MEAN, std=IMAGE_STD),
])


def zip_path_for(frames_dir: str, video_id: str) -> str:
    """`<frames_dir>/<last 3 chars of id>/<id>.zip`."""
    return os.path.join(frames_dir, video_id[-3:], video_id + '.zip')


def decode_frame(data: bytes) -> Image.Image:
    """Decode one frame, force RGB (the reference crashes on grayscale), resize + crop."""
    image = Image.open(io.BytesIO(data)).convert('RGB')
    return RESIZE_CROP(image)


def load_frames(zip_path: str, keep_pixels: bool = False) -> dict:
    """Frame tensor [8, 3, 224, 224] (zeros where missing) and mask [8] for one video.

    A missing zip or an empty one gives all-zero frames and an all-zero mask.
    With keep_pixels, also returns the uint8 [n, 224, 224, 3] crops.
    """
    frames = torch.zeros((MAX_FRAMES, 3, 224, 224), dtype=torch.float32)
    mask = torch.zeros((MAX_FRAMES,), dtype=torch.long)
    indices: list[int] = []
    pixels: list[np.ndarray] = []
    if os.path.exists(zip_path):
        with zipfile.ZipFile(zip_path) as handle:
            names = sorted(handle.namelist())   # frame order = names sorted as strings
            indices = select_frames(len(names))
            for slot, index in enumerate(indices):
                crop = decode_frame(handle.read(names[index]))
                if keep_pixels:
                    pixels.append(np.asarray(crop, dtype=np.uint8).copy())
                frames[slot] = TO_TENSOR_NORMALIZE(crop)
                mask[slot] = 1
    result = {'frames': frames, 'frame_mask': mask, 'frame_indices': indices}
    if keep_pixels:
        result['pixels'] = (np.stack(pixels) if pixels
                            else np.zeros((0, 224, 224, 3), dtype=np.uint8))
    return result


# ---------------------------------------------------------------------------
# Metric
# ---------------------------------------------------------------------------
def lv1_of(category_id: str) -> int:
    """Level-1 class: the integer value of the category id's first two characters."""
    return int(category_id[:2])


def evaluate(truth: list[str], pred: list[str]) -> dict:
    """sklearn F1 (micro / macro over the union of labels seen) at both levels.

    mean_f1 is summed in the order the reference's evaluate() uses:
    (lv2 macro + lv1 macro + lv1 micro + lv2 micro) / 4.
    """
    assert len(truth) == len(pred)
    truth_lv1 = [lv1_of(c) for c in truth]
    pred_lv1 = [lv1_of(c) for c in pred]
    lv2_f1_micro = f1_score(truth, pred, average='micro', zero_division=0)
    lv2_f1_macro = f1_score(truth, pred, average='macro', zero_division=0)
    lv1_f1_micro = f1_score(truth_lv1, pred_lv1, average='micro', zero_division=0)
    lv1_f1_macro = f1_score(truth_lv1, pred_lv1, average='macro', zero_division=0)
    mean_f1 = (lv2_f1_macro + lv1_f1_macro + lv1_f1_micro + lv2_f1_micro) / 4.0
    return {
        'lv1_acc': float(accuracy_score(truth_lv1, pred_lv1)),
        'lv2_acc': float(accuracy_score(truth, pred)),
        'lv1_f1_micro': float(lv1_f1_micro),
        'lv1_f1_macro': float(lv1_f1_macro),
        'lv2_f1_micro': float(lv2_f1_micro),
        'lv2_f1_macro': float(lv2_f1_macro),
        'mean_f1': float(mean_f1),
    }


# ---------------------------------------------------------------------------
# One whole video
# ---------------------------------------------------------------------------
def process_video(tokenizer: BertTokenizer, video: dict, frames_dir: str,
                  keep_pixels: bool = False) -> dict:
    """Text + frames of one annotation entry, as the reference's dataset item."""
    text = encode_text(tokenizer, video.get('title', ''), video.get('asr', ''),
                       video.get('ocr', []))
    frames = load_frames(zip_path_for(frames_dir, video['id']), keep_pixels=keep_pixels)
    return dict(text, **frames)


def load_competition_dataset(data: str) -> tuple[list[dict], list[dict], dict[str, str]]:
    """The labeled and test annotations of a dataset in the competition's layout, and the test
    ground truth (`test_ground_truth.csv`: `id,category_id` lines) by id; exits with a message
    when the ground truth does not match the test annotations."""
    import csv
    import json
    import os
    import sys

    def load(split: str) -> list[dict]:
        with open(os.path.join(data, "annotations", f"{split}.json"), encoding="utf-8") as handle:
            return json.load(handle)

    labeled, test = load("labeled"), load("test")
    with open(os.path.join(data, "test_ground_truth.csv"), newline="", encoding="utf-8") as handle:
        truth_by_id = {row[0]: row[1] for row in csv.reader(handle) if row}
    missing = [video["id"] for video in test if video["id"] not in truth_by_id]
    if missing or len(truth_by_id) != len(test):
        sys.exit(f"test_ground_truth.csv does not match annotations/test.json "
                 f"({len(missing)} test ids missing, {len(truth_by_id)} lines for {len(test)} videos)")
    return labeled, test, truth_by_id
