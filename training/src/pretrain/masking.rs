//! The inputs of the reference's two pre-training objectives (REFERENCE.md, "Pre-training"):
//! the masked-language-model masking of the text and the reversed-half video-text pairs.

use rand::Rng;
use vidcls_datasets::tokenizer::SpecialTokens;

/// The masking rule of the MLM objective: each token that is not special is chosen with
/// `probability`; a chosen token becomes `[MASK]` with probability 0.8, a uniformly random id
/// of the whole vocabulary with probability 0.1, and stays as it is otherwise. The loss is
/// taken on the chosen positions only.
#[derive(Debug, Clone, PartialEq)]
pub struct MlmMasking {
    /// Probability that a non-special token is chosen (the reference's 0.15).
    pub probability: f64,
    /// The special tokens: never chosen; `[MASK]` replaces chosen tokens.
    pub special: SpecialTokens,
    /// Size of the vocabulary, which random replacements are drawn from.
    pub vocab_size: usize,
}

/// Share of the chosen tokens replaced by `[MASK]`.
const MASK_SHARE: f64 = 0.8;
/// Share of the chosen tokens replaced by a random id (the rest stay unchanged).
const RANDOM_SHARE: f64 = 0.1;

/// Token ids after masking.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedTokens {
    /// The ids the model sees, in the layout of the input (row-major `[batch, len]`).
    pub input_ids: Vec<i64>,
    /// Flat positions (`row * len + column`) of the chosen tokens, ascending.
    pub positions: Vec<usize>,
    /// The original ids at those positions: the MLM targets.
    pub targets: Vec<i64>,
}

impl MlmMasking {
    /// Whether `id` is one of the special tokens, which are never chosen.
    pub fn is_special(&self, id: i64) -> bool {
        let SpecialTokens {
            pad,
            unk,
            cls,
            sep,
            mask,
        } = self.special;
        [pad, unk, cls, sep, mask]
            .iter()
            .any(|&s| i64::from(s) == id)
    }

    /// Masks token ids (any layout; positions are indices into `ids`) with draws from `rng`.
    pub fn mask(&self, ids: &[i64], rng: &mut impl Rng) -> MaskedTokens {
        let mut input_ids = ids.to_vec();
        let (mut positions, mut targets) = (Vec::new(), Vec::new());
        for (position, &id) in ids.iter().enumerate() {
            if self.is_special(id) || rng.random::<f64>() >= self.probability {
                continue;
            }
            positions.push(position);
            targets.push(id);
            let kind: f64 = rng.random();
            if kind < MASK_SHARE {
                input_ids[position] = i64::from(self.special.mask);
            } else if kind < MASK_SHARE + RANDOM_SHARE {
                input_ids[position] = rng.random_range(0..self.vocab_size as i64);
            }
        }
        MaskedTokens {
            input_ids,
            positions,
            targets,
        }
    }
}

/// For each video of a batch of `batch`, the video whose frames it is shown with: the first
/// `batch / 2` keep their own, the others take those of the second half in reversed order (so
/// the middle video of an odd second half keeps its own).
pub fn itm_pairing(batch: usize) -> Vec<usize> {
    let half = batch / 2;
    (0..batch)
        .map(|i| if i < half { i } else { batch - 1 - (i - half) })
        .collect()
}

/// The ITM label of each video of a pairing: 1 where it kept its own frames, else 0.
pub fn itm_labels(pairing: &[usize]) -> Vec<f32> {
    pairing
        .iter()
        .enumerate()
        .map(|(i, &j)| if i == j { 1.0 } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn pairs_reverse_the_second_half() {
        assert_eq!(itm_pairing(1), [0]);
        assert_eq!(itm_pairing(4), [0, 1, 3, 2]);
        assert_eq!(itm_pairing(5), [0, 1, 4, 3, 2]);
        assert_eq!(itm_labels(&itm_pairing(5)), [1.0, 1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn only_chosen_positions_change_and_specials_stay() {
        let masking = MlmMasking {
            probability: 0.5,
            special: SpecialTokens {
                pad: 0,
                unk: 100,
                cls: 101,
                sep: 102,
                mask: 103,
            },
            vocab_size: 1000,
        };
        let ids: Vec<i64> = (0..400)
            .map(|i| [101, 0, 102, 500 + i][i as usize % 4])
            .collect();
        let masked = masking.mask(&ids, &mut StdRng::seed_from_u64(1));
        assert!(!masked.positions.is_empty());
        for (position, (&before, &after)) in ids.iter().zip(&masked.input_ids).enumerate() {
            let chosen = masked.positions.binary_search(&position).is_ok();
            assert!(!chosen || !masking.is_special(before));
            assert!(chosen || before == after);
        }
        let targets: Vec<i64> = masked.positions.iter().map(|&p| ids[p]).collect();
        assert_eq!(targets, masked.targets);
    }
}
