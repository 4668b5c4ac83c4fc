//! Bounded replacements for regorus builtins that allocate in proportion to an argument.
//!
//! regorus's `numbers.range` and `numbers.range_step` allocate the whole range in one step that
//! the execution timer cannot interrupt: `numbers.range(1, 1000000000)` asks for gigabytes at once,
//! and a failed allocation aborts the whole server. Enclava registers extensions of the same
//! names (regorus looks extensions up before builtins) that produce the same arrays but refuse a
//! range of more than [`MAX_RANGE_ELEMENTS`] elements with an error naming the bound.

use regorus::Value as RegoValue;

/// Most elements `numbers.range` / `numbers.range_step` may produce (about 2 MB of values).
pub const MAX_RANGE_ELEMENTS: i128 = 100_000;

/// Why a bounded builtin refused its arguments (becomes a regorus evaluation error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BuiltinError(String);

/// Register the bounded builtins on `engine`.
pub(crate) fn install(engine: &mut regorus::Engine) -> Result<(), String> {
    engine
        .add_extension(
            "numbers.range".to_string(),
            2,
            Box::new(|args: Vec<RegoValue>| range("numbers.range", &args).map_err(Into::into)),
        )
        .map_err(|e| e.to_string())?;
    engine
        .add_extension(
            "numbers.range_step".to_string(),
            3,
            Box::new(|args: Vec<RegoValue>| range("numbers.range_step", &args).map_err(Into::into)),
        )
        .map_err(|e| e.to_string())
}

/// `numbers.range(a, b)`: the integers from `a` to `b` inclusive, ascending or descending;
/// `numbers.range_step(a, b, step)`: every `step`-th of them (`step` a positive integer).
fn range(name: &str, args: &[RegoValue]) -> Result<RegoValue, BuiltinError> {
    let int = |i: usize| -> Result<i64, BuiltinError> {
        args.get(i)
            .and_then(|v| v.as_i64().ok())
            .ok_or_else(|| BuiltinError(format!("{name}: operand {} must be an integer", i + 1)))
    };
    let (from, to) = (int(0)?, int(1)?);
    let step = if args.len() == 3 { int(2)? } else { 1 };
    if step <= 0 {
        return Err(BuiltinError(format!(
            "{name}: step must be a positive integer, found {step}"
        )));
    }
    let span = (i128::from(to) - i128::from(from)).abs();
    let count = span / i128::from(step) + 1;
    if count > MAX_RANGE_ELEMENTS {
        return Err(BuiltinError(format!(
            "{name}: expected a range of at most {MAX_RANGE_ELEMENTS} elements, found {count}"
        )));
    }
    let dir: i128 = if to >= from { 1 } else { -1 };
    let values: Vec<RegoValue> = (0..count)
        .filter_map(|k| i64::try_from(i128::from(from) + dir * k * i128::from(step)).ok())
        .map(RegoValue::from)
        .collect();
    Ok(RegoValue::from(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &RegoValue) -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    }

    #[test]
    fn ranges_match_the_builtins() {
        let r = |a: i64, b: i64| range("numbers.range", &[a.into(), b.into()]).unwrap();
        assert_eq!(ints(&r(1, 4)), [1, 2, 3, 4]);
        assert_eq!(ints(&r(3, 1)), [3, 2, 1]);
        assert_eq!(ints(&r(5, 5)), [5]);
        let s =
            |a: i64, b: i64, c: i64| range("numbers.range_step", &[a.into(), b.into(), c.into()]);
        assert_eq!(ints(&s(0, 10, 3).unwrap()), [0, 3, 6, 9]);
        assert_eq!(ints(&s(10, 0, 4).unwrap()), [10, 6, 2]);
        assert!(s(0, 10, 0).is_err());
        assert!(range("numbers.range", &[RegoValue::from(1.5), 2i64.into()]).is_err());
    }

    #[test]
    fn huge_ranges_are_refused_without_allocating() {
        let e = range("numbers.range", &[i64::MIN.into(), i64::MAX.into()]).unwrap_err();
        assert!(e.0.contains("at most 100000 elements"), "{e}");
        assert!(range("numbers.range", &[1i64.into(), 100_000i64.into()]).is_ok());
        assert!(range("numbers.range", &[1i64.into(), 100_001i64.into()]).is_err());
    }
}
