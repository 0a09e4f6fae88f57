//! The canonical value model.
//!
//! [`Value`] is documented on the type itself (its rules, its JSON mapping), so that
//! the documentation of crates re-exporting it carries everything.
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// A value stored in StrataDB.
///
/// A `Value` is one of exactly eight variants that map cleanly to JSON (plus raw bytes).
/// The rules users rely on:
///
/// 1. **Eight types only**: nothing else can be stored.
/// 2. **No implicit coercions**: `as_int` of a `Float` is `None`, `as_str` of `Bytes` is `None`.
/// 3. **Strict equality**: values of different variants are never equal, so
///    `Value::Int(1) != Value::Float(1.0)`.
/// 4. **`Bytes` and `String` are distinct**, even when the bytes are valid UTF-8.
/// 5. **IEEE-754 floats**: `NaN != NaN` and `-0.0 == 0.0` (equality is `f64`'s own `==`).
///
/// ```
/// use strata_core::Value;
/// assert_ne!(Value::Int(1), Value::Float(1.0));
/// assert_ne!(Value::Float(f64::NAN), Value::Float(f64::NAN));
/// assert_eq!(Value::Float(-0.0), Value::Float(0.0));
/// assert_ne!(Value::from("a"), Value::from(b"a".to_vec()));
/// assert_eq!(Value::from(42i64).as_int(), Some(42));
/// assert_eq!(Value::from(42i64).as_float(), None);
/// ```
///
/// **JSON mapping** (`From` conversions with `serde_json::Value`, `Display`): `Int`
/// and `Float` are JSON numbers (a JSON integer that fits `i64` becomes `Int`, any other
/// number `Float`); a non-finite float has no JSON form and renders as `null`; `Bytes`
/// renders as an array of integers 0–255 (so it comes back as an `Array` of `Int`).
///
/// Equality is structural and strict: `PartialEq` compares variants first, then contents
/// with the contents' own equality (so floats follow IEEE-754). `Value` deliberately does
/// not implement `Eq` or `Hash`, since `NaN != NaN`.
///
/// `Value` implements `Drop` (iteratively, so that dropping a value nested however deep
/// cannot overflow the stack). A `match` therefore cannot move a field out of a `Value`:
/// match on a reference, or use [`into_string`](Value::into_string),
/// [`into_array`](Value::into_array), [`into_object`](Value::into_object) or
/// [`into_bytes`](Value::into_bytes).
///
/// Nesting is limited to [`MAX_NESTING_DEPTH`](crate::limits::MAX_NESTING_DEPTH) levels
/// in stored values; every API taking a `Value` checks this first, without recursion.
/// Cloning, comparing, formatting and encoding recurse once per level, so they are only
/// safe on values within that limit (or a few thousand levels on a normal stack).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// JSON `null`.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit IEEE-754 float.
    Float(f64),
    /// A UTF-8 string.
    String(String),
    /// Raw bytes (never confused with a string).
    Bytes(Vec<u8>),
    /// An ordered list of values.
    Array(Vec<Value>),
    /// An object with string keys.
    Object(HashMap<String, Value>),
}

impl Value {
    /// The variant's name, as used in [`crate::Error::WrongType`] messages
    /// (`"Null"`, `"Bool"`, `"Int"`, `"Float"`, `"String"`, `"Bytes"`, `"Array"`, `"Object"`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "Null",
            Value::Bool(_) => "Bool",
            Value::Int(_) => "Int",
            Value::Float(_) => "Float",
            Value::String(_) => "String",
            Value::Bytes(_) => "Bytes",
            Value::Array(_) => "Array",
            Value::Object(_) => "Object",
        }
    }

    /// `true` for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    /// `true` for [`Value::Bool`].
    pub fn is_bool(&self) -> bool {
        matches!(self, Value::Bool(_))
    }
    /// `true` for [`Value::Int`] (never for a `Float`, even `1.0`).
    pub fn is_int(&self) -> bool {
        matches!(self, Value::Int(_))
    }
    /// `true` for [`Value::Float`] (never for an `Int`).
    pub fn is_float(&self) -> bool {
        matches!(self, Value::Float(_))
    }
    /// `true` for [`Value::String`].
    pub fn is_string(&self) -> bool {
        matches!(self, Value::String(_))
    }
    /// `true` for [`Value::Bytes`].
    pub fn is_bytes(&self) -> bool {
        matches!(self, Value::Bytes(_))
    }
    /// `true` for [`Value::Array`].
    pub fn is_array(&self) -> bool {
        matches!(self, Value::Array(_))
    }
    /// `true` for [`Value::Object`].
    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }

    /// The boolean, if this is a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// The integer, if this is an `Int` (a `Float` is never converted).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// The float, if this is a `Float` (an `Int` is never converted).
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
    /// The string slice, if this is a `String` (never for `Bytes`).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    /// The bytes, if this is `Bytes` (never for a `String`).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
    /// The elements, if this is an `Array`.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    /// The map, if this is an `Object`.
    pub fn as_object(&self) -> Option<&HashMap<String, Value>> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }
    /// Mutable access to the elements, if this is an `Array`.
    pub fn as_array_mut(&mut self) -> Option<&mut Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    /// Mutable access to the map, if this is an `Object`.
    pub fn as_object_mut(&mut self) -> Option<&mut HashMap<String, Value>> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The string, by value, if this is a `String`. (`Value` implements `Drop`, so
    /// a `match` cannot move fields out of it; these `into_*` methods do.)
    pub fn into_string(mut self) -> Option<String> {
        match &mut self {
            Value::String(s) => Some(std::mem::take(s)),
            _ => None,
        }
    }
    /// The bytes, by value, if this is `Bytes`.
    pub fn into_bytes(mut self) -> Option<Vec<u8>> {
        match &mut self {
            Value::Bytes(b) => Some(std::mem::take(b)),
            _ => None,
        }
    }
    /// The elements, by value, if this is an `Array`.
    pub fn into_array(mut self) -> Option<Vec<Value>> {
        match &mut self {
            Value::Array(a) => Some(std::mem::take(a)),
            _ => None,
        }
    }
    /// The map, by value, if this is an `Object`.
    pub fn into_object(mut self) -> Option<HashMap<String, Value>> {
        match &mut self {
            Value::Object(o) => Some(std::mem::take(o)),
            _ => None,
        }
    }

    /// Nesting depth: 0 for a scalar, 1 for an empty or flat container, and so on.
    ///
    /// Computed without recursion (an explicit stack on the heap), so that any value a
    /// program can build, however deep, is measured without overflowing the thread's
    /// stack.
    pub fn depth(&self) -> usize {
        self.depth_up_to(usize::MAX)
    }

    /// `true` when the value nests deeper than `max` levels (see [`depth`](Self::depth)).
    /// Stops descending at `max + 1` levels, so checking a hostile value costs at most
    /// one visit per node above that level. Never recursive.
    pub fn deeper_than(&self, max: usize) -> bool {
        self.depth_up_to(max.saturating_add(1)) > max
    }

    /// The depth, capped at `cap`: subtrees are not entered below level `cap`.
    fn depth_up_to(&self, cap: usize) -> usize {
        let mut deepest = 0;
        // (value, depth of the container holding it); scalars never go on the stack.
        let mut stack: Vec<(&Value, usize)> = vec![(self, 0)];
        while let Some((v, above)) = stack.pop() {
            if !v.is_container() {
                continue;
            }
            let level = above + 1;
            deepest = deepest.max(level);
            if level >= cap {
                return level;
            }
            match v {
                Value::Array(a) => {
                    stack.extend(a.iter().filter(|c| c.is_container()).map(|c| (c, level)))
                }
                Value::Object(o) => {
                    stack.extend(o.values().filter(|c| c.is_container()).map(|c| (c, level)))
                }
                _ => {}
            }
        }
        deepest
    }

    fn is_container(&self) -> bool {
        matches!(self, Value::Array(_) | Value::Object(_))
    }
}

/// Dropping is iterative too: a value nested tens of thousands of levels deep (which any
/// program can build) is freed without recursing once per level, so it never overflows
/// the stack. Values whose children are all scalars (the common case) take the fast path.
impl Drop for Value {
    fn drop(&mut self) {
        let mut stack: Vec<Value> = match self {
            Value::Array(a) if a.iter().any(Value::is_container) => std::mem::take(a),
            Value::Object(o) if o.values().any(Value::is_container) => {
                o.drain().map(|(_, v)| v).collect()
            }
            _ => return,
        };
        while let Some(mut v) = stack.pop() {
            match &mut v {
                Value::Array(a) => stack.append(a),
                Value::Object(o) => stack.extend(o.drain().map(|(_, v)| v)),
                _ => {}
            }
            // `v` is now a scalar or an empty container: its own drop returns at once.
        }
    }
}

impl fmt::Display for Value {
    /// Renders the value as JSON text (see the type's JSON mapping for `Bytes` and
    /// non-finite floats).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::Value::from(self.clone());
        write!(f, "{json}")
    }
}

macro_rules! from_via {
    ($($t:ty => $variant:ident via $conv:expr),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant($conv(v))
            }
        })*
    };
}

from_via! {
    bool => Bool via std::convert::identity,
    i64 => Int via std::convert::identity,
    i32 => Int via i64::from,
    i16 => Int via i64::from,
    i8 => Int via i64::from,
    u32 => Int via i64::from,
    u16 => Int via i64::from,
    u8 => Int via i64::from,
    f64 => Float via std::convert::identity,
    f32 => Float via f64::from,
    String => String via std::convert::identity,
    &str => String via str::to_owned,
    &String => String via String::clone,
    Box<str> => String via String::from,
    std::borrow::Cow<'_, str> => String via std::borrow::Cow::into_owned,
    Vec<u8> => Bytes via std::convert::identity,
    &[u8] => Bytes via <[u8]>::to_vec,
    Vec<Value> => Array via std::convert::identity,
    &[Value] => Array via <[Value]>::to_vec,
    HashMap<String, Value> => Object via std::convert::identity,
}

impl<const N: usize> From<&[u8; N]> for Value {
    fn from(v: &[u8; N]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

/// An unsigned integer that fits in `i64` becomes [`Value::Int`]; a larger one (above
/// `i64::MAX`) becomes [`Value::Float`], the same rule as for JSON numbers, since `Int`
/// is 64-bit signed.
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}

/// As for `u64`: [`Value::Int`] when it fits in `i64`, else [`Value::Float`].
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::from(v as u64)
    }
}

impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Self {
        Value::Array(v.into_iter().map(Value::String).collect())
    }
}

impl From<Vec<&str>> for Value {
    fn from(v: Vec<&str>) -> Self {
        Value::Array(v.into_iter().map(Value::from).collect())
    }
}

impl From<Vec<i64>> for Value {
    fn from(v: Vec<i64>) -> Self {
        Value::Array(v.into_iter().map(Value::Int).collect())
    }
}

impl From<Vec<f64>> for Value {
    fn from(v: Vec<f64>) -> Self {
        Value::Array(v.into_iter().map(Value::Float).collect())
    }
}

impl From<BTreeMap<String, Value>> for Value {
    fn from(v: BTreeMap<String, Value>) -> Self {
        Value::Object(v.into_iter().collect())
    }
}

impl From<()> for Value {
    fn from(_: ()) -> Self {
        Value::Null
    }
}

/// `None` becomes [`Value::Null`]; `Some(v)` becomes `v`'s value.
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl FromIterator<Value> for Value {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        Value::Array(iter.into_iter().collect())
    }
}

impl<K: Into<String>> FromIterator<(K, Value)> for Value {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        Value::Object(iter.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl PartialEq<str> for Value {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Value {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl PartialEq<i64> for Value {
    fn eq(&self, other: &i64) -> bool {
        self.as_int() == Some(*other)
    }
}

impl PartialEq<bool> for Value {
    fn eq(&self, other: &bool) -> bool {
        self.as_bool() == Some(*other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_equality_rules() {
        assert_ne!(Value::Int(1), Value::Float(1.0));
        assert_ne!(Value::Float(f64::NAN), Value::Float(f64::NAN));
        assert_eq!(Value::Float(-0.0), Value::Float(0.0));
        assert_ne!(Value::String("ab".into()), Value::Bytes(b"ab".to_vec()));
        assert_ne!(Value::Null, Value::Bool(false));
        assert_ne!(Value::Int(0), Value::Null);
        assert_ne!(Value::Array(vec![]), Value::Object(HashMap::new()));
        assert_eq!(
            Value::Array(vec![Value::Int(1), Value::from("x")]),
            Value::Array(vec![Value::Int(1), Value::from("x")])
        );
        let nan_in_array = Value::Array(vec![Value::Float(f64::NAN)]);
        assert_ne!(nan_in_array, nan_in_array.clone());
    }

    #[test]
    fn no_implicit_coercion() {
        let i = Value::Int(3);
        assert_eq!(i.as_int(), Some(3));
        assert_eq!(i.as_float(), None);
        assert_eq!(i.as_bool(), None);
        assert_eq!(i.as_str(), None);
        let f = Value::Float(3.0);
        assert_eq!(f.as_int(), None);
        assert_eq!(f.as_float(), Some(3.0));
        let s = Value::from("abc");
        assert_eq!(s.as_bytes(), None);
        assert_eq!(s.as_str(), Some("abc"));
        let b = Value::from(b"abc");
        assert_eq!(b.as_str(), None);
        assert_eq!(b.as_bytes(), Some(&b"abc"[..]));
        assert_eq!(Value::Bool(true).as_int(), None);
        assert_eq!(Value::Null.as_bool(), None);
    }

    #[test]
    fn is_methods_are_exclusive() {
        let all = [
            Value::Null,
            Value::Bool(true),
            Value::Int(1),
            Value::Float(1.0),
            Value::from("s"),
            Value::from(vec![1u8]),
            Value::Array(vec![]),
            Value::Object(HashMap::new()),
        ];
        for (i, v) in all.iter().enumerate() {
            let flags = [
                v.is_null(),
                v.is_bool(),
                v.is_int(),
                v.is_float(),
                v.is_string(),
                v.is_bytes(),
                v.is_array(),
                v.is_object(),
            ];
            for (j, f) in flags.iter().enumerate() {
                assert_eq!(*f, i == j, "{v:?} flag {j}");
            }
        }
    }

    #[test]
    fn conversions() {
        assert_eq!(Value::from("a"), Value::String("a".into()));
        assert_eq!(Value::from(String::from("a")), Value::String("a".into()));
        assert_eq!(Value::from(42i64), Value::Int(42));
        assert_eq!(Value::from(42i32), Value::Int(42));
        assert_eq!(Value::from(42u32), Value::Int(42));
        assert_eq!(Value::from(42u64), Value::Int(42));
        assert_eq!(Value::from(7usize), Value::Int(7));
        assert_eq!(Value::from(i64::MAX as u64), Value::Int(i64::MAX));
        assert_eq!(Value::from(u64::MAX), Value::Float(u64::MAX as f64));
        assert_eq!(Value::from(1.5f64), Value::Float(1.5));
        assert_eq!(Value::from(1.5f32), Value::Float(1.5));
        assert_eq!(Value::from(true), Value::Bool(true));
        assert_eq!(
            Value::from(vec![Value::Int(1)]),
            Value::Array(vec![Value::Int(1)])
        );
        assert_eq!(
            Value::from(vec!["a", "b"]).as_array().map(<[Value]>::len),
            Some(2)
        );
        let mut m = HashMap::new();
        m.insert("k".to_string(), Value::Int(1));
        assert_eq!(Value::from(m.clone()), Value::Object(m));
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(Value::from(Some(2i64)), Value::Int(2));
        assert_eq!(Value::from(()), Value::Null);
        let obj: Value = vec![("a", Value::Int(1))].into_iter().collect();
        assert!(obj.is_object());
    }

    #[test]
    fn depth_and_names() {
        assert_eq!(Value::Int(1).depth(), 0);
        assert_eq!(Value::Array(vec![]).depth(), 1);
        assert_eq!(
            Value::Array(vec![Value::Array(vec![Value::Int(1)])]).depth(),
            2
        );
        assert_eq!(Value::Float(0.5).type_name(), "Float");
    }
}
