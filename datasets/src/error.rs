//! Errors of the data layer. Every error names the file and, where there is one, the video.

use std::path::PathBuf;

/// An error reading or preprocessing the competition's data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened or read.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong (part of the message, not a separate `source`, so that it is
        /// printed once).
        cause: std::io::Error,
    },
    /// An annotation file is not the expected JSON.
    #[error("{path}: malformed annotations at line {line}, column {column}: {message}")]
    MalformedAnnotations {
        /// The annotation file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A labeled video lacks its `category_id`.
    #[error("{path}: video {video_id} has no category_id")]
    MissingCategory {
        /// The annotation file.
        path: PathBuf,
        /// The video.
        video_id: String,
    },
    /// A category id that is not in the taxonomy.
    #[error("unknown category id {0:?}")]
    UnknownCategory(String),
    /// A labeled video's category id is not in the taxonomy.
    #[error("{path}: video {video_id} has unknown category_id {category_id:?}")]
    UnknownVideoCategory {
        /// The annotation file.
        path: PathBuf,
        /// The video.
        video_id: String,
        /// The offending id.
        category_id: String,
    },
    /// A video's frames or features could not be read.
    #[error("{path}: video {video_id}: {message}")]
    Video {
        /// The zip (or directory) concerned.
        path: PathBuf,
        /// The video.
        video_id: String,
        /// What went wrong, naming the zip entry where there is one.
        message: String,
    },
    /// The tokenizer could not be built.
    #[error("{path}: cannot build the tokenizer: {message}")]
    Tokenizer {
        /// The model directory or file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Anything else that is invalid input.
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            cause,
        }
    }
}
