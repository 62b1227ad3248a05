//! TF-IDF keyword ranking, as the reference does it with scikit-learn's `TfidfVectorizer`.
//!
//! The text is split on whitespace into documents; each document is lowercased and cut into
//! maximal runs of word characters (`token_pattern=r"(?u)\b\w+\b"`), stop words removed.
//! tf is the raw count, idf = ln((1 + n_docs) / (1 + df)) + 1, each document's row is
//! L2-normalised, a term's score is its maximum over documents, and terms are ranked by
//! (score, term) descending.

use std::collections::{BTreeMap, HashMap};

use crate::python_text::{split_whitespace, word_runs};

/// The reference's stop words.
pub const STOP_WORDS: [&str; 4] = ["是", "的", "嗯", "呀"];

/// The terms of `text` ranked by TF-IDF score, best first; empty if nothing is left to rank.
///
/// Floating-point sums follow scikit-learn's order (a document's terms in order of their first
/// appearance in the text), so that scores which tie there tie here too.
pub fn ranked_keywords(text: &str) -> Vec<String> {
    let mut vocabulary: HashMap<String, usize> = HashMap::new();
    let mut terms: Vec<String> = Vec::new();
    let documents: Vec<BTreeMap<usize, u32>> = split_whitespace(text)
        .map(|document| {
            let lowered = document.to_lowercase();
            let mut counts = BTreeMap::new();
            for term in word_runs(&lowered).filter(|term| !STOP_WORDS.contains(term)) {
                let id = *vocabulary.entry(term.to_string()).or_insert_with(|| {
                    terms.push(term.to_string());
                    terms.len() - 1
                });
                *counts.entry(id).or_insert(0) += 1;
            }
            counts
        })
        .collect();

    let mut document_frequency = vec![0u32; terms.len()];
    for counts in &documents {
        for &id in counts.keys() {
            document_frequency[id] += 1;
        }
    }
    let n_docs = documents.len() as f64 + 1.0;
    let idf: Vec<f64> = document_frequency
        .iter()
        .map(|&df| (n_docs / (df as f64 + 1.0)).ln() + 1.0)
        .collect();

    let mut scores = vec![f64::NEG_INFINITY; terms.len()];
    for counts in &documents {
        let weights: Vec<(usize, f64)> = counts
            .iter()
            .map(|(&id, &count)| (id, count as f64 * idf[id]))
            .collect();
        let norm = weights.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
        for (id, weight) in weights {
            scores[id] = scores[id].max(weight / norm);
        }
    }

    let mut ranked: Vec<(&str, f64)> = terms.iter().map(String::as_str).zip(scores).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(a.0)));
    ranked
        .into_iter()
        .map(|(term, _)| term.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_score_then_term() {
        // Two documents; "b" appears in both (low idf), the others once.
        let ranked = ranked_keywords("a,b,B,c\u{3000}b;d");
        // doc1 = {a:1, b:2, c:1}, doc2 = {b:1, d:1}
        let idf_rare = (3.0f64 / 2.0).ln() + 1.0;
        let idf_b = (3.0f64 / 3.0).ln() + 1.0;
        let doc1_norm = (2.0 * idf_rare * idf_rare + 4.0 * idf_b * idf_b).sqrt();
        let doc2_norm = (idf_rare * idf_rare + idf_b * idf_b).sqrt();
        let mut expected = [
            ("a", idf_rare / doc1_norm),
            ("c", idf_rare / doc1_norm),
            ("b", (2.0 * idf_b / doc1_norm).max(idf_b / doc2_norm)),
            ("d", idf_rare / doc2_norm),
        ];
        expected.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(a.0)));
        let expected: Vec<_> = expected.iter().map(|(t, _)| t.to_string()).collect();
        assert_eq!(ranked, expected);
    }

    #[test]
    fn stop_words_and_empty_text() {
        assert!(ranked_keywords("").is_empty());
        assert!(ranked_keywords("是 的 嗯 呀 ,,,").is_empty());
        assert_eq!(ranked_keywords("的 猫"), vec!["猫".to_string()]);
    }
}
