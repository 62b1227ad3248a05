//! The reference's text pipeline up to the tokenizer: asr cleaning, ocr ordering, the
//! TF-IDF keyword title and head+tail truncation. The result is three segment strings.

use crate::annotations::VideoAnnotation;
use crate::keywords::ranked_keywords;
use crate::python_text::{first_chars, last_chars};

/// Characters kept from the title and from the keyword string.
pub const TITLE_PART_CHARS: usize = 64;
/// ocr/asr texts of this many characters or more are cut to their head and tail.
pub const LONG_TEXT_CHARS: usize = 128;
/// Characters kept from each end of a long ocr/asr text.
pub const HEAD_TAIL_CHARS: usize = 64;

/// The three texts the tokenizer encodes for one video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSegments {
    /// Title + TF-IDF keywords ('' for titles under 2 characters).
    pub title: String,
    /// On-screen texts, time-ordered, joined with ',' and head+tail truncated.
    pub ocr: String,
    /// Cleaned speech transcript, head+tail truncated.
    pub asr: String,
}

/// Deletes every run of 3 or more consecutive '嗯'.
pub fn clean_asr(asr: &str) -> String {
    fn flush(out: &mut String, run: usize) {
        if run < 3 {
            out.extend(std::iter::repeat_n('嗯', run));
        }
    }
    let mut out = String::with_capacity(asr.len());
    let mut run = 0usize;
    for c in asr.chars() {
        if c == '嗯' {
            run += 1;
        } else {
            flush(&mut out, run);
            run = 0;
            out.push(c);
        }
    }
    flush(&mut out, run);
    out
}

/// The ocr texts stably sorted by time, joined with ','.
pub fn join_ocr(video: &VideoAnnotation) -> String {
    let mut items: Vec<_> = video.ocr.iter().collect();
    items.sort_by_key(|item| item.time);
    items
        .iter()
        .map(|item| item.text.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Keeps the first and last 64 characters of a text of 128 characters or more.
pub fn head_tail(text: &str) -> String {
    if text.chars().count() >= LONG_TEXT_CHARS {
        let mut out = first_chars(text, HEAD_TAIL_CHARS).to_string();
        out.push_str(last_chars(text, HEAD_TAIL_CHARS));
        out
    } else {
        text.to_string()
    }
}

/// The title segment: the title (first 64 characters) followed by its keyword string.
///
/// `context` is title + ocr + asr, concatenated before any truncation, over which the keywords
/// are ranked. The keyword string is every ranked term followed by a space, cut to 64 characters.
pub fn title_segment(title: &str, context: &str) -> String {
    if title.chars().count() < 2 {
        return String::new();
    }
    let keywords: String = ranked_keywords(context)
        .iter()
        .map(|term| format!("{term} "))
        .collect();
    let mut segment = first_chars(title, TITLE_PART_CHARS).to_string();
    segment.push_str(first_chars(&keywords, TITLE_PART_CHARS));
    segment
}

/// Runs the whole text pipeline of one video.
pub fn text_segments(video: &VideoAnnotation) -> TextSegments {
    let asr = clean_asr(&video.asr);
    let ocr = join_ocr(video);
    let context = format!("{}{}{}", video.title, ocr, asr);
    TextSegments {
        title: title_segment(&video.title, &context),
        ocr: head_tail(&ocr),
        asr: head_tail(&asr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::OcrItem;

    #[test]
    fn asr_runs_of_three_or_more_go() {
        assert_eq!(clean_asr("a嗯嗯b嗯嗯嗯c嗯嗯嗯嗯嗯"), "a嗯嗯bc");
        assert_eq!(clean_asr("嗯"), "嗯");
        assert_eq!(clean_asr(""), "");
        assert_eq!(clean_asr("x\0"), "x\0");
    }

    #[test]
    fn ocr_is_stably_time_sorted() {
        let video = VideoAnnotation {
            id: "1".into(),
            title: String::new(),
            asr: String::new(),
            ocr: [(5, "c"), (1, "a"), (5, "d"), (1, "b")]
                .iter()
                .map(|(time, text)| OcrItem {
                    time: *time,
                    text: text.to_string(),
                })
                .collect(),
            category_id: None,
        };
        assert_eq!(join_ocr(&video), "a,b,c,d");
    }

    #[test]
    fn head_tail_counts_characters() {
        let short: String = "中".repeat(127);
        assert_eq!(head_tail(&short), short);
        let long: String = (0..130)
            .map(|i| char::from_u32(0x4e00 + i).unwrap())
            .collect();
        let cut = head_tail(&long);
        assert_eq!(cut.chars().count(), 128);
        assert!(
            cut.starts_with('\u{4e00}') && cut.ends_with(char::from_u32(0x4e00 + 129).unwrap())
        );
        assert!(!cut.contains(char::from_u32(0x4e00 + 64).unwrap()));
    }

    #[test]
    fn short_titles_have_no_segment() {
        assert_eq!(title_segment("", "abc"), "");
        assert_eq!(title_segment("猫", "猫 狗"), "");
        assert_eq!(title_segment("猫狗", "猫狗"), "猫狗猫狗 ");
    }
}
