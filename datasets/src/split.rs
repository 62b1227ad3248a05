//! Train/validation split and the reference's resampling of rare categories.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Default validation share of the labeled videos.
pub const DEFAULT_VALIDATION_RATIO: f64 = 0.02;
/// Default split seed (the reference's).
pub const DEFAULT_SPLIT_SEED: u64 = 2022;

/// Indices of the training and validation videos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Training video indices, ascending.
    pub train: Vec<usize>,
    /// Validation video indices, ascending.
    pub validation: Vec<usize>,
}

/// Splits videos stratified by class: about `ratio` of the videos go to validation, shared out
/// over the classes in proportion to their size (largest remainders), and every class keeps at
/// least one video in training. Deterministic for a seed.
pub fn stratified_split(labels: &[usize], ratio: f64, seed: u64) -> Split {
    let num_classes = labels.iter().max().map_or(0, |&m| m + 1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (index, &label) in labels.iter().enumerate() {
        by_class[label].push(index);
    }

    // Validation quota per class: floor of its share, then the remaining videos to the largest
    // fractional remainders; never the class's last video.
    let target = (ratio * labels.len() as f64).round() as usize;
    let shares: Vec<f64> = by_class.iter().map(|v| ratio * v.len() as f64).collect();
    let cap = |class: usize| by_class[class].len().saturating_sub(1);
    let mut quota: Vec<usize> = (0..num_classes)
        .map(|c| (shares[c].floor() as usize).min(cap(c)))
        .collect();
    let mut order: Vec<usize> = (0..num_classes).collect();
    order.sort_by(|&a, &b| {
        let rem = |c: usize| shares[c] - shares[c].floor();
        rem(b).total_cmp(&rem(a)).then(a.cmp(&b))
    });
    let mut missing = target.saturating_sub(quota.iter().sum());
    for &class in order.iter().cycle().take(order.len() * 2) {
        if missing == 0 {
            break;
        }
        if quota[class] < cap(class) {
            quota[class] += 1;
            missing -= 1;
        }
    }

    let mut rng = StdRng::seed_from_u64(seed);
    let mut split = Split {
        train: Vec::with_capacity(labels.len()),
        validation: Vec::with_capacity(target),
    };
    for (class, mut members) in by_class.into_iter().enumerate() {
        members.shuffle(&mut rng);
        split.validation.extend_from_slice(&members[..quota[class]]);
        split.train.extend_from_slice(&members[quota[class]..]);
    }
    split.train.sort_unstable();
    split.validation.sort_unstable();
    split
}

/// How often the reference repeats a training video of a class with `class_count` labeled
/// videos (counted over the whole labeled set).
pub fn repeat_count(class_count: usize) -> usize {
    match class_count {
        0..100 => 5,
        100..500 => 3,
        500..1000 => 2,
        _ => 1,
    }
}

/// The reference's resampling: each training index repeated by its class's [`repeat_count`],
/// class sizes counted over all of `labels` (the whole labeled set).
pub fn resample(train: &[usize], labels: &[usize]) -> Vec<usize> {
    let num_classes = labels.iter().max().map_or(0, |&m| m + 1);
    let mut counts = vec![0usize; num_classes];
    for &label in labels {
        counts[label] += 1;
    }
    train
        .iter()
        .flat_map(|&index| std::iter::repeat_n(index, repeat_count(counts[labels[index]])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skewed_labels() -> Vec<usize> {
        // class c has 1 + c * 7 videos, for 30 classes, interleaved.
        let mut labels = Vec::new();
        for c in 0..30 {
            labels.extend(std::iter::repeat_n(c, 1 + c * 7));
        }
        labels.rotate_left(17);
        labels
    }

    #[test]
    fn split_is_stratified_complete_and_deterministic() {
        let labels = skewed_labels();
        let split = stratified_split(&labels, 0.1, 7);
        assert_eq!(split, stratified_split(&labels, 0.1, 7));
        assert_ne!(split, stratified_split(&labels, 0.1, 8));
        let mut all: Vec<usize> = split
            .train
            .iter()
            .chain(&split.validation)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
        let expected = (0.1 * labels.len() as f64).round() as usize;
        assert_eq!(split.validation.len(), expected);
        for class in 0..30 {
            let train = split.train.iter().filter(|&&i| labels[i] == class).count();
            let val = split
                .validation
                .iter()
                .filter(|&&i| labels[i] == class)
                .count();
            assert!(train >= 1, "class {class} lost its training videos");
            let share = 0.1 * (train + val) as f64;
            assert!(
                (val as f64 - share).abs() <= 1.0,
                "class {class}: {val} vs {share}"
            );
        }
    }

    #[test]
    fn resampling_follows_whole_set_counts() {
        assert_eq!(repeat_count(99), 5);
        assert_eq!(repeat_count(100), 3);
        assert_eq!(repeat_count(499), 3);
        assert_eq!(repeat_count(500), 2);
        assert_eq!(repeat_count(999), 2);
        assert_eq!(repeat_count(1000), 1);
        let mut labels = vec![0; 150];
        labels.extend(vec![1; 1200]);
        labels.push(2);
        let train = vec![0, 149, 150, 1350];
        assert_eq!(
            resample(&train, &labels),
            vec![0, 0, 0, 149, 149, 149, 150, 1350, 1350, 1350, 1350, 1350]
        );
    }
}
