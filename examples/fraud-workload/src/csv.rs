//! A minimal CSV reader for the transaction format: no quoting (no field of this format can
//! contain a comma or a quote), `\n` or `\r\n` line ends, exact header.

use std::fmt;

use crate::model::{Country, Transaction};

/// The header line every transaction file starts with.
pub const HEADER: &str =
    "tx_id,card_id,timestamp,amount_cents,merchant_id,merchant_category,country,card_home_country";

/// Number of fields in a row.
pub const FIELDS: usize = 8;

/// Why a line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The first line is not [`HEADER`].
    Header { found: String },
    /// A row has the wrong number of fields.
    FieldCount {
        line: u64,
        expected: usize,
        found: usize,
    },
    /// A field is not what its column requires.
    Field {
        line: u64,
        column: &'static str,
        expected: &'static str,
        found: String,
    },
    /// The line is not UTF-8 / contains a quote (quoting is not part of this format).
    Syntax { line: u64, reason: &'static str },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Header { found } => {
                write!(f, "line 1: expected header `{HEADER}`, found `{found}`")
            }
            ParseError::FieldCount {
                line,
                expected,
                found,
            } => {
                write!(f, "line {line}: expected {expected} fields, found {found}")
            }
            ParseError::Field {
                line,
                column,
                expected,
                found,
            } => {
                write!(
                    f,
                    "line {line}: column {column}: expected {expected}, found `{found}`"
                )
            }
            ParseError::Syntax { line, reason } => write!(f, "line {line}: {reason}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Strips one trailing `\n` and then one trailing `\r`.
pub fn trim_line_end(mut line: &[u8]) -> &[u8] {
    if let [rest @ .., b'\n'] = line {
        line = rest;
    }
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    line
}

/// Checks the header line (without its line end).
pub fn check_header(line: &[u8]) -> Result<(), ParseError> {
    let line = trim_line_end(line);
    if line == HEADER.as_bytes() {
        Ok(())
    } else {
        Err(ParseError::Header {
            found: shorten(line),
        })
    }
}

/// A short, printable rendering of untrusted bytes for error messages.
fn shorten(bytes: &[u8]) -> String {
    const MAX: usize = 80;
    let s = String::from_utf8_lossy(bytes.get(..MAX.min(bytes.len())).unwrap_or(&[]));
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if bytes.len() > MAX {
        out.push('…');
    }
    out
}

fn parse_u64(line: u64, column: &'static str, field: &[u8]) -> Result<u64, ParseError> {
    let err = || ParseError::Field {
        line,
        column,
        expected: "a decimal integer without sign that fits in 64 bits",
        found: shorten(field),
    };
    if field.is_empty() || field.len() > 20 {
        return Err(err());
    }
    if !field.iter().all(u8::is_ascii_digit) {
        return Err(err());
    }
    // Up to 19 digits cannot overflow u64, so the common case needs no overflow checks (which
    // cost a 128-bit multiply per digit on wasm32).
    let (head, last) = match field.split_last_chunk::<1>() {
        Some((head, [last])) if field.len() == 20 => (head, Some(*last)),
        _ => (field, None),
    };
    let v = head.iter().fold(0u64, |v, &b| v * 10 + u64::from(b - b'0'));
    match last {
        None => Ok(v),
        Some(b) => v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(err),
    }
}

fn parse_bounded(
    line: u64,
    column: &'static str,
    field: &[u8],
    max: u64,
    expected: &'static str,
) -> Result<u64, ParseError> {
    let v = parse_u64(line, column, field)?;
    if v > max {
        return Err(ParseError::Field {
            line,
            column,
            expected,
            found: shorten(field),
        });
    }
    Ok(v)
}

fn parse_country(line: u64, column: &'static str, field: &[u8]) -> Result<Country, ParseError> {
    match field {
        [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok(Country([*a, *b])),
        _ => Err(ParseError::Field {
            line,
            column,
            expected: "a two-letter upper-case country code",
            found: shorten(field),
        }),
    }
}

/// Parses one data row (line end optional). `line` is the 1-based line number for errors.
pub fn parse_row(line: u64, raw: &[u8]) -> Result<Transaction, ParseError> {
    let raw = trim_line_end(raw);
    if raw.contains(&b'"') {
        return Err(ParseError::Syntax {
            line,
            reason: "quoted fields are not part of this format",
        });
    }
    let mut fields: [&[u8]; FIELDS] = [&[]; FIELDS];
    let mut count = 0usize;
    for field in raw.split(|&b| b == b',') {
        if let Some(slot) = fields.get_mut(count) {
            *slot = field;
        }
        count += 1;
    }
    if count != FIELDS {
        return Err(ParseError::FieldCount {
            line,
            expected: FIELDS,
            found: count,
        });
    }
    let [
        tx_id,
        card_id,
        timestamp,
        amount,
        merchant_id,
        mcc,
        country,
        home,
    ] = fields;
    Ok(Transaction {
        tx_id: parse_u64(line, "tx_id", tx_id)?,
        card_id: parse_u64(line, "card_id", card_id)?,
        timestamp: parse_bounded(
            line,
            "timestamp",
            timestamp,
            // Year ~33658: far beyond any real data, keeps all later arithmetic in range.
            1 << 40,
            "unix seconds no later than 2^40",
        )? as i64,
        amount_cents: parse_bounded(
            line,
            "amount_cents",
            amount,
            1 << 53,
            "an amount in cents no larger than 2^53",
        )?,
        merchant_id: parse_u64(line, "merchant_id", merchant_id)?,
        mcc: parse_bounded(line, "merchant_category", mcc, 9999, "a four-digit MCC")? as u16,
        country: parse_country(line, "country", country)?,
        home_country: parse_country(line, "card_home_country", home)?,
    })
}

/// One-pass parse of a numeric field at `pos` that must be followed by `,`; `None` for anything
/// unusual (the caller then falls back to [`parse_row`] for the precise error).
#[inline(always)]
fn fast_num(buf: &[u8], mut pos: usize, max: u64) -> Option<(u64, usize)> {
    let start = pos;
    let mut v: u64 = 0;
    loop {
        let d = buf.get(pos)?.wrapping_sub(b'0');
        if d >= 10 {
            break;
        }
        // At most 19 digits: cannot overflow u64 (longer numbers take the slow path).
        if pos - start >= 19 {
            return None;
        }
        v = v * 10 + u64::from(d);
        pos += 1;
    }
    if pos == start || v > max || *buf.get(pos)? != b',' {
        return None;
    }
    Some((v, pos + 1))
}

#[inline(always)]
fn fast_country(buf: &[u8], pos: usize) -> Option<Country> {
    match buf.get(pos..pos + 2)? {
        [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Some(Country([*a, *b])),
        _ => None,
    }
}

/// Fast path of [`parse_row`] for the row starting at `buf[pos]`: parses the fields in one pass
/// without first looking for the line end, and returns the transaction and the position after the
/// row's line end (`\n`, `\r\n`, or the end of `buf`). Returns `None` whenever the row is not a
/// plain well-formed row; it never accepts a row that [`parse_row`] would reject, and for rows it
/// accepts it gives the same transaction.
#[inline]
pub fn parse_row_fast(buf: &[u8], pos: usize) -> Option<(Transaction, usize)> {
    let (tx_id, pos) = fast_num(buf, pos, u64::MAX)?;
    let (card_id, pos) = fast_num(buf, pos, u64::MAX)?;
    let (timestamp, pos) = fast_num(buf, pos, 1 << 40)?;
    let (amount_cents, pos) = fast_num(buf, pos, 1 << 53)?;
    let (merchant_id, pos) = fast_num(buf, pos, u64::MAX)?;
    let (mcc, pos) = fast_num(buf, pos, 9999)?;
    let country = fast_country(buf, pos)?;
    if *buf.get(pos + 2)? != b',' {
        return None;
    }
    let home_country = fast_country(buf, pos + 3)?;
    let end = pos + 5;
    let next = match buf.get(end..) {
        Some([]) => end,
        Some([b'\n', ..]) => end + 1,
        Some([b'\r', b'\n', ..]) => end + 2,
        _ => return None,
    };
    let tx = Transaction {
        tx_id,
        card_id,
        timestamp: timestamp as i64,
        amount_cents,
        merchant_id,
        mcc: mcc as u16,
        country,
        home_country,
    };
    Some((tx, next))
}

/// Writes one row in the canonical format (with `\n`).
pub fn write_row(out: &mut Vec<u8>, tx: &Transaction) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = writeln!(
        out,
        "{},{},{},{},{},{:04},{},{}",
        tx.tx_id,
        tx.card_id,
        tx.timestamp,
        tx.amount_cents,
        tx.merchant_id,
        tx.mcc,
        tx.country,
        tx.home_country
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Transaction {
        Transaction {
            tx_id: 7,
            card_id: 42,
            timestamp: 1_767_225_600,
            amount_cents: 1999,
            merchant_id: 5,
            mcc: 742,
            country: Country(*b"DE"),
            home_country: Country(*b"FR"),
        }
    }

    #[test]
    fn row_round_trips() {
        let tx = sample();
        let mut buf = Vec::new();
        write_row(&mut buf, &tx);
        assert_eq!(buf, b"7,42,1767225600,1999,5,0742,DE,FR\n");
        assert_eq!(parse_row(2, &buf), Ok(tx));
    }

    #[test]
    fn crlf_and_no_line_end_are_accepted() {
        let tx = sample();
        assert_eq!(
            parse_row(2, b"7,42,1767225600,1999,5,0742,DE,FR\r\n"),
            Ok(tx)
        );
        assert_eq!(parse_row(2, b"7,42,1767225600,1999,5,742,DE,FR"), Ok(tx));
    }

    #[test]
    fn header_is_checked() {
        assert!(check_header(format!("{HEADER}\r\n").as_bytes()).is_ok());
        let err = check_header(b"tx,card\n").unwrap_err();
        assert_eq!(
            err,
            ParseError::Header {
                found: "tx,card".into()
            }
        );
    }

    #[test]
    fn wrong_field_count_is_reported() {
        assert_eq!(
            parse_row(3, b"1,2,3"),
            Err(ParseError::FieldCount {
                line: 3,
                expected: 8,
                found: 3
            })
        );
        assert_eq!(
            parse_row(3, b"1,2,3,4,5,6,DE,FR,9"),
            Err(ParseError::FieldCount {
                line: 3,
                expected: 8,
                found: 9
            })
        );
        assert!(matches!(
            parse_row(3, b""),
            Err(ParseError::FieldCount { found: 1, .. })
        ));
    }

    #[test]
    fn bad_fields_are_reported_with_column() {
        let cases: [(&[u8], &str); 8] = [
            (b"x,2,3,4,5,6,DE,FR", "tx_id"),
            (b"1,-2,3,4,5,6,DE,FR", "card_id"),
            (b"1,2,,4,5,6,DE,FR", "timestamp"),
            (b"1,2,3,99999999999999999999999,5,6,DE,FR", "amount_cents"),
            (b"1,2,3,4,5 ,6,DE,FR", "merchant_id"),
            (b"1,2,3,4,5,10000,DE,FR", "merchant_category"),
            (b"1,2,3,4,5,6,de,FR", "country"),
            (b"1,2,3,4,5,6,DE,FRA", "card_home_country"),
        ];
        for (row, col) in cases {
            match parse_row(9, row) {
                Err(ParseError::Field {
                    line: 9, column, ..
                }) => assert_eq!(column, col),
                other => panic!(
                    "{}: expected a field error in {col}, got {other:?}",
                    shorten(row)
                ),
            }
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        assert!(parse_row(2, b"18446744073709551616,2,3,4,5,6,DE,FR").is_err());
        assert_eq!(
            parse_row(2, b"18446744073709551615,2,3,4,5,6,DE,FR").map(|t| t.tx_id),
            Ok(u64::MAX)
        );
        assert!(parse_row(2, b"1,2,1099511627777,4,5,6,DE,FR").is_err());
    }

    #[test]
    fn fast_path_agrees_with_parse_row() {
        let rows: &[&[u8]] = &[
            b"7,42,1767225600,1999,5,0742,DE,FR\n",
            b"7,42,1767225600,1999,5,742,DE,FR\r\n",
            b"7,42,1767225600,1999,5,742,DE,FR",
            b"18446744073709551615,2,3,4,5,6,DE,FR\n",
            b"1844674407370955161,2,3,4,5,6,DE,FR\n",
            b"1,2,1099511627776,9007199254740992,5,9999,DE,FR\n",
            b"1,2,1099511627777,4,5,6,DE,FR\n",
            b"1,2,3,9007199254740993,5,6,DE,FR\n",
            b"1,2,3,4,5,10000,DE,FR\n",
            b"1,2,3,4,5,6,DE,FR,\n",
            b"1,2,3,4,5,6,DE,FRA\n",
            b"1,2,3,4,5,6,DE,F\n",
            b"1,2,3,4,5,6,de,FR\n",
            b"1,2,3,4,5,6,DE,FR\r",
            b"1,2,3,4,5,6,DE;FR\n",
            b"1,2,,4,5,6,DE,FR\n",
            b"1,2,3\n",
            b"\n",
            b"",
            b"\"1\",2,3,4,5,6,DE,FR\n",
        ];
        let mut accepted = 0;
        for row in rows {
            let slow = parse_row(2, row);
            // When the fast path declines, the caller falls back to parse_row, which decides.
            if let Some((tx, next)) = parse_row_fast(row, 0) {
                assert_eq!(slow, Ok(tx), "{}", shorten(row));
                assert_eq!(next, row.len(), "{}", shorten(row));
                accepted += 1;
            }
        }
        // The plain rows above (all but the 20-digit id and the invalid ones) take the fast path.
        assert_eq!(accepted, 5);
        // Rows the fast path must accept.
        assert!(parse_row_fast(b"7,42,1767225600,1999,5,0742,DE,FR\n", 0).is_some());
        assert!(parse_row_fast(b"7,42,1767225600,1999,5,0742,DE,FR", 0).is_some());
        // Consecutive rows: `next` is the start of the following row.
        let two = b"1,2,3,4,5,6,DE,FR\r\n8,9,10,11,12,13,GB,GB\n";
        let (a, next) = parse_row_fast(two, 0).unwrap();
        let (b, end) = parse_row_fast(two, next).unwrap();
        assert_eq!((a.tx_id, b.tx_id, end), (1, 8, two.len()));
    }

    #[test]
    fn quotes_and_garbage_do_not_panic() {
        assert!(matches!(
            parse_row(2, b"\"1\",2,3,4,5,6,DE,FR"),
            Err(ParseError::Syntax { .. })
        ));
        for row in [
            &b"\xff\xfe,,,,,,,"[..],
            b",,,,,,,",
            b"\n",
            b"\r\n",
            b"1,2,3,4,5,6,\xc3\xa9,FR",
        ] {
            assert!(parse_row(2, row).is_err());
        }
    }
}
