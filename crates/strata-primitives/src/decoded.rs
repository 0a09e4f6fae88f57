//! Caches of decoded records.
//!
//! Stored values are bytes (`Arc<[u8]>` shared with the MVCC map); decoding them again on
//! every read dominates some operations (the run check of every write, a JSONPath read of
//! a document). A cache maps a record's storage key to the bytes it last saw for it and
//! their decoded form; a lookup is a hit only if the entry holds *the same allocation*
//! (`Arc::ptr_eq`) as the version being read, or bytes equal to it (values read from a
//! sorted run are fresh allocations; equal bytes decode to an equal value). An entry
//! never answers for other bytes — it is replaced. One entry
//! per record at most; when the cache is full it is cleared (simple, and cheap next to
//! what the decodes cost).
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use strata_core::Result;

type Slot<T> = (Arc<[u8]>, Arc<T>);

struct Entries<T> {
    map: HashMap<Box<[u8]>, Slot<T>>,
    bytes: usize,
}

/// A bounded cache from record keys to the decoded form of their stored bytes.
pub(crate) struct DecodedCache<T> {
    inner: RwLock<Option<Entries<T>>>,
    max_entries: usize,
    max_bytes: usize,
}

impl<T> DecodedCache<T> {
    /// An empty cache holding at most `max_entries` records decoded from at most
    /// `max_bytes` bytes in all (a record over an eighth of that is never cached).
    pub(crate) const fn new(max_entries: usize, max_bytes: usize) -> Self {
        DecodedCache {
            inner: RwLock::new(None),
            max_entries,
            max_bytes,
        }
    }

    /// The decoded form of `bytes`, the stored value of record `key`: from the cache, or
    /// by `decode` (and then cached).
    pub(crate) fn get_or_decode(
        &self,
        key: &[u8],
        bytes: &Arc<[u8]>,
        decode: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<Arc<T>> {
        if let Some((b, v)) = self.inner.read().as_ref().and_then(|e| e.map.get(key)) {
            // The same allocation (a value read from the memtable), or the same bytes (a
            // value read from a sorted run, a new allocation at every read): decoding
            // them again would give the same value.
            if Arc::ptr_eq(b, bytes) || **b == **bytes {
                return Ok(v.clone());
            }
        }
        let value = Arc::new(decode(bytes)?);
        self.insert(key, bytes.clone(), value.clone());
        Ok(value)
    }

    /// Records that `bytes`, about to be stored for `key`, decode to `value` (so that a
    /// write does not cost the next read a decode).
    pub(crate) fn insert(&self, key: &[u8], bytes: Arc<[u8]>, value: Arc<T>) {
        if bytes.len() > self.max_bytes / 8 {
            return;
        }
        let mut guard = self.inner.write();
        let e = guard.get_or_insert_with(|| Entries {
            map: HashMap::new(),
            bytes: 0,
        });
        let len = bytes.len();
        match e.map.get_mut(key) {
            Some(slot) => {
                e.bytes = e.bytes - slot.0.len() + len;
                *slot = (bytes, value);
            }
            None => {
                if e.map.len() >= self.max_entries || e.bytes + len > self.max_bytes {
                    e.map.clear();
                    e.bytes = 0;
                }
                e.map.insert(key.into(), (bytes, value));
                e.bytes += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn hits_by_identity_or_equal_bytes_and_stays_bounded() {
        let cache: DecodedCache<usize> = DecodedCache::new(2, 1 << 20);
        let decodes = Cell::new(0);
        let decode = |b: &[u8]| {
            decodes.set(decodes.get() + 1);
            Ok(b.len())
        };
        let a: Arc<[u8]> = Arc::from(&b"abc"[..]);
        let same_content: Arc<[u8]> = Arc::from(&b"abc"[..]);
        assert_eq!(*cache.get_or_decode(b"k1", &a, decode).unwrap(), 3);
        assert_eq!(*cache.get_or_decode(b"k1", &a, decode).unwrap(), 3);
        assert_eq!(decodes.get(), 1);
        // Equal bytes in another allocation (a value read again from a sorted run)
        // decode to the same value: a hit.
        cache.get_or_decode(b"k1", &same_content, decode).unwrap();
        assert_eq!(decodes.get(), 1);
        // Other bytes are another version: decoded, and they replace the entry.
        let other: Arc<[u8]> = Arc::from(&b"abcd"[..]);
        assert_eq!(*cache.get_or_decode(b"k1", &other, decode).unwrap(), 4);
        assert_eq!(decodes.get(), 2);
        assert_eq!(cache.inner.read().as_ref().unwrap().map.len(), 1);
        // A written value is found without decoding.
        let w: Arc<[u8]> = Arc::from(&b"xy"[..]);
        cache.insert(b"k2", w.clone(), Arc::new(99));
        assert_eq!(*cache.get_or_decode(b"k2", &w, decode).unwrap(), 99);
        assert_eq!(decodes.get(), 2);
        // A third key clears the full cache; values stay correct.
        let c: Arc<[u8]> = Arc::from(&b"defg"[..]);
        assert_eq!(*cache.get_or_decode(b"k3", &c, decode).unwrap(), 4);
        assert!(cache.inner.read().as_ref().unwrap().map.len() <= 2);
        assert_eq!(
            *cache.get_or_decode(b"k1", &same_content, decode).unwrap(),
            3
        );
        assert_eq!(*cache.get_or_decode(b"k1", &other, decode).unwrap(), 4);
    }
}
