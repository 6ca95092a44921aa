//! A bounded cache of decompressed Ed25519 public keys.
//!
//! Decompressing a key (`CompressedEdwardsY::decompress`, a field square root) costs about as
//! much as a tenth of a signature verification, and a gateway decompresses every output's
//! owner in [`Transaction::check_stateless`](crate::Transaction::check_stateless) and every
//! input's owner again when it verifies the spend's signature, usually in a later
//! submission: a spend's input key is some earlier output's owner. [`KeyCache`] keeps the
//! points of keys already seen so that neither decompresses them again.
//!
//! What it changes and what it does not:
//! - Only keys that decompress are kept, under their exact 32 bytes (sign bit and any
//!   non-canonical `y` included); a hit returns the very point `decompress` returned for
//!   those bytes, so every verdict is the one without the cache. An encoding that does not
//!   decompress is never kept and is refused each time, as before.
//! - Bounded: at most `capacity` entries (CLOCK replacement, per shard), about 275 bytes
//!   each with the index: 65,536 entries ([`KeyCache::DEFAULT_CAPACITY`]) take about 18 MB
//!   once full (slots are allocated as they fill). Someone sending many fresh keys only
//!   evicts entries: a miss costs the decompression it always did, plus a short insert.
//! - Shared by threads (sharded mutexes; the critical section is a hash lookup and a
//!   160-byte copy, never a decompression).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};

/// Shards (independent locks and CLOCK hands).
const SHARDS: usize = 8;

/// A bounded, thread-safe map from a compressed Ed25519 key to its decompressed point.
pub struct KeyCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    /// Picks the shard (keyed per process, as the maps' own hashers are, so that nobody can
    /// aim keys at one shard from outside).
    hasher: RandomState,
}

struct Slot {
    key: [u8; 32],
    point: EdwardsPoint,
    /// CLOCK's reference bit: set on a hit, cleared when the hand passes.
    referenced: bool,
}

struct Shard {
    index: HashMap<[u8; 32], u32>,
    slots: Vec<Slot>,
    hand: usize,
}

impl KeyCache {
    /// The gateway's size: 65,536 keys, about 18 MB when full.
    pub const DEFAULT_CAPACITY: usize = 65_536;

    /// A cache of at most `capacity` keys (rounded up to a multiple of the shard count, at
    /// least one per shard).
    pub fn new(capacity: usize) -> KeyCache {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    index: HashMap::new(),
                    slots: Vec::new(),
                    hand: 0,
                })
            })
            .collect();
        KeyCache {
            shards,
            per_shard,
            hasher: RandomState::new(),
        }
    }

    /// Most keys held.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.slots.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &[u8; 32]) -> &Mutex<Shard> {
        let h = self.hasher.hash_one(key);
        &self.shards[(h as usize) % SHARDS]
    }

    /// Whether `key` is a curve point's encoding (what `VerifyingKey::from_bytes` checks).
    pub fn is_valid(&self, key: &[u8; 32]) -> bool {
        self.point(key).is_some()
    }

    /// The decompressed point of `key`, from the cache or decompressed (and then kept);
    /// `None` for bytes that are no point's encoding (never kept).
    pub(crate) fn point(&self, key: &[u8; 32]) -> Option<EdwardsPoint> {
        let shard = self.shard(key);
        if let Ok(mut s) = shard.lock()
            && let Some(&at) = s.index.get(key)
        {
            let slot = &mut s.slots[at as usize];
            slot.referenced = true;
            return Some(slot.point);
        }
        let point = CompressedEdwardsY(*key).decompress()?;
        if let Ok(mut s) = shard.lock() {
            s.insert(key, point, self.per_shard);
        }
        Some(point)
    }
}

impl Shard {
    fn insert(&mut self, key: &[u8; 32], point: EdwardsPoint, cap: usize) {
        if self.index.contains_key(key) {
            // Another thread decompressed it meanwhile (the same point).
            return;
        }
        if self.slots.len() < cap {
            self.index.insert(*key, self.slots.len() as u32);
            self.slots.push(Slot {
                key: *key,
                point,
                referenced: false,
            });
            return;
        }
        // CLOCK: the first slot from the hand whose bit is clear; bits passed are cleared,
        // so this ends within two turns.
        loop {
            let at = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let slot = &mut self.slots[at];
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            self.index.remove(&slot.key);
            *slot = Slot {
                key: *key,
                point,
                referenced: false,
            };
            self.index.insert(*key, at as u32);
            return;
        }
    }
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> [u8; 32] {
        let sk =
            ed25519_dalek::SigningKey::from_bytes(&crate::tagged_hash("test", &[&i.to_le_bytes()]));
        sk.verifying_key().to_bytes()
    }

    /// The exact representation (the limbs of X, Y, Z, T), not only the group element.
    fn same(a: &EdwardsPoint, b: &EdwardsPoint) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn hits_return_what_decompression_returns() {
        // Room for all 32 whichever shards they fall in.
        let cache = KeyCache::new(32 * SHARDS);
        for i in 0..32 {
            let k = key(i);
            let direct = CompressedEdwardsY(k).decompress().expect("a key");
            let first = cache.point(&k).expect("a key");
            let second = cache.point(&k).expect("a key");
            assert!(same(&direct, &first) && same(&direct, &second));
        }
        assert_eq!(cache.len(), 32);
    }

    #[test]
    fn invalid_encodings_are_refused_and_never_kept() {
        let cache = KeyCache::new(64);
        // y = 2 is not the y of a curve point.
        let mut bad = [0u8; 32];
        bad[0] = 2;
        assert!(CompressedEdwardsY(bad).decompress().is_none());
        for _ in 0..3 {
            assert!(cache.point(&bad).is_none());
            assert!(!cache.is_valid(&bad));
        }
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn stays_within_capacity_and_keeps_what_is_used() {
        let cache = KeyCache::new(SHARDS * 4);
        let hot = key(1_000_000);
        cache.point(&hot).expect("a key");
        for i in 0..1_000 {
            let k = key(i);
            let p = cache.point(&k).expect("a key");
            assert!(same(
                &p,
                &CompressedEdwardsY(k).decompress().expect("a key")
            ));
            // Used between every insert: CLOCK keeps it.
            assert!(cache.point(&hot).is_some());
            assert!(cache.len() <= cache.capacity());
        }
        assert_eq!(cache.len(), cache.capacity());
        let s = cache.shard(&hot).lock().expect("not poisoned");
        assert!(s.index.contains_key(&hot), "the hot key was evicted");
        assert_eq!(s.index.len(), s.slots.len());
        for (k, &at) in &s.index {
            assert_eq!(&s.slots[at as usize].key, k);
        }
    }

    #[test]
    fn shared_by_threads() {
        let cache = std::sync::Arc::new(KeyCache::new(256));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for i in 0..500u32 {
                        let k = key((i * 7 + t) % 300);
                        let p = cache.point(&k).expect("a key");
                        assert!(same(
                            &p,
                            &CompressedEdwardsY(k).decompress().expect("a key")
                        ));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("the thread passed");
        }
        assert!(cache.len() <= cache.capacity());
    }
}
