//! Metadata filters for vector search.
//!
//! A [`SearchFilter`] is a predicate over the **top-level fields** of a vector's metadata,
//! which is a [`Value::Object`] (or absent). The language:
//!
//! | filter | matches when |
//! |---|---|
//! | `Eq(field, v)` | the field exists and equals `v` (numbers by numeric value, see below) |
//! | `In(field, [v…])` | the field exists and equals one of the values; `In(f, [])` matches nothing |
//! | `Contains(field, v)` | the field is an `Array` with an element equal to `v` (e.g. tags) |
//! | `Range { field, gt, gte, lt, lte }` | the field is a number (`Int` or `Float`, not NaN) satisfying every bound that is set |
//! | `Exists(field)` | the field is present, whatever its value (`Null` included) |
//! | `And([f…])` | every sub-filter matches; `And([])` matches everything |
//! | `Or([f…])` | at least one sub-filter matches; `Or([])` matches nothing |
//! | `Not(f)` | `f` does not match |
//!
//! Rules:
//!
//! - **Numbers compare by value**: `Int(2020)` equals `Float(2020.0)` in `Eq`, `In`,
//!   `Contains` and `Range` (exactly, without rounding: `Int(2^53 + 1)` does not equal
//!   `Float(2^53)`). This is the one place where StrataDB compares an `Int` with a `Float`;
//!   elsewhere `Value` equality stays strict. `NaN` equals nothing.
//! - Any other comparison is **strict [`Value`] equality**: a `String` never equals `Bytes`,
//!   `Bool(true)` never equals `Int(1)`, and arrays and objects compare structurally (their
//!   nested numbers strictly).
//! - A **missing field**, absent metadata, or metadata that is not an object make every
//!   field test false (so `Not(Exists(f))` matches them).
//! - Fields are top-level names; a dot is part of the name, not a path.
//!
//! Build filters with the constructors and combinators:
//!
//! ```
//! use strata_vector::filter::SearchFilter;
//! use strata_core::json;
//!
//! let f = SearchFilter::eq("lang", "en")
//!     .and(SearchFilter::range("year", 2000.0..2010.0))
//!     .and(SearchFilter::is_in("kind", ["doc", "note"]).or(SearchFilter::exists("pinned")));
//! let meta = json!({"lang": "en", "year": 2004, "kind": "note"});
//! assert!(f.matches(Some(&meta)));
//! assert!(!(!f).matches(Some(&meta)));
//! ```
//!
//! Filters are `serde`-serializable (externally tagged enum; values are untagged JSON-like).
use std::collections::HashMap;
use std::ops::{Bound, RangeBounds};

use serde::{Deserialize, Serialize};
use strata_core::Value;

/// A predicate over a vector's metadata. See the [module documentation](self) for the
/// language and its rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SearchFilter {
    /// The field exists and equals the value.
    Eq(String, Value),
    /// The field exists and equals one of the values.
    In(String, Vec<Value>),
    /// The field is an array with an element equal to the value.
    Contains(String, Value),
    /// The field is a number within every bound that is set.
    Range {
        /// The field name.
        field: String,
        /// Exclusive lower bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gt: Option<f64>,
        /// Inclusive lower bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gte: Option<f64>,
        /// Exclusive upper bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lt: Option<f64>,
        /// Inclusive upper bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lte: Option<f64>,
    },
    /// The field is present (with any value, `Null` included).
    Exists(String),
    /// All sub-filters match (true when empty).
    And(Vec<SearchFilter>),
    /// At least one sub-filter matches (false when empty).
    Or(Vec<SearchFilter>),
    /// The sub-filter does not match.
    Not(Box<SearchFilter>),
}

impl SearchFilter {
    /// `field == value`.
    pub fn eq(field: impl Into<String>, value: impl Into<Value>) -> Self {
        SearchFilter::Eq(field.into(), value.into())
    }

    /// `field` equals one of `values`.
    pub fn is_in<V: Into<Value>>(
        field: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        SearchFilter::In(field.into(), values.into_iter().map(Into::into).collect())
    }

    /// `field` is an array containing `value`.
    pub fn contains(field: impl Into<String>, value: impl Into<Value>) -> Self {
        SearchFilter::Contains(field.into(), value.into())
    }

    /// `field` is a number within `range`, e.g. `range("year", 2000.0..2010.0)` or
    /// `range("score", 0.5..)`.
    pub fn range(field: impl Into<String>, range: impl RangeBounds<f64>) -> Self {
        let (mut gt, mut gte, mut lt, mut lte) = (None, None, None, None);
        match range.start_bound() {
            Bound::Included(x) => gte = Some(*x),
            Bound::Excluded(x) => gt = Some(*x),
            Bound::Unbounded => {}
        }
        match range.end_bound() {
            Bound::Included(x) => lte = Some(*x),
            Bound::Excluded(x) => lt = Some(*x),
            Bound::Unbounded => {}
        }
        SearchFilter::Range {
            field: field.into(),
            gt,
            gte,
            lt,
            lte,
        }
    }

    /// `field > x`.
    pub fn gt(field: impl Into<String>, x: f64) -> Self {
        Self::range_bounds(field, Some(x), None, None, None)
    }

    /// `field >= x`.
    pub fn gte(field: impl Into<String>, x: f64) -> Self {
        Self::range_bounds(field, None, Some(x), None, None)
    }

    /// `field < x`.
    pub fn lt(field: impl Into<String>, x: f64) -> Self {
        Self::range_bounds(field, None, None, Some(x), None)
    }

    /// `field <= x`.
    pub fn lte(field: impl Into<String>, x: f64) -> Self {
        Self::range_bounds(field, None, None, None, Some(x))
    }

    fn range_bounds(
        field: impl Into<String>,
        gt: Option<f64>,
        gte: Option<f64>,
        lt: Option<f64>,
        lte: Option<f64>,
    ) -> Self {
        SearchFilter::Range {
            field: field.into(),
            gt,
            gte,
            lt,
            lte,
        }
    }

    /// `field` is present.
    pub fn exists(field: impl Into<String>) -> Self {
        SearchFilter::Exists(field.into())
    }

    /// Both `self` and `other` match (flattens nested `And`s).
    pub fn and(self, other: SearchFilter) -> Self {
        match (self, other) {
            (SearchFilter::And(mut a), SearchFilter::And(b)) => {
                a.extend(b);
                SearchFilter::And(a)
            }
            (SearchFilter::And(mut a), o) => {
                a.push(o);
                SearchFilter::And(a)
            }
            (s, o) => SearchFilter::And(vec![s, o]),
        }
    }

    /// `self` or `other` matches (flattens nested `Or`s).
    pub fn or(self, other: SearchFilter) -> Self {
        match (self, other) {
            (SearchFilter::Or(mut a), SearchFilter::Or(b)) => {
                a.extend(b);
                SearchFilter::Or(a)
            }
            (SearchFilter::Or(mut a), o) => {
                a.push(o);
                SearchFilter::Or(a)
            }
            (s, o) => SearchFilter::Or(vec![s, o]),
        }
    }

    /// All of `filters` match.
    pub fn all(filters: impl IntoIterator<Item = SearchFilter>) -> Self {
        SearchFilter::And(filters.into_iter().collect())
    }

    /// Any of `filters` matches.
    pub fn any(filters: impl IntoIterator<Item = SearchFilter>) -> Self {
        SearchFilter::Or(filters.into_iter().collect())
    }

    /// Evaluates the filter against a vector's metadata (`None` when it has none).
    pub fn matches(&self, metadata: Option<&Value>) -> bool {
        let fields = metadata.and_then(Value::as_object);
        self.eval(fields)
    }

    fn eval(&self, fields: Option<&HashMap<String, Value>>) -> bool {
        let get = |f: &str| fields.and_then(|m| m.get(f));
        match self {
            SearchFilter::Eq(f, v) => get(f).is_some_and(|x| values_equal(x, v)),
            SearchFilter::In(f, vs) => {
                get(f).is_some_and(|x| vs.iter().any(|v| values_equal(x, v)))
            }
            SearchFilter::Contains(f, v) => get(f)
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| values_equal(x, v))),
            SearchFilter::Range {
                field,
                gt,
                gte,
                lt,
                lte,
            } => match get(field).and_then(as_number) {
                Some(x) => {
                    gt.is_none_or(|b| x > b)
                        && gte.is_none_or(|b| x >= b)
                        && lt.is_none_or(|b| x < b)
                        && lte.is_none_or(|b| x <= b)
                }
                None => false,
            },
            SearchFilter::Exists(f) => get(f).is_some(),
            SearchFilter::And(fs) => fs.iter().all(|f| f.eval(fields)),
            SearchFilter::Or(fs) => fs.iter().any(|f| f.eval(fields)),
            SearchFilter::Not(f) => !f.eval(fields),
        }
    }
}

impl std::ops::Not for SearchFilter {
    type Output = SearchFilter;

    /// The negation of the filter (`!f`); `!!f` unwraps back to `f`.
    fn not(self) -> SearchFilter {
        match self {
            SearchFilter::Not(inner) => *inner,
            f => SearchFilter::Not(Box::new(f)),
        }
    }
}

/// A number as `f64` for range comparison (`Int` converted, NaN excluded).
fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) if !f.is_nan() => Some(*f),
        _ => None,
    }
}

/// Filter equality: numbers by exact numeric value, everything else strictly.
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(i), Value::Float(f)) | (Value::Float(f), Value::Int(i)) => int_eq_float(*i, *f),
        _ => a == b,
    }
}

/// Exact comparison of an integer and a float, without rounding the integer.
fn int_eq_float(i: i64, f: f64) -> bool {
    // 2^63 as f64; every integral f64 in [-2^63, 2^63) converts to i64 exactly.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) && f as i64 == i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strata_core::json;

    #[test]
    fn basic_predicates() {
        let m = json!({"lang": "en", "year": 2004, "score": 0.75, "tags": ["a", "b", 3],
                       "none": null, "blob": {"x": 1}});
        let m = Some(&m);
        assert!(SearchFilter::eq("lang", "en").matches(m));
        assert!(!SearchFilter::eq("lang", "fr").matches(m));
        assert!(!SearchFilter::eq("missing", "en").matches(m));
        assert!(SearchFilter::eq("year", 2004).matches(m));
        assert!(SearchFilter::eq("year", 2004.0).matches(m));
        assert!(!SearchFilter::eq("year", 2004.5).matches(m));
        assert!(SearchFilter::eq("blob", json!({"x": 1})).matches(m));
        assert!(SearchFilter::is_in("lang", ["fr", "en"]).matches(m));
        assert!(!SearchFilter::is_in("lang", Vec::<Value>::new()).matches(m));
        assert!(SearchFilter::contains("tags", "b").matches(m));
        assert!(SearchFilter::contains("tags", 3.0).matches(m));
        assert!(!SearchFilter::contains("tags", "z").matches(m));
        assert!(!SearchFilter::contains("lang", "en").matches(m));
        assert!(SearchFilter::range("year", 2000.0..2010.0).matches(m));
        assert!(SearchFilter::range("year", 2004.0..=2004.0).matches(m));
        assert!(!SearchFilter::range("year", 2000.0..2004.0).matches(m));
        assert!(SearchFilter::range("score", 0.5..).matches(m));
        assert!(SearchFilter::gt("score", 0.5).matches(m));
        assert!(!SearchFilter::gt("score", 0.75).matches(m));
        assert!(SearchFilter::gte("score", 0.75).matches(m));
        assert!(SearchFilter::lt("year", 2005.0).matches(m));
        assert!(SearchFilter::lte("year", 2004.0).matches(m));
        assert!(!SearchFilter::range("lang", ..).matches(m));
        assert!(SearchFilter::range("year", ..).matches(m));
        assert!(SearchFilter::exists("none").matches(m));
        assert!(!SearchFilter::exists("nope").matches(m));
        assert!(!SearchFilter::eq("none", 0).matches(m));
        assert!(SearchFilter::eq("none", Value::Null).matches(m));
    }

    #[test]
    fn combinators_and_absent_metadata() {
        let m = json!({"a": 1, "b": "x"});
        let a = SearchFilter::eq("a", 1);
        let b = SearchFilter::eq("b", "y");
        assert!(!a.clone().and(b.clone()).matches(Some(&m)));
        assert!(a.clone().or(b.clone()).matches(Some(&m)));
        assert!((!b.clone()).matches(Some(&m)));
        assert_eq!(!!b.clone(), b);
        assert!(SearchFilter::all([]).matches(None));
        assert!(!SearchFilter::any([]).matches(Some(&m)));
        assert_eq!(
            a.clone().and(b.clone()).and(a.clone()),
            SearchFilter::And(vec![a.clone(), b.clone(), a.clone()])
        );
        assert_eq!(
            a.clone().or(b.clone()).or(a.clone().or(b.clone())),
            SearchFilter::Or(vec![a.clone(), b.clone(), a.clone(), b.clone()])
        );
        for meta in [None, Some(Value::Int(3)), Some(Value::from("a"))] {
            assert!(!a.matches(meta.as_ref()));
            assert!(!SearchFilter::exists("a").matches(meta.as_ref()));
            assert!((!SearchFilter::exists("a")).matches(meta.as_ref()));
        }
    }

    #[test]
    fn numeric_edge_cases() {
        assert!(int_eq_float(0, -0.0));
        assert!(!int_eq_float(1, f64::NAN));
        assert!(!int_eq_float(i64::MAX, 9_223_372_036_854_775_808.0));
        assert!(int_eq_float(i64::MIN, -9_223_372_036_854_775_808.0));
        assert!(!int_eq_float((1 << 53) + 1, (1u64 << 53) as f64));
        let mut o = HashMap::new();
        o.insert("x".to_string(), Value::Float(f64::NAN));
        let m = Value::Object(o);
        assert!(!SearchFilter::eq("x", f64::NAN).matches(Some(&m)));
        assert!(!SearchFilter::range("x", ..).matches(Some(&m)));
        assert!(SearchFilter::exists("x").matches(Some(&m)));
        // Strictness outside numbers.
        let m = json!({"t": true, "s": "1"});
        assert!(!SearchFilter::eq("t", 1).matches(Some(&m)));
        assert!(!SearchFilter::eq("s", 1).matches(Some(&m)));
        assert!(!SearchFilter::eq("s", b"1".to_vec()).matches(Some(&m)));
    }

    #[test]
    fn serde_round_trip() {
        let f = SearchFilter::eq("lang", "en")
            .and(SearchFilter::range("year", 2000.0..))
            .and(!SearchFilter::is_in("k", [1, 2]))
            .or(SearchFilter::exists("p"));
        let s = serde_json::to_string(&f).unwrap();
        let back: SearchFilter = serde_json::from_str(&s).unwrap();
        assert_eq!(back, f);
        let parsed: SearchFilter =
            serde_json::from_str(r#"{"Range":{"field":"year","gte":2000}}"#).unwrap();
        assert_eq!(parsed, SearchFilter::gte("year", 2000.0));
        let parsed: SearchFilter = serde_json::from_str(r#"{"Eq":["lang","en"]}"#).unwrap();
        assert_eq!(parsed, SearchFilter::eq("lang", "en"));
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..3).prop_map(Value::Int),
            (-3i64..3).prop_map(|i| Value::Float(i as f64 / 2.0)),
            prop_oneof![Just("a"), Just("b")].prop_map(Value::from),
        ]
    }

    fn arb_meta() -> impl Strategy<Value = Option<Value>> {
        proptest::option::of(
            proptest::collection::hash_map(
                prop_oneof![Just("x".to_string()), Just("y".to_string())],
                arb_value(),
                0..3,
            )
            .prop_map(Value::Object),
        )
    }

    fn arb_filter() -> impl Strategy<Value = SearchFilter> {
        let field = prop_oneof![Just("x".to_string()), Just("y".to_string())];
        let leaf = prop_oneof![
            (field.clone(), arb_value()).prop_map(|(f, v)| SearchFilter::Eq(f, v)),
            (field.clone(), proptest::collection::vec(arb_value(), 0..3))
                .prop_map(|(f, v)| SearchFilter::In(f, v)),
            (field.clone(), -2.0f64..2.0, 0.0f64..2.0)
                .prop_map(|(f, lo, w)| SearchFilter::range(f, lo..=lo + w)),
            field.prop_map(SearchFilter::Exists),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(SearchFilter::And),
                proptest::collection::vec(inner.clone(), 0..3).prop_map(SearchFilter::Or),
                inner.prop_map(|f| SearchFilter::Not(Box::new(f))),
            ]
        })
    }

    /// An independent, deliberately simple evaluator to check `matches` against.
    fn naive(f: &SearchFilter, m: Option<&Value>) -> bool {
        let field = |name: &str| match m {
            Some(Value::Object(o)) => o.get(name).cloned(),
            _ => None,
        };
        let num = |v: &Value| match v {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            _ => None,
        };
        let eq = |a: &Value, b: &Value| match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        };
        match f {
            SearchFilter::Eq(n, v) => field(n).is_some_and(|x| eq(&x, v)),
            SearchFilter::In(n, vs) => field(n).is_some_and(|x| vs.iter().any(|v| eq(&x, v))),
            SearchFilter::Contains(n, v) => match field(n) {
                Some(Value::Array(a)) => a.iter().any(|x| eq(x, v)),
                _ => false,
            },
            SearchFilter::Range {
                field: n,
                gt,
                gte,
                lt,
                lte,
            } => match field(n).as_ref().and_then(num) {
                Some(x) => {
                    gt.is_none_or(|b| x > b)
                        && gte.is_none_or(|b| x >= b)
                        && lt.is_none_or(|b| x < b)
                        && lte.is_none_or(|b| x <= b)
                }
                None => false,
            },
            SearchFilter::Exists(n) => field(n).is_some(),
            SearchFilter::And(fs) => fs.iter().all(|g| naive(g, m)),
            SearchFilter::Or(fs) => fs.iter().any(|g| naive(g, m)),
            SearchFilter::Not(g) => !naive(g, m),
        }
    }

    proptest! {
        #[test]
        fn matches_equals_naive_evaluation(f in arb_filter(), m in arb_meta()) {
            prop_assert_eq!(f.matches(m.as_ref()), naive(&f, m.as_ref()));
            prop_assert_eq!((!f.clone()).matches(m.as_ref()), !naive(&f, m.as_ref()));
        }
    }
}
