//! The policy for problems met while reading videos (no frames zip, an undecodable frame, ...):
//! `--strict` fails on the first one, the lenient default warns and counts them for the summary.

use anyhow::{Result, bail};

/// Applies the strict/lenient policy to each video's problems and counts them.
pub struct IssueTally {
    strict: bool,
    problems: usize,
    videos_with_problems: usize,
}

impl IssueTally {
    /// A tally failing on the first problem when `strict`.
    pub fn new(strict: bool) -> Self {
        IssueTally {
            strict,
            problems: 0,
            videos_with_problems: 0,
        }
    }

    /// Records one video's problems: an error on the first one when strict, otherwise each is
    /// handed to `warn` and counted.
    pub fn record(&mut self, issues: &[String], mut warn: impl FnMut(&str)) -> Result<()> {
        if let Some(issue) = issues.first().filter(|_| self.strict) {
            bail!("{issue}");
        }
        for issue in issues {
            warn(issue);
        }
        self.problems += issues.len();
        self.videos_with_problems += usize::from(!issues.is_empty());
        Ok(())
    }

    /// Problems recorded.
    pub fn problems(&self) -> usize {
        self.problems
    }

    /// Videos with at least one problem.
    pub fn videos_with_problems(&self) -> usize {
        self.videos_with_problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_counts_and_strict_fails_on_the_first_problem() {
        let problems = vec!["a".to_string(), "b".to_string()];
        let mut warned = Vec::new();
        let mut lenient = IssueTally::new(false);
        lenient
            .record(&problems, |i| warned.push(i.to_string()))
            .unwrap();
        lenient.record(&[], |_| unreachable!()).unwrap();
        assert_eq!(warned, problems);
        assert_eq!((lenient.problems(), lenient.videos_with_problems()), (2, 1));

        let mut strict = IssueTally::new(true);
        strict.record(&[], |_| unreachable!()).unwrap();
        let error = strict.record(&problems, |_| unreachable!()).unwrap_err();
        assert_eq!(error.to_string(), "a");
    }
}
