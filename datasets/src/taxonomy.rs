//! The competition's category taxonomy: 200 level-2 categories, grouped into level-1 classes.
//!
//! The level-2 class id of a category is its line index in `category_ids.txt` (compiled into the
//! crate); the level-1 class id is the integer value of the category id's first two characters.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::error::DataError;

const CATEGORY_IDS: &str = include_str!("category_ids.txt");

/// The category taxonomy of the reference (200 level-2 categories).
#[derive(Debug)]
pub struct Taxonomy {
    category_ids: Vec<&'static str>,
    lv2_by_category: HashMap<&'static str, usize>,
}

impl Taxonomy {
    /// The built-in taxonomy (parsed once).
    pub fn get() -> &'static Taxonomy {
        static TAXONOMY: OnceLock<Taxonomy> = OnceLock::new();
        TAXONOMY.get_or_init(|| {
            let category_ids: Vec<&'static str> = CATEGORY_IDS
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect();
            let lv2_by_category = category_ids
                .iter()
                .enumerate()
                .map(|(index, id)| (*id, index))
                .collect();
            Taxonomy {
                category_ids,
                lv2_by_category,
            }
        })
    }

    /// Number of level-2 classes.
    pub fn num_classes(&self) -> usize {
        self.category_ids.len()
    }

    /// All category ids, in level-2 class order.
    pub fn category_ids(&self) -> &[&'static str] {
        &self.category_ids
    }

    /// Level-2 class id of a category id such as `"0801"`.
    pub fn lv2(&self, category_id: &str) -> Result<usize, DataError> {
        self.lv2_by_category
            .get(category_id)
            .copied()
            .ok_or_else(|| DataError::UnknownCategory(category_id.to_string()))
    }

    /// Category id of a level-2 class id.
    pub fn category_id(&self, lv2: usize) -> Result<&'static str, DataError> {
        self.category_ids
            .get(lv2)
            .copied()
            .ok_or_else(|| DataError::UnknownCategory(format!("level-2 class {lv2}")))
    }

    /// Level-1 class id of a category id (its first two characters as an integer).
    pub fn lv1(&self, category_id: &str) -> Result<usize, DataError> {
        self.lv2(category_id)?;
        Ok(lv1_of(category_id))
    }

    /// Level-1 class id of a level-2 class id.
    pub fn lv1_of_lv2(&self, lv2: usize) -> Result<usize, DataError> {
        Ok(lv1_of(self.category_id(lv2)?))
    }
}

fn lv1_of(known_category_id: &str) -> usize {
    known_category_id[..2]
        .parse()
        .expect("built-in category ids start with two digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_levels() {
        let taxonomy = Taxonomy::get();
        assert_eq!(taxonomy.num_classes(), 200);
        for (lv2, id) in taxonomy.category_ids().iter().enumerate() {
            assert_eq!(taxonomy.lv2(id).unwrap(), lv2);
            assert_eq!(taxonomy.category_id(lv2).unwrap(), *id);
        }
        assert_eq!(taxonomy.lv1("0000").unwrap(), 0);
        let last = taxonomy.category_ids()[199];
        assert_eq!(
            taxonomy.lv1(last).unwrap(),
            last[..2].parse::<usize>().unwrap()
        );
        assert!(taxonomy.lv2("9999").is_err());
        assert!(taxonomy.lv1("08").is_err());
        assert!(taxonomy.category_id(200).is_err());
    }
}
