//! What changed in a run between two versions, or between two runs (a fork and its
//! parent): keys added, removed and changed per primitive, streamed.
//!
//! A [`Diff`] walks two views of a run's keyspace side by side — `(run, version)` on
//! each side, through the lineage of forked runs — in key order, a page at a time, so
//! its memory does not depend on the size of the runs. A key is *changed* when its
//! stored bytes differ (rewriting the same value is no change). Both versions stay
//! pinned against garbage collection while the diff is alive.
use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use strata_core::{codec, Error, Result, RunId, Value, Version, Versioned};
use strata_storage::{Entry, Primitive, SnapshotPin, Storage};

/// Keys read per page on each side.
const PAGE: usize = 256;

/// The primitive a [`Change`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiffPrimitive {
    /// A key-value pair.
    Kv,
    /// A JSON document.
    Json,
    /// An event of a stream (`container` is the stream).
    Event,
    /// A state cell.
    State,
    /// A vector of a collection (`container` is the collection).
    Vector,
}

impl DiffPrimitive {
    /// The primitive's name in reports: `kv`, `json`, `event`, `state` or `vector`.
    pub fn name(self) -> &'static str {
        match self {
            DiffPrimitive::Kv => "kv",
            DiffPrimitive::Json => "json",
            DiffPrimitive::Event => "event",
            DiffPrimitive::State => "state",
            DiffPrimitive::Vector => "vector",
        }
    }
}

/// How a key differs between the two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Only the second side has it.
    Added,
    /// Only the first side has it.
    Removed,
    /// Both have it, with different contents.
    Changed,
}

impl ChangeKind {
    /// The kind's name in reports: `added`, `removed` or `changed`.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
        }
    }
}

/// One difference found by a [`Diff`].
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The primitive.
    pub primitive: DiffPrimitive,
    /// The event stream or vector collection the key belongs to (`None` for KV, JSON
    /// and state).
    pub container: Option<String>,
    /// The key: the KV key, document key or cell name; the event's sequence number as
    /// text; the vector's key.
    pub key: String,
    /// Added, removed or changed.
    pub kind: ChangeKind,
    /// The first side's value (`None` when added). Vectors carry no value here: read
    /// them with `db.vectors.get` on the run (or a fork at the version).
    pub before: Option<Versioned<Value>>,
    /// The second side's value (`None` when removed; `None` for vectors).
    pub after: Option<Versioned<Value>>,
}

/// A key (its part after the run id) and the entry a side sees.
type Row = (Box<[u8]>, Entry);

/// One side of a diff: a run read at a version.
struct Side {
    run: RunId,
    version: u64,
    /// The key part after the run id of the last key read.
    after: Option<Box<[u8]>>,
    buf: VecDeque<Row>,
    done: bool,
    _pin: SnapshotPin,
}

impl Side {
    fn new(storage: &Storage, run: RunId, version: u64) -> Side {
        Side {
            run,
            version,
            after: None,
            buf: VecDeque::new(),
            done: false,
            _pin: storage.pin_at(version),
        }
    }

    /// The key part after the run id of the next key, reading a page if needed.
    fn peek(&mut self, storage: &Storage) -> Result<Option<&Row>> {
        if self.buf.is_empty() && !self.done {
            // Only the primitives' tags: under the default run, run and fork records
            // (tags 6 and 7) are not the run's data.
            let mut lo = self.run.as_bytes().to_vec();
            let start = match &self.after {
                Some(a) => {
                    lo.extend_from_slice(a);
                    Bound::Excluded(lo.as_slice())
                }
                None => {
                    lo.push(Primitive::Kv.tag());
                    Bound::Included(lo.as_slice())
                }
            };
            let mut hi = self.run.as_bytes().to_vec();
            hi.push(Primitive::Run.tag());
            let page = storage.scan_range(start, Bound::Excluded(&hi), self.version, Some(PAGE))?;
            if page.len() < PAGE {
                self.done = true;
            }
            if let Some((k, _)) = page.last() {
                self.after = Some(k[16..].into());
            }
            self.buf
                .extend(page.into_iter().map(|(k, e)| (Box::from(&k[16..]), e)));
        }
        Ok(self.buf.front())
    }
}

/// A streamed difference between two views of runs; see [`Runs::diff`] and
/// [`Runs::diff_runs`]. Yields [`Change`]s in key order (by primitive, then key).
///
/// [`Runs::diff`]: crate::Runs::diff
/// [`Runs::diff_runs`]: crate::Runs::diff_runs
pub struct Diff {
    storage: Storage,
    left: Side,
    right: Side,
    failed: bool,
}

impl std::fmt::Debug for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Diff")
            .field("from", &(self.left.run, self.left.version))
            .field("to", &(self.right.run, self.right.version))
            .finish_non_exhaustive()
    }
}

impl Diff {
    pub(crate) fn new(storage: Storage, from: (RunId, u64), to: (RunId, u64)) -> Diff {
        Diff {
            left: Side::new(&storage, from.0, from.1),
            right: Side::new(&storage, to.0, to.1),
            storage,
            failed: false,
        }
    }

    fn step(&mut self) -> Result<Option<Change>> {
        loop {
            let l = self.left.peek(&self.storage)?.map(|(k, _)| k.clone());
            let r = self.right.peek(&self.storage)?.map(|(k, _)| k.clone());
            let (before, after) = match (l, r) {
                (None, None) => return Ok(None),
                (Some(l), Some(r)) if l == r => {
                    (self.left.buf.pop_front(), self.right.buf.pop_front())
                }
                (Some(l), Some(r)) if l < r => (self.left.buf.pop_front(), None),
                (Some(_), None) => (self.left.buf.pop_front(), None),
                _ => (None, self.right.buf.pop_front()),
            };
            let key = match (&before, &after) {
                (Some((k, _)), _) | (None, Some((k, _))) => k.clone(),
                (None, None) => continue,
            };
            let Some(shape) = Shape::of(&key) else {
                continue; // a stream head or collection definition
            };
            let b = before.map(|(_, e)| shape.decode(&e)).transpose()?.flatten();
            let a = after.map(|(_, e)| shape.decode(&e)).transpose()?.flatten();
            let kind = match (&b, &a) {
                (None, None) => continue,
                (Some(_), None) => ChangeKind::Removed,
                (None, Some(_)) => ChangeKind::Added,
                (Some(x), Some(y)) if x.bytes == y.bytes => continue,
                (Some(_), Some(_)) => ChangeKind::Changed,
            };
            return Ok(Some(Change {
                primitive: shape.primitive,
                container: shape.container,
                key: shape.key,
                kind,
                before: b.and_then(|x| x.value),
                after: a.and_then(|x| x.value),
            }));
        }
    }
}

impl Iterator for Diff {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Result<Change>> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(c) => c.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// What a storage key (after the run id) is, for a diff.
struct Shape {
    primitive: DiffPrimitive,
    container: Option<String>,
    key: String,
}

/// A side's live content of a key: its bytes (what is compared) and its value.
struct Content {
    bytes: Arc<[u8]>,
    value: Option<Versioned<Value>>,
}

impl Shape {
    fn of(rest: &[u8]) -> Option<Shape> {
        let (&tag, user) = rest.split_first()?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        // 0x02 | name | 0x00 | item
        fn item(user: &[u8]) -> Option<(String, &[u8])> {
            let body = user.strip_prefix(&[0x02])?;
            let zero = body.iter().position(|&b| b == 0)?;
            Some((
                String::from_utf8_lossy(&body[..zero]).into_owned(),
                &body[zero + 1..],
            ))
        }
        Some(match Primitive::from_tag(tag)? {
            Primitive::Kv => Shape::plain(DiffPrimitive::Kv, text(user)),
            Primitive::Json => Shape::plain(DiffPrimitive::Json, text(user)),
            Primitive::State => Shape::plain(DiffPrimitive::State, text(user)),
            Primitive::Event => {
                let (stream, seq) = item(user)?;
                let seq: [u8; 8] = seq.try_into().ok()?;
                Shape {
                    primitive: DiffPrimitive::Event,
                    container: Some(stream),
                    key: u64::from_be_bytes(seq).to_string(),
                }
            }
            Primitive::Vector => {
                let (collection, key) = item(user)?;
                Shape {
                    primitive: DiffPrimitive::Vector,
                    container: Some(collection),
                    key: text(key),
                }
            }
            Primitive::Run | Primitive::Fork | Primitive::Ttl => return None,
        })
    }

    fn plain(primitive: DiffPrimitive, key: String) -> Shape {
        Shape {
            primitive,
            container: None,
            key,
        }
    }

    /// The live content of `e` (`None`: it records a delete).
    fn decode(&self, e: &Entry) -> Result<Option<Content>> {
        let Some(bytes) = e.value.clone() else {
            return Ok(None);
        };
        let value = match self.primitive {
            DiffPrimitive::Kv | DiffPrimitive::Json => Some(Versioned::new(
                codec::decode(&bytes)?,
                Version::Txn(e.version),
                e.timestamp,
            )),
            DiffPrimitive::Event => Some(Versioned::new(
                codec::decode(&bytes)?,
                Version::Sequence(self.key.parse().unwrap_or(0)),
                e.timestamp,
            )),
            DiffPrimitive::State => {
                if bytes.len() < 8 {
                    return Err(Error::Storage(format!(
                        "state cell {:?} is malformed",
                        self.key
                    )));
                }
                let (c, v) = bytes.split_at(8);
                if v.is_empty() {
                    return Ok(None); // a deleted cell keeps only its counter
                }
                let mut counter = [0u8; 8];
                counter.copy_from_slice(c);
                Some(Versioned::new(
                    codec::decode(v)?,
                    Version::Counter(u64::from_le_bytes(counter)),
                    e.timestamp,
                ))
            }
            DiffPrimitive::Vector => None,
        };
        Ok(Some(Content { bytes, value }))
    }
}
