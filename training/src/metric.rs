//! The competition's metric: mean of the level-1 and level-2 micro and macro F1 scores, with
//! scikit-learn's `f1_score` semantics, plus both accuracies.

use serde::{Deserialize, Serialize};
use vidcls_datasets::taxonomy::Taxonomy;

/// The seven numbers the reference reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Level-1 accuracy.
    pub lv1_acc: f64,
    /// Level-2 accuracy.
    pub lv2_acc: f64,
    /// Level-1 micro F1.
    pub lv1_f1_micro: f64,
    /// Level-1 macro F1.
    pub lv1_f1_macro: f64,
    /// Level-2 micro F1.
    pub lv2_f1_micro: f64,
    /// Level-2 macro F1.
    pub lv2_f1_macro: f64,
    /// Mean of the four F1 scores.
    pub mean_f1: f64,
}

/// Per-class F1 counts of one level.
struct Confusion {
    true_positive: Vec<u64>,
    predicted: Vec<u64>,
    actual: Vec<u64>,
}

impl Confusion {
    fn new(truth: &[usize], prediction: &[usize]) -> Self {
        let classes = truth.iter().chain(prediction).max().map_or(0, |&m| m + 1);
        let mut confusion = Confusion {
            true_positive: vec![0; classes],
            predicted: vec![0; classes],
            actual: vec![0; classes],
        };
        for (&t, &p) in truth.iter().zip(prediction) {
            confusion.actual[t] += 1;
            confusion.predicted[p] += 1;
            if t == p {
                confusion.true_positive[t] += 1;
            }
        }
        confusion
    }

    fn accuracy(&self) -> f64 {
        let total: u64 = self.actual.iter().sum();
        if total == 0 {
            return 0.0;
        }
        self.true_positive.iter().sum::<u64>() as f64 / total as f64
    }

    /// F1 from counts, 0 where precision + recall is 0 or undefined (scikit-learn's default).
    fn f1(tp: u64, predicted: u64, actual: u64) -> f64 {
        let precision = if predicted == 0 {
            0.0
        } else {
            tp as f64 / predicted as f64
        };
        let recall = if actual == 0 {
            0.0
        } else {
            tp as f64 / actual as f64
        };
        if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        }
    }

    fn micro_f1(&self) -> f64 {
        Self::f1(
            self.true_positive.iter().sum(),
            self.predicted.iter().sum(),
            self.actual.iter().sum(),
        )
    }

    /// Mean F1 over the classes present in truth or prediction.
    fn macro_f1(&self) -> f64 {
        let present: Vec<usize> = (0..self.actual.len())
            .filter(|&c| self.actual[c] > 0 || self.predicted[c] > 0)
            .collect();
        if present.is_empty() {
            return 0.0;
        }
        present
            .iter()
            .map(|&c| Self::f1(self.true_positive[c], self.predicted[c], self.actual[c]))
            .sum::<f64>()
            / present.len() as f64
    }
}

/// Scores predictions against the truth, both given as level-2 class ids.
///
/// # Panics
/// If the slices differ in length or hold ids outside the taxonomy (callers validate input).
pub fn score(truth: &[usize], prediction: &[usize]) -> Scores {
    assert_eq!(
        truth.len(),
        prediction.len(),
        "truth and prediction lengths differ"
    );
    let taxonomy = Taxonomy::get();
    let lv1 = |ids: &[usize]| -> Vec<usize> {
        ids.iter()
            .map(|&lv2| {
                taxonomy
                    .lv1_of_lv2(lv2)
                    .expect("level-2 id within the taxonomy")
            })
            .collect()
    };
    let level1 = Confusion::new(&lv1(truth), &lv1(prediction));
    let level2 = Confusion::new(truth, prediction);
    let (lv1_f1_micro, lv1_f1_macro) = (level1.micro_f1(), level1.macro_f1());
    let (lv2_f1_micro, lv2_f1_macro) = (level2.micro_f1(), level2.macro_f1());
    Scores {
        lv1_acc: level1.accuracy(),
        lv2_acc: level2.accuracy(),
        lv1_f1_micro,
        lv1_f1_macro,
        lv2_f1_micro,
        lv2_f1_macro,
        mean_f1: (lv1_f1_micro + lv1_f1_macro + lv2_f1_micro + lv2_f1_macro) / 4.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_case() {
        // truth 0,0,1,2 ; prediction 0,1,1,3 (level-2 ids; all in level 0 "00xx").
        let scores = score(&[0, 0, 1, 2], &[0, 1, 1, 3]);
        assert_eq!(scores.lv2_acc, 0.5);
        assert!((scores.lv2_f1_micro - 0.5).abs() < 1e-12);
        // classes 0: p=1, r=.5 -> 2/3; 1: p=.5, r=1 -> 2/3; 2: 0; 3: 0.
        assert!((scores.lv2_f1_macro - (4.0 / 3.0) / 4.0).abs() < 1e-12);
        assert_eq!(scores.lv1_acc, 1.0);
        assert_eq!(scores.lv1_f1_macro, 1.0);
    }
}
