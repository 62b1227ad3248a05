//! Submission and ground-truth files: CSV lines `id,category_id`, no header.

use std::collections::HashMap;
use std::path::Path;

use crate::error::DataError;
use crate::taxonomy::Taxonomy;
use crate::video_id::{check_video_id, shorten};

/// One line of a submission: the video id and its level-2 class id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labeled {
    /// The video id.
    pub id: String,
    /// The level-2 class id of the line's category id.
    pub lv2: usize,
}

/// Reads an `id,category_id` file. Malformed lines, unknown category ids and repeated ids are
/// errors naming the file and the line.
pub fn read_category_csv(path: &Path) -> Result<Vec<Labeled>, DataError> {
    let content = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let taxonomy = Taxonomy::get();
    let mut seen = HashMap::new();
    let mut rows = Vec::new();
    for (number, line) in content
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
    {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| {
            DataError::Invalid(format!("{}: line {number}: {message}", path.display()))
        };
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [id, category_id] = fields[..] else {
            return Err(bad(format!(
                "expected `id,category_id`, found {}",
                shorten(line)
            )));
        };
        check_video_id(id).map_err(bad)?;
        let lv2 = taxonomy.lv2(category_id).map_err(|_| {
            bad(format!(
                "video {id}: unknown category id {}",
                shorten(category_id)
            ))
        })?;
        if let Some(first) = seen.insert(id.to_string(), number) {
            return Err(bad(format!("video {id} repeats line {first}")));
        }
        rows.push(Labeled {
            id: id.to_string(),
            lv2,
        });
    }
    Ok(rows)
}

/// Pairs a result with the ground truth by id: (truth, prediction) level-2 ids in ground-truth
/// order. A result id missing from the truth, or a differing number of lines, is an error.
pub fn align(
    result: &[Labeled],
    result_path: &Path,
    truth: &[Labeled],
    truth_path: &Path,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    let truth_by_id: HashMap<&str, usize> =
        truth.iter().map(|row| (row.id.as_str(), row.lv2)).collect();
    let mut prediction_by_id = HashMap::with_capacity(result.len());
    for row in result {
        if !truth_by_id.contains_key(row.id.as_str()) {
            return Err(DataError::Invalid(format!(
                "{}: video {} is not in the ground truth {}",
                result_path.display(),
                row.id,
                truth_path.display()
            )));
        }
        prediction_by_id.insert(row.id.as_str(), row.lv2);
    }
    if result.len() != truth.len() {
        return Err(DataError::Invalid(format!(
            "{} has {} lines but the ground truth {} has {}",
            result_path.display(),
            result.len(),
            truth_path.display(),
            truth.len()
        )));
    }
    let truth_ids = truth.iter().map(|row| row.lv2).collect();
    let predictions = truth
        .iter()
        .map(|row| prediction_by_id[row.id.as_str()])
        .collect();
    Ok((truth_ids, predictions))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(content: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), content).unwrap();
        file
    }

    #[test]
    fn reads_and_aligns() {
        let truth = csv("a,0000\nb,0001\n");
        let result = csv("b,0000\r\na,0000\n");
        let t = read_category_csv(truth.path()).unwrap();
        let r = read_category_csv(result.path()).unwrap();
        let (truth_ids, predictions) = align(&r, result.path(), &t, truth.path()).unwrap();
        assert_eq!(truth_ids, vec![0, 1]);
        assert_eq!(predictions, vec![0, 0]);
    }

    #[test]
    fn errors_name_line_and_video() {
        let err = read_category_csv(csv("a,0000\nb\n").path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        let err = read_category_csv(csv("a,9999\n").path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1") && err.contains("9999"), "{err}");
        let err = read_category_csv(csv("a,0000\na,0001\n").path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("repeats line 1"), "{err}");
        let t = read_category_csv(csv("a,0000\nb,0001\n").path()).unwrap();
        let extra = read_category_csv(csv("c,0000\n").path()).unwrap();
        let err = align(&extra, Path::new("r"), &t, Path::new("t"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("video c is not in the ground truth"), "{err}");
        let short = read_category_csv(csv("a,0000\n").path()).unwrap();
        let err = align(&short, Path::new("r"), &t, Path::new("t"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 lines") && err.contains("has 2"), "{err}");
    }
}
