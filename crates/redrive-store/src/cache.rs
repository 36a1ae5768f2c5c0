//! The payload cache of [`RedbStore`](crate::RedbStore): recently written or read message
//! payloads, bounded in bytes. Two generations approximate LRU at O(1) per operation: entries go
//! into the young generation; a hit in the old one moves the entry back to the young one; when
//! the young generation holds half the budget it becomes the old one and the old one is dropped.
//! So the cache holds at most the budget, and an entry read since the last turn survives it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::MessagePayload;

type Key = (u64, u64);

#[derive(Debug, Default)]
pub(crate) struct PayloadCache {
    budget: usize,
    young: HashMap<Key, Arc<MessagePayload>>,
    young_bytes: usize,
    old: HashMap<Key, Arc<MessagePayload>>,
    old_bytes: usize,
}

impl PayloadCache {
    pub(crate) fn set_budget(&mut self, bytes: usize) {
        self.budget = bytes;
        self.clear();
    }

    /// Bytes held now (payload sizes, see [`MessagePayload::size`]).
    pub(crate) fn bytes(&self) -> usize {
        self.young_bytes + self.old_bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub(crate) fn get(&mut self, key: Key) -> Option<Arc<MessagePayload>> {
        if let Some(p) = self.young.get(&key) {
            return Some(p.clone());
        }
        let p = self.old.remove(&key)?;
        self.old_bytes -= p.size();
        self.insert(key, p.clone());
        Some(p)
    }

    pub(crate) fn insert(&mut self, key: Key, p: Arc<MessagePayload>) {
        let size = p.size();
        if size > self.budget / 2 {
            return;
        }
        if let Some(old) = self.young.insert(key, p) {
            self.young_bytes -= old.size();
        }
        self.young_bytes += size;
        if let Some(old) = self.old.remove(&key) {
            self.old_bytes -= old.size();
        }
        if self.young_bytes > self.budget / 2 {
            self.old = std::mem::take(&mut self.young);
            self.old_bytes = std::mem::take(&mut self.young_bytes);
        }
    }

    pub(crate) fn remove(&mut self, key: Key) {
        if let Some(p) = self.young.remove(&key) {
            self.young_bytes -= p.size();
        }
        if let Some(p) = self.old.remove(&key) {
            self.old_bytes -= p.size();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
        self.young_bytes = 0;
        self.old_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: usize) -> Arc<MessagePayload> {
        Arc::new(MessagePayload {
            body: "x".repeat(n),
            ..Default::default()
        })
    }

    #[test]
    fn stays_within_its_budget_and_keeps_what_is_read() {
        let size = payload(1000).size();
        let mut c = PayloadCache::default();
        c.set_budget(size * 20);
        for i in 0..1000 {
            c.insert((1, i), payload(1000));
            // Read message 0 now and then: it survives every turn.
            if i % 5 == 0 {
                assert!(c.get((1, 0)).is_some(), "evicted at {i}");
            }
            assert!(c.bytes() <= size * 20);
        }
        assert!(c.get((1, 999)).is_some());
        assert!(c.get((1, 500)).is_none());
        assert!(c.len() <= 21);
        c.remove((1, 999));
        assert!(c.get((1, 999)).is_none());
        // Too large for the cache: not kept.
        c.insert((2, 0), payload(size * 20));
        assert!(c.get((2, 0)).is_none());
    }
}
