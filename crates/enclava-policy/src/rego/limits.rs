//! Bounds on Rego policy source, checked before `regorus` sees the text.
//!
//! Why a pre-scan: regorus's parser cannot be interrupted (its execution timer is checked only
//! while evaluating) and it is exponential in nesting: it parses `[` and `{` first as a
//! comprehension and, when that fails, rewinds and parses the same text again as an array, set
//! or object, so every level doubles the work (measured: depth 18 took 17.8 s, depth 30 never
//! returned, and each request grew the heap by hundreds of MB). Unary minus and array items
//! recurse without regorus's own expression-depth guard, so a long `- - - ... x` or `[[[...`
//! would overflow the stack, and so would a long chain of binary operators (`1 +\n1 +\n...`
//! inside parentheses: about 4000 terms abort a debug build on a 2 MiB stack), which regorus
//! builds and evaluates recursively. [`prescan`] bounds the size, the line shape, the nesting
//! depth of the text (brackets, braces, parentheses and chains of unary minus) and the operators
//! in one expression, ignoring strings and comments, so that the worst policy that passes parses
//! in milliseconds and stays far from the stack's end; evaluation is then bounded by the
//! execution timer (see [`super::EVALUATION_TIME_LIMIT`]).

use std::fmt;

/// Largest accepted Rego policy source (bytes). Real appraisal policies are a few KiB.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024;
/// Deepest accepted nesting of `(`, `[`, `{` (rule bodies count as one level) plus any chain of
/// unary minus at that point. Real policies nest 4 or 5 deep. regorus's cost grows about 3x per
/// level (objects), so the bound keeps even a 64 KiB policy packed with the slowest shape at this
/// depth well under the deadline (see the `worst_case_*` tests).
pub const MAX_NESTING_DEPTH: usize = 8;
/// Most binary operators (`+`, `|`, `==`, `in`, ...) in one expression: between two separators
/// (`,`, `;`, a newline in a rule body) at one bracket level. Across the nesting bound this keeps
/// the deepest operator tree around a thousand levels (regorus overflowed a 2 MiB stack at about
/// four thousand in a debug build).
pub const MAX_EXPRESSION_OPERATORS: usize = 128;
/// Most lines in a policy.
pub const MAX_LINES: usize = 8192;
/// Longest line (bytes); regorus's own default column limit.
pub const MAX_LINE_BYTES: usize = 1024;

/// Which bound a policy exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyLimit {
    /// The source is larger than [`MAX_SOURCE_BYTES`].
    SourceBytes,
    /// More than [`MAX_LINES`] lines.
    Lines,
    /// A line longer than [`MAX_LINE_BYTES`].
    LineBytes,
    /// Nesting deeper than [`MAX_NESTING_DEPTH`].
    NestingDepth,
    /// More than [`MAX_EXPRESSION_OPERATORS`] operators in one expression.
    ExpressionOperators,
    /// Compiling and evaluating did not finish before the deadline.
    Deadline,
}

impl PolicyLimit {
    /// Stable snake-case name (used in error messages and API bodies).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyLimit::SourceBytes => "source_bytes",
            PolicyLimit::Lines => "lines",
            PolicyLimit::LineBytes => "line_bytes",
            PolicyLimit::NestingDepth => "nesting_depth",
            PolicyLimit::ExpressionOperators => "expression_operators",
            PolicyLimit::Deadline => "deadline",
        }
    }
}

impl fmt::Display for PolicyLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bound the source exceeds: which, what was allowed, what was found, and where (1-based line
/// and column, when the bound is about a place in the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitViolation {
    pub limit: PolicyLimit,
    pub expected: String,
    pub found: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// Where the scanner is: in code, in a `"..."` string (after a backslash or not), in a raw
/// `` `...` `` string, or in a `#` comment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    Str,
    StrEscape,
    Raw,
    Comment,
}

/// Check size, line shape and nesting depth of Rego `source` in one pass over its bytes. Brackets
/// inside strings, raw strings and comments do not count. Unbalanced closers are left to the
/// parser to report (the depth never goes below zero here).
pub fn prescan(source: &str) -> Result<(), LimitViolation> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(LimitViolation {
            limit: PolicyLimit::SourceBytes,
            expected: format!("at most {MAX_SOURCE_BYTES} bytes"),
            found: format!("{} bytes", source.len()),
            line: None,
            column: None,
        });
    }
    let mut state = State::Code;
    let mut depth: usize = 0;
    // Consecutive `-` tokens (only whitespace between them): each may be a unary minus, which
    // recurses in the parser like a bracket does.
    let mut minus_run: usize = 0;
    let mut line: usize = 1;
    let mut line_start: usize = 0;
    // Per open bracket (the first entry: top level), the bracket and the operators counted in
    // its current expression.
    let mut levels: Vec<(u8, usize)> = vec![(b'{', 0)];
    // Whether the previous code byte was an operator character (`==` is one operator).
    let mut in_operator = false;
    // Start of the identifier being read (for the `in` / `or` operators).
    let mut word_start: Option<usize> = None;
    for (i, b) in source.bytes().enumerate() {
        if state == State::Code {
            let is_word = b.is_ascii_alphanumeric() || b == b'_';
            match (word_start, is_word) {
                (None, true) => word_start = Some(i),
                (Some(start), false) => {
                    word_start = None;
                    if matches!(source.get(start..i), Some("in" | "or")) {
                        count_operator(&mut levels, line, i - line_start)?;
                    }
                }
                _ => {}
            }
            let operator = matches!(
                b,
                b'+' | b'-' | b'*' | b'/' | b'%' | b'&' | b'|' | b'<' | b'>' | b'=' | b'!'
            );
            if operator && !in_operator {
                count_operator(&mut levels, line, i - line_start + 1)?;
            }
            if !matches!(b, b' ' | b'\t' | b'\r') {
                in_operator = operator;
            }
            match b {
                b',' | b';' => reset(&mut levels),
                b'\n' if levels.last().is_some_and(|(open, _)| *open == b'{') => reset(&mut levels),
                b'(' | b'[' | b'{' => levels.push((b, 0)),
                b')' | b']' | b'}' if levels.len() > 1 => {
                    levels.pop();
                }
                _ => {}
            }
        }
        let column = i - line_start + 1;
        if b == b'\n' {
            if column > MAX_LINE_BYTES + 1 {
                return Err(line_too_long(line, column - 1));
            }
            line += 1;
            line_start = i + 1;
            if line > MAX_LINES {
                return Err(LimitViolation {
                    limit: PolicyLimit::Lines,
                    expected: format!("at most {MAX_LINES} lines"),
                    found: format!("more (line {line})"),
                    line: Some(to_u32(line)),
                    column: None,
                });
            }
        }
        state = match (state, b) {
            (State::Code, b'"') => State::Str,
            (State::Code, b'`') => State::Raw,
            (State::Code, b'#') => State::Comment,
            (State::Code, b'(' | b'[' | b'{') => {
                depth += 1;
                check_depth(depth + minus_run, line, column)?;
                minus_run = 0;
                State::Code
            }
            (State::Code, b')' | b']' | b'}') => {
                depth = depth.saturating_sub(1);
                minus_run = 0;
                State::Code
            }
            (State::Code, b'-') => {
                minus_run += 1;
                check_depth(depth + minus_run, line, column)?;
                State::Code
            }
            (State::Code, b' ' | b'\t' | b'\r' | b'\n') => State::Code,
            (State::Code, _) => {
                minus_run = 0;
                State::Code
            }
            (State::Str, b'\\') => State::StrEscape,
            // A newline ends an unterminated string for our purposes; the parser rejects it.
            (State::Str, b'"' | b'\n') | (State::Raw, b'`') | (State::Comment, b'\n') => {
                State::Code
            }
            (State::StrEscape, _) => State::Str,
            (s, _) => s,
        };
    }
    let last = source.len() - line_start;
    if last > MAX_LINE_BYTES {
        return Err(line_too_long(line, last));
    }
    Ok(())
}

fn reset(levels: &mut [(u8, usize)]) {
    if let Some((_, n)) = levels.last_mut() {
        *n = 0;
    }
}

fn count_operator(
    levels: &mut [(u8, usize)],
    line: usize,
    column: usize,
) -> Result<(), LimitViolation> {
    let Some((_, n)) = levels.last_mut() else {
        return Ok(());
    };
    *n += 1;
    if *n <= MAX_EXPRESSION_OPERATORS {
        return Ok(());
    }
    Err(LimitViolation {
        limit: PolicyLimit::ExpressionOperators,
        expected: format!("at most {MAX_EXPRESSION_OPERATORS} operators in one expression"),
        found: format!("more at line {line}, column {column}"),
        line: Some(to_u32(line)),
        column: Some(to_u32(column)),
    })
}

fn check_depth(depth: usize, line: usize, column: usize) -> Result<(), LimitViolation> {
    if depth <= MAX_NESTING_DEPTH {
        return Ok(());
    }
    Err(LimitViolation {
        limit: PolicyLimit::NestingDepth,
        expected: format!(
            "nesting of brackets, braces, parentheses and unary minus at most {MAX_NESTING_DEPTH} deep"
        ),
        found: format!("depth {depth} at line {line}, column {column}"),
        line: Some(to_u32(line)),
        column: Some(to_u32(column)),
    })
}

fn line_too_long(line: usize, len: usize) -> LimitViolation {
    LimitViolation {
        limit: PolicyLimit::LineBytes,
        expected: format!("lines of at most {MAX_LINE_BYTES} bytes"),
        found: format!("line {line} of {len} bytes"),
        line: Some(to_u32(line)),
        column: None,
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_error(src: &str) -> Option<LimitViolation> {
        prescan(src)
            .err()
            .filter(|e| e.limit == PolicyLimit::NestingDepth)
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let deep = "[".repeat(MAX_NESTING_DEPTH * 3);
        let src = format!(
            "package p\n# {deep}\nx := \"{deep}\"\ny := `{deep}\n{deep}`\nz := \"\\\"{deep}\"\n"
        );
        assert_eq!(prescan(&src), Ok(()));
    }

    #[test]
    fn nesting_at_the_limit_passes_and_one_more_fails() {
        let ok = format!(
            "package p\nx := {}1{}\n",
            "[".repeat(MAX_NESTING_DEPTH),
            "]".repeat(MAX_NESTING_DEPTH)
        );
        assert_eq!(prescan(&ok), Ok(()));
        let bad = format!(
            "package p\nx := {}1{}\n",
            "(".repeat(MAX_NESTING_DEPTH + 1),
            ")".repeat(MAX_NESTING_DEPTH + 1)
        );
        let e = depth_error(&bad).expect("too deep");
        assert_eq!(e.line, Some(2));
        assert_eq!(e.column, Some(6 + MAX_NESTING_DEPTH as u32));
        assert!(
            e.found
                .contains(&format!("depth {}", MAX_NESTING_DEPTH + 1))
        );
        assert!(e.expected.contains(&MAX_NESTING_DEPTH.to_string()));
    }

    #[test]
    fn mixed_brackets_and_closers_are_tracked() {
        // Many shallow structures in sequence never add up.
        let shallow = "x := [{\"a\": (1)}]\n".repeat(200);
        assert_eq!(prescan(&format!("package p\n{shallow}")), Ok(()));
        // Mixed kinds nest together.
        let mixed = "[{(".repeat(5);
        assert!(depth_error(&format!("package p\nx := {mixed}")).is_some());
        // An escaped quote does not end a string; a closing quote does.
        let src = format!("package p\nx := \"\\\"{}\" \n", "{".repeat(40));
        assert_eq!(prescan(&src), Ok(()));
    }

    #[test]
    fn unary_minus_chains_count_as_nesting() {
        let chain = "- ".repeat(MAX_NESTING_DEPTH + 1);
        assert!(depth_error(&format!("package p\nx := {chain}1\n")).is_some());
        // Ordinary arithmetic and negative literals are fine.
        assert_eq!(
            prescan(
                "package p\nx := 1 - -2\ny := 3 - 4 - 5 - 6 - 7 - 8 - 9 - 10 - 11 - 12 - 13 - 14\nz := 1e-5\n"
            ),
            Ok(())
        );
    }

    #[test]
    fn operator_chains_are_bounded_per_expression() {
        let ops =
            |e: &str| prescan(e).err().map(|v| v.limit) == Some(PolicyLimit::ExpressionOperators);
        let chain =
            |n: usize, op: &str| format!("package p\nx := (1{})\n", format!(" {op}\n1").repeat(n));
        for op in ["+", "|", "==", "in", "or", "&"] {
            assert_eq!(
                prescan(&chain(MAX_EXPRESSION_OPERATORS, op)),
                Ok(()),
                "{op}"
            );
            assert!(ops(&chain(MAX_EXPRESSION_OPERATORS + 1, op)), "{op}");
        }
        // Separators start a new expression: statements in a body, items, arguments.
        let body = format!(
            "package p\nallow if {{\n{}}}\n",
            "  1 + 1 == 2\n".repeat(500)
        );
        assert_eq!(prescan(&body), Ok(()));
        let items = format!("package p\nx := [{}]\n", "1 + 1,\n".repeat(500));
        assert_eq!(prescan(&items), Ok(()));
        // Operators and words inside strings and comments, and words containing `in`, do not count.
        let quiet = format!(
            "package p\n# {}\nx := \"{}\"\nindex := [min | min := 1]\n",
            "+ ".repeat(400),
            "in or | ".repeat(100)
        );
        assert_eq!(prescan(&quiet), Ok(()));
    }

    #[test]
    fn size_lines_and_line_length_are_bounded() {
        let big = format!("package p\n#{}", "a".repeat(MAX_SOURCE_BYTES));
        let e = prescan(&big).unwrap_err();
        assert_eq!(e.limit, PolicyLimit::SourceBytes);
        assert!(e.found.contains(&big.len().to_string()));

        let many = "\n".repeat(MAX_LINES + 1);
        assert_eq!(prescan(&many).unwrap_err().limit, PolicyLimit::Lines);

        let long = format!("package p\n# {}\nx := 1\n", "a".repeat(MAX_LINE_BYTES));
        let e = prescan(&long).unwrap_err();
        assert_eq!((e.limit, e.line), (PolicyLimit::LineBytes, Some(2)));
        let long_last = format!("package p\n# {}", "a".repeat(MAX_LINE_BYTES));
        assert_eq!(
            prescan(&long_last).unwrap_err().limit,
            PolicyLimit::LineBytes
        );
        let exactly = format!("package p\n#{}\n", "a".repeat(MAX_LINE_BYTES - 1));
        assert_eq!(prescan(&exactly), Ok(()));
    }

    #[test]
    fn builtin_policies_pass() {
        for name in super::super::defaults::NAMES {
            let src = super::super::defaults::source(name).unwrap();
            assert_eq!(prescan(src), Ok(()), "{name}");
        }
    }
}
