//! Video ids come from files users did not write: they name frame zips, feature entries and
//! lines of result CSVs, so they are checked before use, and echoed shortened in messages.

use std::collections::HashMap;

/// The longest accepted video id, in bytes (the competition's are 19 digits).
pub const MAX_ID_LEN: usize = 128;
/// Characters of a value that messages quote before shortening it.
const QUOTED_CHARS: usize = 60;

/// Checks that a video id can name a file and a CSV field: not empty, at most
/// [`MAX_ID_LEN`] bytes, no path separator (`/`, `\`), no `..`, no drive colon, no control
/// character (newlines included), no CSV delimiter or quote (`,`, `;`, `"`), no surrounding
/// whitespace.
pub fn check_video_id(id: &str) -> Result<(), String> {
    let problem = if id.is_empty() {
        Some("is empty".to_string())
    } else if id.len() > MAX_ID_LEN {
        Some(format!("is {} bytes long (at most {MAX_ID_LEN})", id.len()))
    } else if id.contains("..") {
        Some("contains `..`".to_string())
    } else if id.trim() != id {
        Some("starts or ends with whitespace".to_string())
    } else {
        id.chars()
            .find(|c| c.is_control() || matches!(c, '/' | '\\' | ':' | ',' | ';' | '"'))
            .map(|c| format!("contains {c:?}"))
    };
    match problem {
        Some(problem) => Err(format!(
            "video id {} {problem}: ids must be usable as file names and CSV fields",
            shorten(id)
        )),
        None => Ok(()),
    }
}

/// Refuses repeated ids, naming the first few with their positions (1-based).
pub fn check_unique_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    let mut first_seen = HashMap::new();
    let mut repeats = Vec::new();
    for (position, id) in ids.into_iter().enumerate() {
        if let Some(first) = first_seen.insert(id, position + 1) {
            repeats.push(format!(
                "{} (videos {first} and {})",
                shorten(id),
                position + 1
            ));
        }
    }
    match repeats.len() {
        0 => Ok(()),
        count => Err(format!(
            "{count} repeated video id(s): {}{}",
            repeats[..count.min(5)].join(", "),
            if count > 5 { ", ..." } else { "" }
        )),
    }
}

/// A value quoted for a message: in full if short, else its start and its length.
pub fn shorten(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        None => format!("{value:?}"),
        Some((end, _)) => format!("{:?}... ({} bytes)", &value[..end], value.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_escape_directories_or_break_csv_are_refused() {
        for good in ["1234567890123456789", "abc_DEF-1.x", "视频7"] {
            assert!(check_video_id(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", "is empty"),
            ("/etc/passwd", "'/'"),
            ("..", "`..`"),
            ("a/../b", "`..`"),
            ("1,2", "','"),
            ("1\n2", "'\\n'"),
            ("C:x", "':'"),
            (" 1", "whitespace"),
            ("a\\b", "'\\\\'"),
        ] {
            let error = check_video_id(bad).unwrap_err();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
        let long = "9".repeat(50_000_000);
        let error = check_video_id(&long).unwrap_err();
        assert!(error.len() < 300, "{}", error.len());
        assert!(error.contains("50000000 bytes"), "{error}");
    }

    #[test]
    fn repeated_ids_are_named() {
        assert!(check_unique_ids(["a", "b"]).is_ok());
        let error = check_unique_ids(["a", "b", "a", "c", "b"]).unwrap_err();
        assert_eq!(
            error,
            "2 repeated video id(s): \"a\" (videos 1 and 3), \"b\" (videos 2 and 5)"
        );
    }
}
