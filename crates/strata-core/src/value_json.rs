//! Interop with `serde_json::Value`.
//!
//! - JSON integers that fit `i64` become [`Value::Int`]; other numbers (fractions, exponents,
//!   and integers above `i64::MAX`) become [`Value::Float`].
//! - [`Value::Int`] becomes a JSON integer and [`Value::Float`] a JSON float. A non-finite
//!   float (NaN, ±infinity) has no JSON form and becomes `null`.
//! - [`Value::Bytes`] has no JSON form either: it is rendered as an array of integers 0–255,
//!   so converting back yields an `Array` of `Int`, not `Bytes`. Keep bytes out of values
//!   that must round-trip through JSON.
use crate::Value;

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                // as_f64 is always Some for serde_json numbers without arbitrary precision.
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => {
                Value::Object(o.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
            }
        }
    }
}

impl From<&serde_json::Value> for Value {
    fn from(v: &serde_json::Value) -> Self {
        Value::from(v.clone())
    }
}

impl From<Value> for serde_json::Value {
    fn from(v: Value) -> Self {
        match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Int(i) => serde_json::Value::Number(i.into()),
            Value::Float(f) => serde_json::Number::from_f64(f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::String(s) => serde_json::Value::String(s),
            Value::Bytes(b) => serde_json::Value::Array(b.into_iter().map(|x| x.into()).collect()),
            Value::Array(a) => serde_json::Value::Array(a.into_iter().map(Into::into).collect()),
            Value::Object(o) => {
                serde_json::Value::Object(o.into_iter().map(|(k, v)| (k, v.into())).collect())
            }
        }
    }
}

impl From<&Value> for serde_json::Value {
    fn from(v: &Value) -> Self {
        serde_json::Value::from(v.clone())
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
