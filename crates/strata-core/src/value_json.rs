//! Interop with `serde_json::Value`.
//!
//! - JSON integers that fit `i64` become [`Value::Int`]; other numbers (fractions, exponents,
//!   and integers above `i64::MAX`) become [`Value::Float`].
//! - [`Value::Int`] becomes a JSON integer and [`Value::Float`] a JSON float. A non-finite
//!   float (NaN, ±infinity) has no JSON form and becomes `null`.
//! - [`Value::Bytes`] has no JSON form either: it is rendered as an array of integers 0–255,
//!   so converting back yields an `Array` of `Int`, not `Bytes`. Keep bytes out of values
//!   that must round-trip through JSON.
//!
//! Both conversions are iterative (an explicit stack on the heap), so converting a value
//! nested however deep never overflows the thread's stack.
use std::collections::HashMap;

use crate::Value;

type Json = serde_json::Value;

fn scalar_from_json(v: Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            // as_f64 is always Some for serde_json numbers without arbitrary precision.
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(s),
        // Containers are handled by the caller; never reached.
        Json::Array(_) | Json::Object(_) => Value::Null,
    }
}

/// A container being converted from JSON: what is built so far and what is left.
enum FromJsonFrame {
    Array(Vec<Value>, std::vec::IntoIter<Json>),
    Object(
        HashMap<String, Value>,
        serde_json::map::IntoIter,
        Option<String>,
    ),
}

impl From<Json> for Value {
    fn from(v: Json) -> Self {
        let mut stack: Vec<FromJsonFrame> = Vec::new();
        let mut next = v;
        loop {
            // Descend into `next`: a container becomes a frame, a scalar is done.
            let mut done = match next {
                Json::Array(a) => {
                    stack.push(FromJsonFrame::Array(
                        Vec::with_capacity(a.len()),
                        a.into_iter(),
                    ));
                    None
                }
                Json::Object(o) => {
                    stack.push(FromJsonFrame::Object(
                        HashMap::with_capacity(o.len()),
                        o.into_iter(),
                        None,
                    ));
                    None
                }
                scalar => Some(scalar_from_json(scalar)),
            };
            // Hand finished values to their parents until one has another child to visit.
            loop {
                let Some(top) = stack.last_mut() else {
                    return done.unwrap_or(Value::Null);
                };
                let child = match top {
                    FromJsonFrame::Array(out, rest) => {
                        if let Some(d) = done.take() {
                            out.push(d);
                        }
                        rest.next()
                    }
                    FromJsonFrame::Object(out, rest, key) => {
                        if let (Some(d), Some(k)) = (done.take(), key.take()) {
                            out.insert(k, d);
                        }
                        rest.next().map(|(k, v)| {
                            *key = Some(k);
                            v
                        })
                    }
                };
                match child {
                    Some(c) => {
                        next = c;
                        break;
                    }
                    None => {
                        done = stack.pop().map(|f| match f {
                            FromJsonFrame::Array(out, _) => Value::Array(out),
                            FromJsonFrame::Object(out, _, _) => Value::Object(out),
                        });
                    }
                }
            }
        }
    }
}

impl From<&Json> for Value {
    fn from(v: &Json) -> Self {
        Value::from(v.clone())
    }
}

fn scalar_to_json(v: &mut Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::Number((*i).into()),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(std::mem::take(s)),
        Value::Bytes(b) => Json::Array(b.iter().map(|&x| x.into()).collect()),
        // Containers are handled by the caller; never reached.
        Value::Array(_) | Value::Object(_) => Json::Null,
    }
}

/// A container being converted to JSON: what is built so far and what is left.
enum ToJsonFrame {
    Array(Vec<Json>, std::vec::IntoIter<Value>),
    Object(
        serde_json::Map<String, Json>,
        std::collections::hash_map::IntoIter<String, Value>,
        Option<String>,
    ),
}

impl From<Value> for Json {
    fn from(v: Value) -> Self {
        let mut stack: Vec<ToJsonFrame> = Vec::new();
        let mut next = v;
        loop {
            let mut done = match &mut next {
                Value::Array(a) => {
                    let a = std::mem::take(a);
                    stack.push(ToJsonFrame::Array(
                        Vec::with_capacity(a.len()),
                        a.into_iter(),
                    ));
                    None
                }
                Value::Object(o) => {
                    let o = std::mem::take(o);
                    stack.push(ToJsonFrame::Object(
                        serde_json::Map::with_capacity(o.len()),
                        o.into_iter(),
                        None,
                    ));
                    None
                }
                scalar => Some(scalar_to_json(scalar)),
            };
            loop {
                let Some(top) = stack.last_mut() else {
                    return done.unwrap_or(Json::Null);
                };
                let child = match top {
                    ToJsonFrame::Array(out, rest) => {
                        if let Some(d) = done.take() {
                            out.push(d);
                        }
                        rest.next()
                    }
                    ToJsonFrame::Object(out, rest, key) => {
                        if let (Some(d), Some(k)) = (done.take(), key.take()) {
                            out.insert(k, d);
                        }
                        rest.next().map(|(k, v)| {
                            *key = Some(k);
                            v
                        })
                    }
                };
                match child {
                    Some(c) => {
                        next = c;
                        break;
                    }
                    None => {
                        done = stack.pop().map(|f| match f {
                            ToJsonFrame::Array(out, _) => Json::Array(out),
                            ToJsonFrame::Object(out, _, _) => Json::Object(out),
                        });
                    }
                }
            }
        }
    }
}

impl From<&Value> for Json {
    fn from(v: &Value) -> Self {
        Json::from(v.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn ints_stay_ints_floats_stay_floats() {
        let v: Value = json!({"i": 30, "f": 1.0, "neg": -5, "big": 1e300, "u": u64::MAX});
        let o = v.as_object().unwrap();
        assert_eq!(o["i"], Value::Int(30));
        assert_eq!(o["f"], Value::Float(1.0));
        assert_eq!(o["neg"], Value::Int(-5));
        assert_eq!(o["big"], Value::Float(1e300));
        assert_eq!(o["u"], Value::Float(u64::MAX as f64));
        let back = serde_json::Value::from(v.clone());
        assert!(back["i"].is_i64());
        assert!(back["f"].is_f64());
        assert_eq!(Value::from(back), v);
    }

    #[test]
    fn bytes_and_non_finite_rendering() {
        let j = serde_json::Value::from(Value::Bytes(vec![1, 255]));
        assert_eq!(j, serde_json::json!([1, 255]));
        assert_eq!(
            serde_json::Value::from(Value::Float(f64::NAN)),
            serde_json::Value::Null
        );
        assert_eq!(Value::from(b"ab").to_string(), "[97,98]");
    }

    #[test]
    fn nested_conversions_round_trip() {
        let v: Value = json!({"a": [1, {"b": [[], {}, [2.5, "x", null]]}], "c": {"d": true}});
        let j = serde_json::Value::from(v.clone());
        assert_eq!(
            j,
            serde_json::json!({"a": [1, {"b": [[], {}, [2.5, "x", null]]}], "c": {"d": true}})
        );
        assert_eq!(Value::from(j), v);
    }

    /// 100,000 levels through both conversions and drops, on a thread with a 256 KiB
    /// stack: nothing recurses per level.
    #[test]
    fn very_deep_values_convert_and_drop_without_recursion() {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let mut v = Value::Int(1);
                for i in 0..100_000 {
                    v = if i % 2 == 0 {
                        Value::Array(vec![v])
                    } else {
                        Value::Object([("k".to_owned(), v)].into_iter().collect())
                    };
                }
                assert_eq!(v.depth(), 100_000);
                assert!(v.deeper_than(128));
                assert!(!v.deeper_than(100_000));
                let j = serde_json::Value::from(v);
                // serde_json's own drop recurses: convert back instead of dropping `j`.
                let back = Value::from(j);
                assert_eq!(back.depth(), 100_000);
                drop(back);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    #[expect(
        clippy::useless_conversion,
        clippy::unnecessary_literal_unwrap,
        reason = "the spec's samples call .into() on json! and this test checks they compile"
    )]
    fn json_macro_shapes() {
        fn takes_into(v: impl Into<Value>) -> Value {
            v.into()
        }
        let a = takes_into(json!({"name": "Alice", "tags": ["x", 1, null, true]}));
        assert!(a.is_object());
        let b: Value = json!({"k": 1}).into();
        assert_eq!(b.as_object().unwrap()["k"], Value::Int(1));
        let c: Option<Value> = Some(json!({"title": "Hello"}).into());
        assert!(c.unwrap().is_object());
        let name = "dyn";
        let d: Value = json!({ "n": name, "x": 1.5 });
        assert_eq!(d.as_object().unwrap()["n"], Value::from("dyn"));
        assert_eq!(json!(null), Value::Null);
        assert_eq!(
            json!([1, 2]),
            Value::Array(vec![Value::Int(1), Value::Int(2)])
        );
    }
}
