//! The set of explored states: every key once, in a byte arena of fixed chunks, numbered in
//! the order found. A state costs its key's bytes, an 8-byte offset and an 8-byte slot in the hash
//! table (plus the table's spare room): its number and 32 bits of its key's hash, so that
//! the table grows without hashing every key again and a lookup compares the bytes of
//! almost only the key it is looking for.
//!
//! The table is open addressing with linear probing over those 8-byte slots, written here
//! rather than taken from hashbrown for one thing hashbrown cannot do: say where a lookup
//! will look, so that the explorer can ask for that memory ([`Store::prefetch`]) while it
//! works out the next keys. In a table of millions of states nearly every lookup misses the
//! cache, and waiting for them one after another was the largest cost of a step.

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
    /// A state's number in the low half, its key's hash in the high half; `EMPTY` where
    /// there is none. A power of two long, at most three quarters full.
    table: Vec<u64>,
    /// 64 less the table's length in bits: a hash's slot is its spread's top bits.
    shift: u32,
}

/// A free slot: no state has the number `u32::MAX` (`insert_within` refuses a state that
/// would).
const EMPTY: u64 = u64::MAX;

/// The hash of a key.
pub fn hash(key: &[u8]) -> u32 {
    foldhash::fast::FixedState::with_seed(0x6f72_6361).hash_one(key) as u32
}

/// Where a hash's probe starts in a table of `64 - shift` bits: the top bits of the hash
/// times an odd constant (Fibonacci hashing), which every bit of the hash moves.
fn slot(h: u32, shift: u32) -> usize {
    (u64::from(h).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift) as usize
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
        self.probe(key, hash).ok()
    }

    /// Asks for the table memory a lookup of `hash` starts at, ahead of the lookup.
    pub fn prefetch(&self, hash: u32) {
        if let Some(e) = self.table.get(slot(hash, self.shift)) {
            crate::hint::prefetch((e as *const u64).cast());
        }
    }

    /// The number of a known key, or the free slot where it would go (`usize::MAX` in a table
    /// not yet allocated, which `insert_within` grows before it probes).
    fn probe(&self, key: &[u8], hash: u32) -> Result<u32, usize> {
        let mask = self.table.len().wrapping_sub(1);
        let mut i = slot(hash, self.shift);
        loop {
            let e = *self.table.get(i).ok_or(usize::MAX)?;
            if e == EMPTY {
                return Err(i);
            }
            if hash_of(e) == hash && self.get(id_of(e)) == key {
                return Ok(id_of(e));
            }
            i = (i + 1) & mask;
        }
    }

    /// Doubles the table (16 slots at first), placing each entry by its stored hash.
    fn grow(&mut self) {
        let len = (self.table.len() * 2).max(16);
        let old = std::mem::replace(&mut self.table, vec![EMPTY; len]);
        self.shift = 64 - len.trailing_zeros();
        for e in old.into_iter().filter(|&e| e != EMPTY) {
            let mut i = slot(hash_of(e), self.shift);
            while self.table[i] != EMPTY {
                i = (i + 1) & (len - 1);
            }
            self.table[i] = e;
        }
    }

    /// Adds a key: its number, and whether it was new; `None` (refused) for a new key once
    /// `max` keys are held. One lookup.
    pub fn insert_within(&mut self, key: &[u8], h: u32, max: usize) -> Option<(u32, bool)> {
        if (self.starts.len() + 1) * 4 > self.table.len() * 3 {
            self.grow();
        }
        match self.probe(key, h) {
            Ok(id) => Some((id, false)),
            // Numbers are `u32`s, and `u32::MAX` is kept out of them (see `EMPTY`).
            Err(_) if self.starts.len() >= max.min(u32::MAX as usize) => None,
            Err(free) => {
                let Store { arena, starts, .. } = self;
                let id = starts.len() as u32;
                debug_assert!(entry(id, h) != EMPTY);
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
                self.table[free] = entry(id, h);
                Some((id, true))
            }
        }
    }

    /// Bytes held: the arena, the offsets and the table.
    pub fn bytes(&self) -> usize {
        self.arena.iter().map(Vec::capacity).sum::<usize>()
            + self.starts.capacity() * 8
            + self.table.capacity() * 8
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
    fn keys_with_one_hash_are_told_apart_by_their_bytes_through_growth() {
        let mut s = Store::default();
        // Every key with the same hash: one run of slots, probed past each other, moved
        // together as the table doubles.
        for i in 0..100u32 {
            assert_eq!(
                s.insert_within(&i.to_le_bytes(), 7, usize::MAX),
                Some((i, true))
            );
        }
        for i in 0..100u32 {
            assert_eq!(s.find(&i.to_le_bytes(), 7), Some(i));
            assert_eq!(
                s.insert_within(&i.to_le_bytes(), 7, usize::MAX),
                Some((i, false))
            );
        }
        assert_eq!(s.find(&100u32.to_le_bytes(), 7), None);
        assert!(s.table.len() >= 128 && s.table.len().is_power_of_two());
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
