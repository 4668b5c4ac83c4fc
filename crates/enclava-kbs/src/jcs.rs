//! RFC 8785 JSON Canonicalization Scheme over `serde_json::Value`.
//!
//! Own implementation (no JCS crate is in the dependency tree, and the rules are short):
//! object members sorted by the UTF-16 code units of their names; no whitespace; strings with
//! the minimal escapes (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other controls as `\u00xx`
//! lowercase, everything else literal UTF-8: exactly what serde_json writes); numbers as
//! ECMAScript's `Number.prototype.toString` (integers plainly, fractions shortest round-trip,
//! exponent form outside [1e-6, 1e21)). Tested against the RFC's examples.

use serde_json::Value;

/// The canonical form of `v`.
pub fn canonicalize(v: &Value) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        // serde_json's string escaping is JCS's (see the module docs); serializing a string
        // cannot fail.
        Value::String(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut members: Vec<(&String, &Value)> = m.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, x)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                write(x, out);
            }
            out.push('}');
        }
    }
}

fn number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    es_number(f)
}

/// ECMAScript Number::toString for a finite double.
fn es_number(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let abs = f.abs();
    if (1e-6..1e21).contains(&abs) {
        // Rust's Display is the shortest round-trip digits without an exponent.
        return format!("{f}");
    }
    // `{:e}` gives the shortest digits with an exponent: "1e30", "1.5e-7".
    let s = format!("{f:e}");
    match s.split_once('e') {
        Some((mant, exp)) if !exp.starts_with('-') => format!("{mant}e+{exp}"),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8785_section_3_2_2_example() {
        // RFC 8785 3.2.2 (numbers, literals, string escapes).
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let mut v: Value = serde_json::from_str(input).unwrap();
        // serde_json's default float parser is not always correctly rounded for 17 significant
        // digits (333333333.33333329 lands one ulp off), so the numbers come from the RFC's texts
        // which are, through Rust's correctly rounded parser: the canonical form of a given
        // double is what is under test.
        let n = |s: &str| s.parse::<f64>().unwrap();
        v["numbers"] = serde_json::json!([
            n("333333333.33333329"),
            n("1E30"),
            n("4.50"),
            n("2e-3"),
            n("0.000000000000000000000000001")
        ]);
        assert_eq!(
            canonicalize(&v),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }

    #[test]
    fn rfc8785_section_3_2_3_sorting() {
        // RFC 8785 3.2.3: property names sorted by UTF-16 code units.
        let input = "{\"\\u20ac\":\"Euro Sign\",\"\\r\":\"Carriage Return\",\"\\ufb33\":\"Hebrew Letter Dalet With Dagesh\",\"1\":\"One\",\"\\ud83d\\ude00\":\"Emoji: Grinning Face\",\"\\u0080\":\"Control\",\"\\u00f6\":\"Latin Small Letter O With Diaeresis\"}";
        let v: Value = serde_json::from_str(input).unwrap();
        let c = canonicalize(&v);
        let order: Vec<&str> = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ]
        .to_vec();
        let mut last = 0;
        for name in order {
            let at = c.find(name).unwrap();
            assert!(at >= last, "{name} out of order in {c}");
            last = at;
        }
    }

    #[test]
    fn es_numbers() {
        assert_eq!(es_number(1e21), "1e+21");
        assert_eq!(es_number(1e20), "100000000000000000000");
        assert_eq!(es_number(0.000001), "0.000001");
        assert_eq!(es_number(1e-7), "1e-7");
        assert_eq!(es_number(-4.5), "-4.5");
    }
}
