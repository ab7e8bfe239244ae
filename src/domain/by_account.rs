//! A value per account, in a list indexed by account number.
//!
//! Accounts are numbered from 1 as they open, and a durable record names
//! only accounts opened before it (the actors and recovery check that),
//! so a read model that keeps something for every account holds it in a
//! list: one memory access per lookup, where a hash map over a million
//! accounts cost two cache misses (docs/PERFORMANCE.md).
//!
//! Must not: be written with account numbers from requests (reads are
//! fine: an unknown number reads as the absent value).

use super::ids::AccountId;
use crate::limits;

#[derive(Clone, Debug)]
pub struct ByAccount<T: Copy> {
    values: Vec<T>,
    /// What an account without a value reads as, and what fills the gaps.
    absent: T,
}

/// Absent reads as `T::default()`.
impl<T: Copy + Default> Default for ByAccount<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: Copy> ByAccount<T> {
    pub const fn new(absent: T) -> Self {
        Self { values: Vec::new(), absent }
    }

    /// Slots for accounts `1..=len`, all absent (a list about to be
    /// filled again as far as the last one went).
    pub fn with_len(len: usize, absent: T) -> Self {
        Self { values: vec![absent; len], absent }
    }

    /// Accounts `1..=values.len()` holding `values` (as [`Self::values`]
    /// listed them).
    pub fn from_values(values: Vec<T>, absent: T) -> Self {
        Self { values, absent }
    }

    /// The absent value for a number without one (or no account at all).
    pub fn get(&self, account: AccountId) -> T {
        let slot = account.0.checked_sub(1).and_then(|slot| usize::try_from(slot).ok());
        slot.and_then(|slot| self.values.get(slot)).copied().unwrap_or(self.absent)
    }

    /// The value of an account a durable record names, growing the list
    /// up to it (gaps read as absent).
    pub fn get_mut(&mut self, account: AccountId) -> &mut T {
        assert!(
            (1..=limits::ACCOUNTS_MAX).contains(&account.0),
            "a record names account {account}, outside 1..={}",
            limits::ACCOUNTS_MAX
        );
        let slot = (account.0 - 1) as usize;
        if slot >= self.values.len() {
            self.values.resize(slot + 1, self.absent);
        }
        &mut self.values[slot]
    }

    /// Start loading `account`'s slot (a hint, see [`crate::prefetch`]):
    /// over a million accounts each slot read is a cache miss.
    pub fn prefetch(&self, account: AccountId) {
        let slot = account.0.checked_sub(1).and_then(|slot| usize::try_from(slot).ok());
        if let Some(slot) = slot.filter(|&slot| slot < self.values.len()) {
            crate::prefetch::line(self.values.as_ptr().wrapping_add(slot).cast::<u8>());
        }
    }

    /// Every slot up to the highest account set, gaps included.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.values.iter()
    }

    /// Slots held (the highest account number set).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values reach accounts in any order of their numbers; an account
    /// never set (or a number no account has) reads as absent.
    #[test]
    fn values_grow_to_the_highest_account_set() {
        let mut values = ByAccount::new(-1i64);
        *values.get_mut(AccountId(5)) = 500;
        *values.get_mut(AccountId(2)) = 20;
        *values.get_mut(AccountId(5)) += 1;
        assert_eq!(values.len(), 5);
        assert_eq!((values.get(AccountId(5)), values.get(AccountId(2))), (501, 20));
        for unset in [1, 3, 6, 0, u64::MAX] {
            assert_eq!(values.get(AccountId(unset)), -1, "account {unset}");
        }
        assert_eq!(values.len(), 5, "reading grows nothing");
        assert_eq!(values.values().copied().collect::<Vec<_>>(), vec![-1, 20, -1, -1, 501]);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn account_zero_is_refused() {
        ByAccount::new(0u8).get_mut(AccountId(0));
    }
}
