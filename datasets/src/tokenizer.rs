//! Tokenization of the three text segments into the model's input ids.
//!
//! The tokenizer comes from a HuggingFace model directory: `tokenizer.json` when present,
//! otherwise a BERT WordPiece tokenizer built from `vocab.txt` (lowercasing as
//! `tokenizer_config.json` says, default on). Special token ids come from the vocabulary.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{AddedToken, Model, Tokenizer};

use crate::error::DataError;
use crate::text::TextSegments;

/// Ids per segment in the `seed` layout, `[CLS]` and `[SEP]` included.
pub const SEGMENT_LEN: usize = 128;
/// Length of the `seed` layout: `[CLS]` + 3 segments of 128 + 3 `[SEP]`.
pub const SEED_LEN: usize = 4 + 3 * SEGMENT_LEN;

/// How the three segments are laid out in the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextLayout {
    /// The reference's 388 ids: `[CLS]` + three `[CLS] tokens [SEP]` segments padded to 128
    /// each, each followed by `[SEP]` (padding sits in the middle).
    #[default]
    Seed,
    /// One `[CLS]`, the segments' tokens each followed by `[SEP]`, no inner padding: shorter
    /// inputs for speed work, padded per batch.
    Compact,
}

/// The special tokens every BERT vocabulary must hold.
const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Token ids and attention mask of one video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedText {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
}

/// The ids of the special tokens, read from the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    /// `[PAD]`.
    pub pad: u32,
    /// `[UNK]`.
    pub unk: u32,
    /// `[CLS]`.
    pub cls: u32,
    /// `[SEP]`.
    pub sep: u32,
    /// `[MASK]`.
    pub mask: u32,
}

/// Encodes text segments into input ids with a BERT tokenizer.
#[derive(Clone)]
pub struct TextEncoder {
    tokenizer: Tokenizer,
    special: SpecialTokens,
    layout: TextLayout,
    max_len: usize,
}

#[derive(Deserialize)]
struct TokenizerConfig {
    #[serde(default = "default_true")]
    do_lower_case: bool,
}

fn default_true() -> bool {
    true
}

impl TextEncoder {
    /// Loads the tokenizer of a HuggingFace model directory, in the `seed` layout.
    pub fn from_dir(dir: &Path) -> Result<Self, DataError> {
        let tokenizer_error =
            |path: PathBuf, message: String| DataError::Tokenizer { path, message };
        let json = dir.join("tokenizer.json");
        let tokenizer = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| tokenizer_error(json.clone(), e.to_string()))?
        } else {
            let vocab = dir.join("vocab.txt");
            if !vocab.is_file() {
                return Err(tokenizer_error(
                    dir.to_path_buf(),
                    "neither tokenizer.json nor vocab.txt found".into(),
                ));
            }
            let lowercase = read_lowercase(dir)?;
            let vocab_str = vocab
                .to_str()
                .ok_or_else(|| tokenizer_error(vocab.clone(), "path is not UTF-8".into()))?;
            let model = WordPiece::from_file(vocab_str)
                .unk_token("[UNK]".into())
                .build()
                .map_err(|e| tokenizer_error(vocab.clone(), e.to_string()))?;
            // Adding a missing special token would append it after the vocabulary and give
            // ids that no BERT checkpoint was trained with.
            let missing: Vec<&str> = SPECIAL_TOKENS
                .into_iter()
                .filter(|token| model.token_to_id(token).is_none())
                .collect();
            if !missing.is_empty() {
                return Err(tokenizer_error(
                    vocab.clone(),
                    format!(
                        "the vocabulary ({} tokens) lacks the special token(s) {}; a BERT \
                         vocabulary has all of {}",
                        model.get_vocab_size(),
                        missing.join(", "),
                        SPECIAL_TOKENS.join(", ")
                    ),
                ));
            }
            let mut tokenizer = Tokenizer::new(model);
            tokenizer
                .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
                .map_err(|e| tokenizer_error(vocab.clone(), e.to_string()))?;
            tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
            let specials: Vec<AddedToken> = SPECIAL_TOKENS
                .iter()
                .map(|token| AddedToken::from(*token, true))
                .collect();
            tokenizer
                .add_special_tokens(specials)
                .map_err(|e| tokenizer_error(vocab.clone(), e.to_string()))?;
            tokenizer
        };
        let id = |token: &str| {
            tokenizer.token_to_id(token).ok_or_else(|| {
                tokenizer_error(dir.to_path_buf(), format!("vocabulary has no {token}"))
            })
        };
        let special = SpecialTokens {
            pad: id("[PAD]")?,
            unk: id("[UNK]")?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            mask: id("[MASK]")?,
        };
        Ok(TextEncoder {
            tokenizer,
            special,
            layout: TextLayout::Seed,
            max_len: SEED_LEN,
        })
    }

    /// Switches the layout; `max_len` bounds the `compact` layout (the `seed` layout is 388).
    pub fn with_layout(mut self, layout: TextLayout, max_len: usize) -> Self {
        self.layout = layout;
        self.max_len = match layout {
            TextLayout::Seed => SEED_LEN,
            TextLayout::Compact => max_len.max(4),
        };
        self
    }

    /// The layout in use.
    pub fn layout(&self) -> TextLayout {
        self.layout
    }

    /// The special token ids.
    pub fn special_tokens(&self) -> SpecialTokens {
        self.special
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Word-piece ids of one text, without special tokens.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, DataError> {
        let encoding = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| DataError::Invalid(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Encodes one video's segments in the configured layout.
    pub fn encode(&self, segments: &TextSegments) -> Result<EncodedText, DataError> {
        let pieces = [
            self.tokenize(&segments.title)?,
            self.tokenize(&segments.ocr)?,
            self.tokenize(&segments.asr)?,
        ];
        Ok(match self.layout {
            TextLayout::Seed => self.seed_layout(&pieces),
            TextLayout::Compact => self.compact_layout(&pieces),
        })
    }

    fn seed_layout(&self, pieces: &[Vec<u32>; 3]) -> EncodedText {
        let SpecialTokens { cls, sep, pad, .. } = self.special;
        let mut input_ids = Vec::with_capacity(SEED_LEN);
        let mut attention_mask = Vec::with_capacity(SEED_LEN);
        input_ids.push(cls);
        attention_mask.push(1);
        for tokens in pieces {
            let kept = &tokens[..tokens.len().min(SEGMENT_LEN - 2)];
            input_ids.push(cls);
            input_ids.extend_from_slice(kept);
            input_ids.push(sep);
            attention_mask.extend(std::iter::repeat_n(1, kept.len() + 2));
            let padding = SEGMENT_LEN - kept.len() - 2;
            input_ids.extend(std::iter::repeat_n(pad, padding));
            attention_mask.extend(std::iter::repeat_n(0, padding));
            input_ids.push(sep);
            attention_mask.push(1);
        }
        EncodedText {
            input_ids,
            attention_mask,
        }
    }

    fn compact_layout(&self, pieces: &[Vec<u32>; 3]) -> EncodedText {
        let SpecialTokens { cls, sep, .. } = self.special;
        let mut input_ids = vec![cls];
        for tokens in pieces {
            input_ids.extend_from_slice(&tokens[..tokens.len().min(SEGMENT_LEN - 2)]);
            input_ids.push(sep);
        }
        if input_ids.len() > self.max_len {
            input_ids.truncate(self.max_len - 1);
            input_ids.push(sep);
        }
        let attention_mask = vec![1; input_ids.len()];
        EncodedText {
            input_ids,
            attention_mask,
        }
    }
}

fn read_lowercase(dir: &Path) -> Result<bool, DataError> {
    let path = dir.join("tokenizer_config.json");
    if !path.is_file() {
        return Ok(true);
    }
    let content = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    let config: TokenizerConfig =
        serde_json::from_str(&content).map_err(|e| DataError::Tokenizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
    Ok(config.do_lower_case)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoder() -> (tempfile::TempDir, TextEncoder) {
        let dir = tempfile::tempdir().unwrap();
        let vocab = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "猫", "狗", "hello", "##s",
        ];
        std::fs::write(dir.path().join("vocab.txt"), vocab.join("\n")).unwrap();
        let encoder = TextEncoder::from_dir(dir.path()).unwrap();
        (dir, encoder)
    }

    #[test]
    fn seed_layout_is_388_with_inner_segments() {
        let (_dir, encoder) = encoder();
        let segments = TextSegments {
            title: "猫 Hellos".into(),
            ocr: String::new(),
            asr: "狗x".into(),
        };
        let encoded = encoder.encode(&segments).unwrap();
        assert_eq!(encoded.input_ids.len(), SEED_LEN);
        assert_eq!(&encoded.input_ids[..6], &[2, 2, 5, 7, 8, 3]);
        assert_eq!(encoded.input_ids[6], 0);
        assert_eq!(encoded.input_ids[129], 3);
        assert_eq!(&encoded.input_ids[130..132], &[2, 3]);
        assert_eq!(&encoded.input_ids[259..263], &[2, 6, 1, 3]);
        assert_eq!(encoded.input_ids[387], 3);
        let ones: usize = encoded.attention_mask.iter().map(|&m| m as usize).sum();
        assert_eq!(ones, 1 + 5 + 1 + 2 + 1 + 4 + 1);
    }

    #[test]
    fn long_segments_are_cut_to_128() {
        let (_dir, encoder) = encoder();
        let segments = TextSegments {
            title: "猫".repeat(300),
            ocr: "狗".repeat(300),
            asr: String::new(),
        };
        let encoded = encoder.encode(&segments).unwrap();
        assert_eq!(encoded.input_ids.len(), SEED_LEN);
        assert_eq!(encoded.input_ids[128], 3);
        assert!(encoded.attention_mask[..259].iter().all(|&m| m == 1));
        let compact = encoder
            .with_layout(TextLayout::Compact, 100)
            .encode(&segments)
            .unwrap();
        assert_eq!(compact.input_ids.len(), 100);
        assert_eq!(compact.input_ids[0], 2);
        assert_eq!(compact.input_ids[99], 3);
    }

    #[test]
    fn missing_vocab_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = TextEncoder::from_dir(dir.path()).err().unwrap().to_string();
        assert!(err.contains("vocab.txt"), "{err}");
    }

    #[test]
    fn vocabularies_without_special_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vocab.txt"), "[PAD]\n[UNK]\n[SEP]\n猫\n").unwrap();
        let err = TextEncoder::from_dir(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("lacks the special token(s) [CLS], [MASK]"),
            "{err}"
        );
        std::fs::write(dir.path().join("vocab.txt"), "").unwrap();
        let err = TextEncoder::from_dir(dir.path()).err().unwrap().to_string();
        assert!(err.contains("the vocabulary (0 tokens) lacks"), "{err}");
    }
}
