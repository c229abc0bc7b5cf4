//! The set of explored states: every key once, in one byte arena, numbered in the order
//! found. A state costs its key's bytes, an 8-byte offset and a 4-byte slot in the hash
//! table (plus the table's spare room); the hash is computed again when the table grows
//! rather than stored.

use hashbrown::HashTable;
use std::hash::BuildHasher;

#[derive(Default)]
pub struct Store {
    arena: Vec<u8>,
    /// Where each key starts; it ends where the next starts (or at the arena's end).
    starts: Vec<u64>,
    table: HashTable<u32>,
}

/// The hash of a key.
pub fn hash(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x6f72_6361).hash_one(key)
}

impl Store {
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn get(&self, id: u32) -> &[u8] {
        let i = id as usize;
        let start = self.starts[i] as usize;
        let end = self
            .starts
            .get(i + 1)
            .map_or(self.arena.len(), |&e| e as usize);
        &self.arena[start..end]
    }

    /// The number of a known key.
    pub fn find(&self, key: &[u8], hash: u64) -> Option<u32> {
        self.table.find(hash, |&id| self.get(id) == key).copied()
    }

    /// Adds a key: its number, and whether it was new.
    pub fn insert(&mut self, key: &[u8], h: u64) -> (u32, bool) {
        if let Some(id) = self.find(key, h) {
            return (id, false);
        }
        let id = self.starts.len() as u32;
        self.starts.push(self.arena.len() as u64);
        self.arena.extend_from_slice(key);
        let (arena, starts) = (&self.arena, &self.starts);
        let key_of = |id: &u32| {
            let i = *id as usize;
            let end = starts.get(i + 1).map_or(arena.len(), |&e| e as usize);
            hash(&arena[starts[i] as usize..end])
        };
        self.table.insert_unique(h, id, key_of);
        (id, true)
    }

    /// Bytes held: the arena, the offsets and the table.
    pub fn bytes(&self) -> usize {
        self.arena.capacity() + self.starts.capacity() * 8 + self.table.capacity() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_once_and_numbered_in_order() {
        let mut s = Store::default();
        let keys: Vec<Vec<u8>> = (0..10_000u32)
            .map(|i| i.to_le_bytes()[..(i % 4 + 1) as usize].to_vec())
            .collect();
        let mut ids = Vec::new();
        for k in &keys {
            ids.push(s.insert(k, hash(k)));
        }
        for (k, (id, _)) in keys.iter().zip(&ids) {
            assert_eq!(s.get(*id), &k[..]);
            assert_eq!(s.find(k, hash(k)), Some(*id));
        }
        let distinct: std::collections::HashSet<&Vec<u8>> = keys.iter().collect();
        assert_eq!(s.len(), distinct.len());
        assert_eq!(ids.iter().filter(|(_, new)| *new).count(), distinct.len());
        assert_eq!(s.find(b"missing key", hash(b"missing key")), None);
    }
}
