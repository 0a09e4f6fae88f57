//! The key type of the memtable's B-tree: short keys stored inside the tree's nodes.
//!
//! A `BTreeMap<Box<[u8]>, _>` keeps each key in its own heap allocation, so every
//! comparison of a search follows a pointer. `BTreeMap` searches a node linearly, up to
//! eleven comparisons per level, and in a memtable of a few hundred thousand keys
//! nearly every one of those pointers is a cache miss: measured on 200,000 random
//! 41-byte keys, a search plus an insert took ~1.3–1.8 µs, and the facade's `kv.put`
//! spent over a third of its time there. Encoded keys are short (17 bytes of run and
//! tag, then the user key), so an [`InlineKey`] keeps up to [`INLINE_LEN`] bytes in
//! the node itself, where a node's keys are contiguous and the hardware prefetcher
//! reads them ahead; longer keys fall back to a heap allocation. The same keys then
//! took ~0.9–1.2 µs, and a short key costs no allocation at all.
//!
//! Order, equality and [`Borrow<[u8]>`](Borrow) are those of the key's bytes whatever
//! the representation, so the map is still searched with plain `&[u8]` keys and ranges.
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;

/// Longest key kept inside the node: the enum is then 48 bytes, three times a boxed
/// slice, with room for a 17-byte header and a 29-byte user key.
pub(crate) const INLINE_LEN: usize = 46;

/// A memtable key: its bytes inline when they fit, else boxed. See the [module docs](self).
#[derive(Clone)]
pub(crate) enum InlineKey {
    /// Up to [`INLINE_LEN`] bytes; `len` of `bytes` are the key.
    Inline { len: u8, bytes: [u8; INLINE_LEN] },
    /// A longer key.
    Heap(Box<[u8]>),
}

impl InlineKey {
    /// The key's bytes.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            InlineKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            InlineKey::Heap(b) => b,
        }
    }

    /// The key as a boxed slice (one allocation), for callers outside the map.
    pub(crate) fn to_boxed(&self) -> Box<[u8]> {
        self.as_slice().into()
    }
}

impl From<&[u8]> for InlineKey {
    fn from(key: &[u8]) -> Self {
        if key.len() <= INLINE_LEN {
            let mut bytes = [0u8; INLINE_LEN];
            bytes[..key.len()].copy_from_slice(key);
            InlineKey::Inline {
                // `key.len() <= INLINE_LEN < 256`, checked just above.
                len: key.len() as u8,
                bytes,
            }
        } else {
            InlineKey::Heap(key.into())
        }
    }
}

impl From<Box<[u8]>> for InlineKey {
    /// Keeps the allocation of a key too long to go inline, instead of copying it.
    fn from(key: Box<[u8]>) -> Self {
        if key.len() <= INLINE_LEN {
            InlineKey::from(&key[..])
        } else {
            InlineKey::Heap(key)
        }
    }
}

impl Borrow<[u8]> for InlineKey {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for InlineKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for InlineKey {}

impl PartialOrd for InlineKey {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InlineKey {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl fmt::Debug for InlineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ops::Bound;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn short_keys_go_inline_and_long_ones_keep_their_box() {
        assert_eq!(std::mem::size_of::<InlineKey>(), 48);
        let short = InlineKey::from(&[7u8; INLINE_LEN][..]);
        assert!(matches!(short, InlineKey::Inline { .. }));
        assert_eq!(short.as_slice(), &[7u8; INLINE_LEN][..]);
        let long: Box<[u8]> = vec![9u8; INLINE_LEN + 1].into();
        let ptr = long.as_ptr();
        let long = InlineKey::from(long);
        match &long {
            InlineKey::Heap(b) => assert_eq!(b.as_ptr(), ptr, "the box is kept, not copied"),
            InlineKey::Inline { .. } => panic!("a key over {INLINE_LEN} bytes went inline"),
        }
        assert_eq!(InlineKey::from(&[][..]).as_slice(), b"");
    }

    proptest! {
        /// Inline and boxed keys of any lengths, mixed, order and compare exactly as
        /// their bytes do, and a map of them answers `&[u8]` lookups and ranges like a
        /// map of boxed slices.
        #[test]
        fn behaves_as_the_bytes(
            keys in prop::collection::vec(prop::collection::vec(0u8..4, 0..60), 0..80),
            probe in prop::collection::vec(0u8..4, 0..60),
        ) {
            let mut ours: BTreeMap<InlineKey, usize> = BTreeMap::new();
            let mut model: BTreeMap<Box<[u8]>, usize> = BTreeMap::new();
            for (i, k) in keys.iter().enumerate() {
                ours.insert(InlineKey::from(k.clone().into_boxed_slice()), i);
                model.insert(k.clone().into_boxed_slice(), i);
            }
            let flat: Vec<(Vec<u8>, usize)> =
                ours.iter().map(|(k, v)| (k.as_slice().to_vec(), *v)).collect();
            let want: Vec<(Vec<u8>, usize)> = model.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
            prop_assert_eq!(flat, want);
            prop_assert_eq!(ours.get(&probe[..]), model.get(&probe[..]));
            let bounds = (Bound::Excluded(&probe[..]), Bound::Unbounded);
            let after: Vec<usize> = ours.range::<[u8], _>(bounds).map(|(_, v)| *v).collect();
            let want_after: Vec<usize> = model.range::<[u8], _>(bounds).map(|(_, v)| *v).collect();
            prop_assert_eq!(after, want_after);
            for a in keys.iter().take(10) {
                let ka = InlineKey::from(&a[..]);
                let kp = InlineKey::from(&probe[..]);
                prop_assert_eq!(ka.cmp(&kp), a.as_slice().cmp(probe.as_slice()));
                prop_assert_eq!(ka == kp, a == &probe);
            }
        }
    }
}
