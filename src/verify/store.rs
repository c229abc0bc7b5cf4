//! The set of explored states: every key once, in a byte arena of fixed chunks, numbered in
//! the order found. A state costs its key's bytes, an 8-byte offset and an 8-byte slot in the hash
//! table (plus the table's spare room): its number and 32 bits of its key's hash, so that
//! the table grows without hashing every key again and a lookup compares the bytes of
//! almost only the key it is looking for.

use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Bytes per arena chunk: the arena grows by whole chunks, never moving a key (a doubling
/// vector would copy every key again and touch twice the memory).
const CHUNK: usize = 1 << 22;

#[derive(Default)]
pub struct Store {
    /// Keys one after another, each whole within a chunk (a longer key has a chunk of its own).
    arena: Vec<Vec<u8>>,
    /// Where each key starts: its chunk in the high half, its offset in the low half. It ends
    /// where the next starts in the same chunk, or at its chunk's end.
    starts: Vec<u64>,
    /// A state's number in the low half, its key's hash in the high half.
    table: HashTable<u64>,
}

/// The hash of a key.
pub fn hash(key: &[u8]) -> u32 {
    foldhash::fast::FixedState::with_seed(0x6f72_6361).hash_one(key) as u32
}

/// The table's 64-bit hash from the 32 stored: multiplying by an odd constant keeps the low
/// bits (the bucket) as evenly spread as the hash and mixes every bit into the high ones
/// (hashbrown's tag).
fn spread(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn entry(id: u32, h: u32) -> u64 {
    u64::from(h) << 32 | u64::from(id)
}

fn id_of(e: u64) -> u32 {
    e as u32
}

fn hash_of(e: u64) -> u32 {
    (e >> 32) as u32
}

fn slice<'a>(arena: &'a [Vec<u8>], starts: &[u64], id: u32) -> &'a [u8] {
    let i = id as usize;
    let (chunk, start) = ((starts[i] >> 32) as usize, starts[i] as u32 as usize);
    let bytes = &arena[chunk];
    let end = match starts.get(i + 1) {
        Some(&next) if (next >> 32) as usize == chunk => next as u32 as usize,
        _ => bytes.len(),
    };
    &bytes[start..end]
}

impl Store {
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn get(&self, id: u32) -> &[u8] {
        slice(&self.arena, &self.starts, id)
    }

    /// The number of a known key.
    pub fn find(&self, key: &[u8], hash: u32) -> Option<u32> {
        (self.table.find(spread(hash), |&e| {
            hash_of(e) == hash && self.get(id_of(e)) == key
        }))
        .map(|&e| id_of(e))
    }

    /// Adds a key: its number, and whether it was new; `None` (refused) for a new key once
    /// `max` keys are held. One lookup.
    pub fn insert_within(&mut self, key: &[u8], h: u32, max: usize) -> Option<(u32, bool)> {
        let Store {
            arena,
            starts,
            table,
        } = self;
        match table.entry(
            spread(h),
            |&e| hash_of(e) == h && slice(arena, starts, id_of(e)) == key,
            |&e| spread(hash_of(e)),
        ) {
            hashbrown::hash_table::Entry::Occupied(e) => Some((id_of(*e.get()), false)),
            hashbrown::hash_table::Entry::Vacant(_) if starts.len() >= max => None,
            hashbrown::hash_table::Entry::Vacant(v) => {
                let id = starts.len() as u32;
                // The first chunk grows as a vector does, so that a small exploration holds
                // little; the others are allocated whole.
                let fits = |c: &Vec<u8>| c.len() + key.len() <= CHUNK.max(c.capacity());
                if !arena.last().is_some_and(fits) {
                    let size = if arena.is_empty() {
                        0
                    } else {
                        CHUNK.max(key.len())
                    };
                    arena.push(Vec::with_capacity(size));
                }
                let chunk = arena.len() - 1;
                let last = &mut arena[chunk];
                starts.push((chunk as u64) << 32 | last.len() as u64);
                last.extend_from_slice(key);
                v.insert(entry(id, h));
                Some((id, true))
            }
        }
    }

    /// Bytes held: the arena, the offsets and the table.
    pub fn bytes(&self) -> usize {
        self.arena.iter().map(Vec::capacity).sum::<usize>()
            + self.starts.capacity() * 8
            + self.table.capacity() * 9
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
            ids.push(s.insert_within(k, hash(k), usize::MAX).unwrap());
        }
        for (k, (id, _)) in keys.iter().zip(&ids) {
            assert_eq!(s.get(*id), &k[..]);
            assert_eq!(s.find(k, hash(k)), Some(*id));
        }
        let distinct: std::collections::HashSet<&Vec<u8>> = keys.iter().collect();
        assert_eq!(s.len(), distinct.len());
        assert_eq!(ids.iter().filter(|(_, new)| *new).count(), distinct.len());
        assert_eq!(s.find(b"missing key", hash(b"missing key")), None);
        assert_eq!(
            s.insert_within(b"one more", hash(b"one more"), s.len()),
            None
        );
        assert_eq!(
            s.insert_within(&keys[0], hash(&keys[0]), s.len()),
            Some((ids[0].0, false))
        );
    }

    #[test]
    fn keys_past_the_first_chunk_and_longer_than_a_chunk_are_kept_whole() {
        let mut s = Store::default();
        // 5,000 keys of 1,000 bytes fill more than one chunk; one key is longer than a chunk.
        let mut keys: Vec<Vec<u8>> = (0..5_000u32)
            .map(|i| {
                let mut k = vec![(i % 251) as u8; 1_000];
                k[..4].copy_from_slice(&i.to_le_bytes());
                k
            })
            .collect();
        keys.insert(2_500, vec![7u8; CHUNK + 3]);
        for (n, k) in keys.iter().enumerate() {
            assert_eq!(
                s.insert_within(k, hash(k), usize::MAX),
                Some((n as u32, true))
            );
        }
        assert!(s.arena.len() >= 3, "{} chunks", s.arena.len());
        for (n, k) in keys.iter().enumerate() {
            assert_eq!(s.get(n as u32), &k[..], "key {n}");
            assert_eq!(s.find(k, hash(k)), Some(n as u32));
        }
    }
}
