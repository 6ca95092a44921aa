//! Canonical JSON: the exact bytes MyCHIPs signs and hashes.
//!
//! MyCHIPs signs `json-stable-stringify(record)` (npm `json-stable-stringify`,
//! see `lib/crypto.js`), so a signature only verifies if Notch writes the
//! very same bytes. That serialization is JavaScript's `JSON.stringify` with
//! object keys sorted, which differs from anything serde writes:
//!
//! - keys are sorted by **UTF-16 code units** (JavaScript's default
//!   `Array.prototype.sort`), not by UTF-8 bytes: `"\u{FF61}"` sorts after
//!   `"\u{1F600}"` (its first unit is `0xD83D`), the reverse of Rust's order;
//! - no white space; `null` members are kept (`"comment":null`);
//! - strings escape only `"` `\` and the C0 controls (`\b \f \n \r \t`,
//!   the others as `\u00xx` in lowercase hex); everything else, U+2028,
//!   U+2029 and DEL included, is written as raw UTF-8;
//! - numbers are written as JavaScript prints a `Number`: integers plainly,
//!   other values with the shortest digits that round-trip and JavaScript's
//!   exponent rules (`1e+21`, `1.5e-7`, `0.000001`).
//!
//! **Integers beyond 2^53.** JavaScript parses every JSON number into an
//! IEEE double, so a MyCHIPs peer signs `12345678901234567890` as
//! `12345678901234567000`. Notch does the same: an integer whose magnitude
//! exceeds 2^53 is converted to the nearest double and printed as
//! JavaScript would. That keeps signatures compatible; it also means two
//! JSON texts that differ only beyond double precision have the same
//! canonical form (and so the same signature), exactly as in MyCHIPs.
//! Money never gets there: units are milliCHIPs and stay far below 2^53.
//!
//! The canonical form is computed from a [`serde_json::Value`] as received,
//! never from a Rust struct, so members Notch does not know are kept and
//! covered. serde_json's `Map` is ordered by UTF-8 bytes; that order is
//! never used for output (keys are re-sorted here), so the workspace needs
//! neither `preserve_order` nor `arbitrary_precision`.
//!
//! [`python_json_dumps`] is the second serialization MyCHIPs uses: its
//! database computes hashes with PL/Python's
//! `json.dumps(obj, separators=(',',':'), sort_keys=True)` (`mychips.j2h` in
//! `schema/crypto.wms`), which escapes every non-ASCII character and sorts
//! keys by code point. For ASCII-only records with integer numbers the two
//! are byte-identical.
//!
//! [`parse_json`] is the one way outside JSON enters the tally code: it
//! bounds the size, refuses duplicate object keys (JavaScript would keep the
//! last one silently; a record whose meaning depends on which copy a parser
//! keeps is refused instead) and reports where the text is wrong.

use std::cmp::Ordering;
use std::fmt;
use std::fmt::Write as _;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The largest record text [`parse_json`] accepts (1 MiB): a tally with
/// two certificates is a few KiB, a chit a few hundred bytes.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// 2^53: integers up to this magnitude are exact in a JavaScript `Number`.
const JS_SAFE_LIMIT: u64 = 1 << 53;

/// Why a text is not a record Notch will read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("the record is {len} bytes long; at most {max} are accepted")]
    TooLarge { len: usize, max: usize },
    #[error("the record is not valid JSON (line {line}, column {column}): {reason}")]
    Invalid {
        line: usize,
        column: usize,
        reason: String,
    },
}

/// Parses outside JSON: at most [`MAX_RECORD_BYTES`], no duplicate keys,
/// nesting at most 128 deep (serde_json's limit).
pub fn parse_json(text: &str) -> Result<Value, JsonError> {
    if text.len() > MAX_RECORD_BYTES {
        return Err(JsonError::TooLarge {
            len: text.len(),
            max: MAX_RECORD_BYTES,
        });
    }
    serde_json::from_str::<StrictValue>(text)
        .map(|v| v.0)
        .map_err(|e| JsonError::Invalid {
            line: e.line(),
            column: e.column(),
            reason: strip_position(&e.to_string()),
        })
}

/// serde_json appends " at line L column C"; the error carries those apart.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// A [`Value`] that refuses duplicate object keys while it is read.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            let StrictValue(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// `json-stable-stringify(value)`, byte for byte (see the module docs).
pub fn stable_stringify(value: &Value) -> String {
    let mut out = String::new();
    write_js(&mut out, value);
    out
}

/// JavaScript's default sort order of strings: by UTF-16 code units.
pub fn js_key_order(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn write_js(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&js_number(n)),
        Value::String(s) => write_js_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_js(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_js_object(out, map, |_| true),
    }
}

fn write_js_object(out: &mut String, map: &Map<String, Value>, keep: impl Fn(&str) -> bool) {
    let mut keys: Vec<&String> = map.keys().filter(|k| keep(k)).collect();
    keys.sort_by(|a, b| js_key_order(a, b));
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_js_string(out, key);
        out.push(':');
        if let Some(v) = map.get(key) {
            write_js(out, v);
        }
    }
    out.push('}');
}

/// [`stable_stringify`] of the object made of the members of `map` for
/// which `keep(key)` holds (the record minus `sign`, a chit's signed
/// members), without copying the record.
pub fn stable_stringify_members(map: &Map<String, Value>, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    write_js_object(&mut out, map, keep);
    out
}

/// `JSON.stringify` of a string (ECMA-262 `QuoteJSONString`). Lone
/// surrogates, which it would escape, cannot occur in a Rust `String`
/// (serde_json refuses them while parsing).
fn write_js_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number as JavaScript prints it after `JSON.parse`.
pub fn js_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= JS_SAFE_LIMIT {
            return i.to_string();
        }
        return js_double(i as f64);
    }
    if let Some(u) = n.as_u64() {
        if u <= JS_SAFE_LIMIT {
            return u.to_string();
        }
        return js_double(u as f64);
    }
    match n.as_f64() {
        Some(x) => js_double(x),
        None => "null".to_owned(),
    }
}

/// The shortest decimal digits of a finite, positive `x` that round-trip,
/// and the decimal exponent `n` such that `x = 0.d1d2… × 10^n`
/// (ECMA-262's `n`).
fn shortest_digits(x: f64) -> (String, i32) {
    // Rust's `{:e}` without a precision prints the shortest round-trip
    // digits, e.g. "1.5e-7" or "1e21".
    let text = format!("{x:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    (digits, exponent + 1)
}

/// ECMA-262 `Number::toString(x)` for a finite double.
pub fn js_double(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        // JSON.stringify writes -0 as "0"; non-finite values cannot come
        // out of a JSON parser.
        return if x.is_finite() { "0" } else { "null" }.to_owned();
    }
    if x < 0.0 {
        return format!("-{}", js_double(-x));
    }
    let (digits, n) = shortest_digits(x);
    let k = digits.len() as i32;
    if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let sign = if e < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        if rest.is_empty() {
            format!("{first}e{sign}{}", e.abs())
        } else {
            format!("{first}.{rest}e{sign}{}", e.abs())
        }
    }
}

/// `json.dumps(value, separators=(',',':'), sort_keys=True)` of Python 3,
/// as MyCHIPs's database hashes records (`mychips.j2h`): keys sorted by
/// code point, every non-ASCII character (and DEL) escaped as `\uxxxx`
/// (astral characters as surrogate pairs), floats as Python's `repr`.
pub fn python_json_dumps(value: &Value) -> String {
    let mut out = String::new();
    write_py(&mut out, value);
    out
}

fn write_py(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&py_number(n)),
        Value::String(s) => write_py_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_py(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_py_object(out, map, |_| true),
    }
}

fn write_py_object(out: &mut String, map: &Map<String, Value>, keep: impl Fn(&str) -> bool) {
    // serde_json's Map iterates in UTF-8 byte order, which is code point
    // order, which is Python's `sorted` order of `str`.
    out.push('{');
    for (i, (key, v)) in map.iter().filter(|(k, _)| keep(k)).enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_py_string(out, key);
        out.push(':');
        write_py(out, v);
    }
    out.push('}');
}

/// [`python_json_dumps`] of the members of `map` for which `keep(key)` holds.
pub fn python_json_dumps_members(map: &Map<String, Value>, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    write_py_object(&mut out, map, keep);
    out
}

fn write_py_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn py_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    match n.as_f64() {
        Some(x) => py_float_repr(x),
        None => "null".to_owned(),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, positional when the
/// decimal point position `n` is in `-3..=16`, else `d.ddde±XX`.
fn py_float_repr(x: f64) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    if !x.is_finite() {
        return "null".to_owned();
    }
    if x < 0.0 {
        return format!("-{}", py_float_repr(-x));
    }
    let (digits, n) = shortest_digits(x);
    let k = digits.len() as i32;
    if -4 < n && n <= 16 {
        if n <= 0 {
            format!("0.{}{digits}", "0".repeat((-n) as usize))
        } else if n >= k {
            format!("{digits}{}.0", "0".repeat((n - k) as usize))
        } else {
            let (int, frac) = digits.split_at(n as usize);
            format!("{int}.{frac}")
        }
    } else {
        let e = n - 1;
        let sign = if e < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        format!("{mantissa}e{sign}{:02}", e.abs())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Expected strings were produced once by json-stable-stringify 1.3.0
    /// under Node 20 (`tests/interop/mychips-records/stringify.mjs`);
    /// `tests/tests/mychips_records.rs` re-checks against the live library.
    #[test]
    fn matches_json_stable_stringify_vectors() {
        let value = parse_json(
            r#"{"b":[1,{"z":null,"a":"x"}],"a":"é\u2028\"\\\n\u0001\u007f","\uff61":1,"\ud83d\ude00":2,"":true,"A":-0.0,"n":[1e21,1.5e-7,0.000001,123.456,-9007199254740993]}"#,
        )
        .expect("valid");
        assert_eq!(
            stable_stringify(&value),
            "{\"\":true,\"A\":0,\"a\":\"é\u{2028}\\\"\\\\\\n\\u0001\u{7f}\",\"b\":[1,{\"a\":\"x\",\"z\":null}],\"n\":[1e+21,1.5e-7,0.000001,123.456,-9007199254740992],\"\u{1F600}\":2,\"\u{FF61}\":1}"
        );
    }

    #[test]
    fn keys_sort_by_utf16_not_utf8() {
        // UTF-8: U+FF61 (EF BD A1) < U+1F600 (F0 9F 98 80);
        // UTF-16: U+1F600 (D83D DE00) < U+FF61.
        let value = json!({"\u{FF61}": 1, "\u{1F600}": 2});
        let keys: Vec<&String> = value
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["\u{FF61}", "\u{1F600}"], "serde_json's own order");
        assert_eq!(stable_stringify(&value), "{\"\u{1F600}\":2,\"\u{FF61}\":1}");
        assert_eq!(
            python_json_dumps(&value),
            "{\"\\uff61\":1,\"\\ud83d\\ude00\":2}",
            "Python sorts by code point"
        );
    }

    #[test]
    fn nulls_and_empty_containers_are_kept() {
        let value = json!({"comment": null, "terms": {}, "list": [], "x": [null]});
        assert_eq!(
            stable_stringify(&value),
            r#"{"comment":null,"list":[],"terms":{},"x":[null]}"#
        );
    }

    #[test]
    fn numbers_print_as_javascript_does() {
        let cases = [
            (0.1, "0.1"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (100.0, "100"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1.5e-7, "1.5e-7"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (0.0000012, "0.0000012"),
            (2.5e300, "2.5e+300"),
            (5e-324, "5e-324"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-0.0, "0"),
        ];
        for (x, expected) in cases {
            assert_eq!(js_double(x), expected, "{x:e}");
        }
        let n = |text: &str| match parse_json(text) {
            Ok(Value::Number(n)) => js_number(&n),
            other => panic!("{other:?}"),
        };
        assert_eq!(n("9007199254740992"), "9007199254740992");
        assert_eq!(n("9007199254740993"), "9007199254740992");
        assert_eq!(n("-9007199254740993"), "-9007199254740992");
        assert_eq!(n("12345678901234567890"), "12345678901234567000");
        assert_eq!(n("18446744073709551615"), "18446744073709552000");
        assert_eq!(
            n("123456789012345678901234567890"),
            "1.2345678901234568e+29"
        );
        assert_eq!(n("-0"), "0");
        assert_eq!(n("1E2"), "100");
        // Correctly rounded parsing (serde_json's `float_roundtrip`): the
        // default parser lands on a neighbouring double for these.
        assert_eq!(n("-438.05899999999997"), "-438.05899999999997");
        assert_eq!(n("135.02999999999997"), "135.02999999999997");
        assert_eq!(n("1.0715660391465826e-75"), "1.0715660391465826e-75");
    }

    #[test]
    fn python_form_matches_json_dumps() {
        // Expected strings from Python 3.12:
        // json.dumps(v, separators=(',',':'), sort_keys=True)
        let value =
            json!({"b": "é\u{7f}\n", "a": [1.0, 0.0001, 1e-5, 1e16, 1e15, 1.5, -2.5e-8, 7]});
        assert_eq!(
            python_json_dumps(&value),
            r#"{"a":[1.0,0.0001,1e-05,1e+16,1000000000000000.0,1.5,-2.5e-08,7],"b":"\u00e9\u007f\n"}"#
        );
        let ascii = json!({"memo": "plain", "units": 1234, "ref": {"x": null}});
        assert_eq!(python_json_dumps(&ascii), stable_stringify(&ascii));
    }

    #[test]
    fn parse_refuses_duplicates_garbage_and_oversize() {
        assert!(matches!(
            parse_json(r#"{"a":1,"a":2}"#),
            Err(JsonError::Invalid { reason, .. }) if reason.contains("twice")
        ));
        assert!(matches!(
            parse_json(r#"{"a":{"b":1,"b":1}}"#),
            Err(JsonError::Invalid { .. })
        ));
        let err = parse_json("{\"a\":\n  tru}").expect_err("garbage");
        assert!(matches!(err, JsonError::Invalid { line: 2, .. }), "{err}");
        assert!(matches!(
            parse_json("1e400"),
            Err(JsonError::Invalid { .. })
        ));
        assert!(matches!(
            parse_json(r#""\ud800""#),
            Err(JsonError::Invalid { .. })
        ));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(parse_json(&deep), Err(JsonError::Invalid { .. })));
        let big = format!("\"{}\"", "a".repeat(MAX_RECORD_BYTES));
        assert!(matches!(parse_json(&big), Err(JsonError::TooLarge { .. })));
        assert_eq!(
            parse_json(r#" {"a" : [1, 2.5, "x", null, true]} "#).expect("valid"),
            json!({"a": [1, 2.5, "x", null, true]})
        );
    }
}
