//! An index from a string key to the id of whatever already keeps that
//! string (an application's credential number, an account's sub-account
//! number): only the id is stored, found by the key's hash and confirmed
//! against the owner's copy. So the index costs an id and a control byte
//! per key instead of a second copy of the string and its allocation
//! (issue 5, target 5: a million accounts at 1 KiB each).
//!
//! Owns ids only. Must not be used where the owner can change or forget a
//! key the index still names: every id's key is read back from its owner
//! on each lookup and each resize.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

pub struct KeyedIds<I> {
    table: HashTable<I>,
    hasher: DefaultHashBuilder,
}

impl<I> Default for KeyedIds<I> {
    fn default() -> Self {
        Self { table: HashTable::new(), hasher: DefaultHashBuilder::default() }
    }
}

impl<I: Copy> KeyedIds<I> {
    /// The id whose key, as `key_of` reads it from the owner, is `key`.
    pub fn get<'a>(&self, key: &str, key_of: impl Fn(I) -> Option<&'a str>) -> Option<I> {
        let hash = self.hasher.hash_one(key);
        self.table.find(hash, |id| key_of(*id) == Some(key)).copied()
    }

    /// Points `key` at `id`, in place of the id it named before, if any.
    /// The owner must already hold `key` for `id`.
    pub fn insert<'a>(&mut self, key: &str, id: I, key_of: impl Fn(I) -> Option<&'a str>) {
        assert!(key_of(id) == Some(key), "the owner keeps the key before it is indexed");
        let hash = self.hasher.hash_one(key);
        if let Some(named) = self.table.find_mut(hash, |old| key_of(*old) == Some(key)) {
            *named = id;
            return;
        }
        let hasher = &self.hasher;
        self.table.insert_unique(hash, id, |old| hasher.hash_one(key_of(*old).unwrap_or_default()));
    }

    /// Room for `additional` more keys without a resize (each resize
    /// reads every key back from its owner: over a million keys, a
    /// million scattered reads).
    pub fn reserve<'a>(&mut self, additional: usize, key_of: impl Fn(I) -> Option<&'a str>) {
        let hasher = &self.hasher;
        self.table.reserve(additional, |old| hasher.hash_one(key_of(*old).unwrap_or_default()));
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a plain map of owned keys: the same answers for keys
        /// inserted, re-pointed and never seen, through any number of
        /// resizes, and with room reserved part way (a resize of its own).
        #[test]
        fn answers_like_a_map_of_owned_keys(
            inserts in proptest::collection::vec(0u16..600, 0..2000),
            probes in proptest::collection::vec(0u16..800, 0..200),
            reserve_at in any::<prop::sample::Index>(),
            reserve in 0usize..3000,
        ) {
            // The owner: id -> key (ids are positions, keys may repeat).
            let owner: Vec<String> = inserts.iter().map(|n| format!("key-{n}")).collect();
            let key_of = |id: usize| owner.get(id).map(String::as_str);
            let mut index = KeyedIds::default();
            let mut model = std::collections::HashMap::new();
            let reserve_at = reserve_at.index(owner.len() + 1);
            for (id, key) in owner.iter().enumerate() {
                if id == reserve_at {
                    index.reserve(reserve, key_of);
                    prop_assert!(index.table.capacity() >= index.len() + reserve);
                }
                index.insert(key, id, key_of);
                model.insert(key.clone(), id);
            }
            prop_assert_eq!(index.len(), model.len());
            for n in probes.iter().chain(&inserts) {
                let key = format!("key-{n}");
                prop_assert_eq!(index.get(&key, key_of), model.get(&key).copied(), "{}", key);
            }
        }
    }
}
