//! The competition's annotation files: one JSON array of videos per split.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::taxonomy::Taxonomy;
use crate::video_id::{check_unique_ids, check_video_id};

/// One on-screen text item: the time it appears and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OcrItem {
    /// When the text appears (the competition gives seconds as integers).
    pub time: i64,
    /// The recognised text.
    pub text: String,
}

/// One video of an annotation file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoAnnotation {
    /// The video id (a 19-digit string in the competition's data).
    pub id: String,
    /// The title.
    #[serde(default)]
    pub title: String,
    /// The speech transcript.
    #[serde(default)]
    pub asr: String,
    /// The on-screen texts, in file order.
    #[serde(default)]
    pub ocr: Vec<OcrItem>,
    /// The category id (labeled split only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<String>,
}

/// Reads an annotation file (a JSON array of videos).
///
/// The file is parsed as a stream, so only the parsed videos are held in memory (the real
/// unlabeled split has about a million of them). A malformed file is reported with its path and
/// the line and column of the error. Video ids are checked ([`check_video_id`]) and must be
/// unique.
pub fn read_annotations(path: &Path) -> Result<Vec<VideoAnnotation>, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    let videos: Vec<VideoAnnotation> = serde_json::from_reader(reader).map_err(|e| {
        if e.is_io() {
            DataError::io(path, std::io::Error::other(e.to_string()))
        } else {
            DataError::MalformedAnnotations {
                path: path.to_path_buf(),
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            }
        }
    })?;
    let invalid = |message: String| DataError::Invalid(format!("{}: {message}", path.display()));
    for (index, video) in videos.iter().enumerate() {
        check_video_id(&video.id)
            .map_err(|message| invalid(format!("video {} of the file: {message}", index + 1)))?;
    }
    check_unique_ids(videos.iter().map(|video| video.id.as_str())).map_err(invalid)?;
    Ok(videos)
}

/// The level-2 class id of every video of a labeled split, in order.
///
/// A missing or unknown `category_id` is an error naming the file and the video.
pub fn read_labels(path: &Path, videos: &[VideoAnnotation]) -> Result<Vec<usize>, DataError> {
    let taxonomy = Taxonomy::get();
    videos
        .iter()
        .map(|video| {
            let category_id =
                video
                    .category_id
                    .as_deref()
                    .ok_or_else(|| DataError::MissingCategory {
                        path: path.to_path_buf(),
                        video_id: video.id.clone(),
                    })?;
            taxonomy
                .lv2(category_id)
                .map_err(|_| DataError::UnknownVideoCategory {
                    path: path.to_path_buf(),
                    video_id: video.id.clone(),
                    category_id: category_id.to_string(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_temp(content: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content.as_bytes()).unwrap();
        file
    }

    #[test]
    fn parses_videos_and_labels() {
        let file = write_temp(
            r#"[{"id":"1","title":"t","asr":"a","ocr":[{"time":2,"text":"x"}],"category_id":"0801"},
                {"id":"2","title":"","asr":"","ocr":[]}]"#,
        );
        let videos = read_annotations(file.path()).unwrap();
        assert_eq!(videos.len(), 2);
        assert_eq!(videos[0].ocr[0].text, "x");
        assert_eq!(videos[1].category_id, None);
        let labels = read_labels(file.path(), &videos[..1]).unwrap();
        assert_eq!(labels, vec![Taxonomy::get().lv2("0801").unwrap()]);
        let err = read_labels(file.path(), &videos).unwrap_err().to_string();
        assert!(err.contains("video 2 has no category_id"), "{err}");
    }

    #[test]
    fn reports_position_of_malformed_json() {
        let file = write_temp("[{\"id\":\"1\",\n \"title\": 5}]");
        let err = read_annotations(file.path()).unwrap_err();
        match &err {
            DataError::MalformedAnnotations { line, .. } => assert_eq!(*line, 2),
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains(&file.path().display().to_string()));
    }

    #[test]
    fn hostile_and_repeated_ids_are_refused() {
        let file = write_temp(r#"[{"id":"1"},{"id":"../../etc/x"}]"#);
        let err = read_annotations(file.path()).unwrap_err().to_string();
        assert!(
            err.contains("video 2 of the file") && err.contains("`..`"),
            "{err}"
        );
        let file = write_temp(r#"[{"id":"1"},{"id":"2"},{"id":"1"}]"#);
        let err = read_annotations(file.path()).unwrap_err().to_string();
        assert!(err.contains("\"1\" (videos 1 and 3)"), "{err}");
    }

    #[test]
    fn unknown_category_names_video() {
        let file = write_temp(r#"[{"id":"77","category_id":"9999"}]"#);
        let videos = read_annotations(file.path()).unwrap();
        let err = read_labels(file.path(), &videos).unwrap_err().to_string();
        assert!(err.contains("video 77") && err.contains("9999"), "{err}");
    }
}
