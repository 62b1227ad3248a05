//! Python's notions of "word character" and "whitespace", which the reference's text pipeline
//! relies on (`re`'s `\w` and `str.split()`), where they differ from Rust's.

use unicode_general_category::{GeneralCategory, get_general_category};

/// Python's `\w` for `str` patterns: `str.isalnum()` or `'_'`.
///
/// `isalnum` is a letter (general category L*) or a character with a numeric value (N*): so
/// '²', '½' and '①' are word characters, combining accents (M*) are not.
pub fn is_word_char(c: char) -> bool {
    c == '_'
        || c.is_numeric()
        || matches!(
            get_general_category(c),
            GeneralCategory::UppercaseLetter
                | GeneralCategory::LowercaseLetter
                | GeneralCategory::TitlecaseLetter
                | GeneralCategory::ModifierLetter
                | GeneralCategory::OtherLetter
        )
}

/// Python's `str.isspace()`: Unicode white space plus the separators U+001C..U+001F.
pub fn is_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The maximal runs of word characters of `text` (what `re.findall(r"(?u)\b\w+\b", text)` gives).
pub fn word_runs(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_word_char(c))
        .filter(|run| !run.is_empty())
}

/// `text.split()` with Python's whitespace.
pub fn split_whitespace(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_whitespace).filter(|piece| !piece.is_empty())
}

/// The first `n` characters (code points) of `text`.
pub fn first_chars(text: &str, n: usize) -> &str {
    match text.char_indices().nth(n) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The last `n` characters (code points) of `text`.
pub fn last_chars(text: &str, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    match text.char_indices().rev().nth(n - 1) {
        Some((start, _)) => &text[start..],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_characters_follow_python() {
        for c in ['a', 'Z', '中', '_', '7', '²', '½', '①', 'ß', 'ǅ', 'ʰ'] {
            assert!(is_word_char(c), "{c:?}");
        }
        for c in ['\u{301}', ' ', '，', '!', '😀', '-', '\u{3000}'] {
            assert!(!is_word_char(c), "{c:?}");
        }
        let runs: Vec<_> = word_runs("ab,c\u{301}d 中文x²!").collect();
        assert_eq!(runs, vec!["ab", "c", "d", "中文x²"]);
    }

    #[test]
    fn whitespace_follows_python() {
        let pieces: Vec<_> = split_whitespace(" a\u{1c}b\u{3000}c\td\u{a0}e ").collect();
        assert_eq!(pieces, vec!["a", "b", "c", "d", "e"]);
        assert_eq!(split_whitespace("  ").count(), 0);
    }

    #[test]
    fn char_slices() {
        assert_eq!(first_chars("中文abc", 2), "中文");
        assert_eq!(first_chars("ab", 5), "ab");
        assert_eq!(last_chars("中文abc", 2), "bc");
        assert_eq!(last_chars("ab", 5), "ab");
        assert_eq!(last_chars("ab", 0), "");
    }
}
