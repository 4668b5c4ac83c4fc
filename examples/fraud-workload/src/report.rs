//! The pipeline (CSV in, scores CSV out) and the per-merchant summary (JSON).

use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};

use crate::csv::{self, ParseError};
use crate::model::{IdMap, Transaction};
use crate::score::{Assessment, RULE_COUNT, Rule, Scorer, THRESHOLD};

/// Header of `scores.csv`.
pub const SCORES_HEADER: &str =
    "tx_id,card_id,timestamp,amount_cents,merchant_id,merchant_category,country,score,reasons";

/// Longest accepted input line (bytes, including the line end).
pub const MAX_LINE: u64 = 4096;

/// How many reasons each merchant lists.
pub const TOP_REASONS: usize = 3;

/// Why the pipeline failed.
#[derive(Debug)]
pub enum Error {
    Parse(ParseError),
    LineTooLong { line: u64, max: u64 },
    EmptyInput,
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Parse(e) => write!(f, "invalid input: {e}"),
            Error::LineTooLong { line, max } => {
                write!(
                    f,
                    "invalid input: line {line}: expected at most {max} bytes, found more"
                )
            }
            Error::EmptyInput => write!(f, "invalid input: expected a header line, found nothing"),
            Error::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        Error::Parse(e)
    }
}

/// Aggregates of one merchant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerchantAgg {
    /// MCC of the merchant's first transaction.
    pub mcc: u16,
    pub count: u64,
    pub total_cents: u128,
    pub flagged: u64,
    /// How often each rule fired on this merchant's transactions (any score).
    pub rule_hits: [u64; RULE_COUNT],
}

impl MerchantAgg {
    /// Mean amount, cents, rounded down.
    pub fn mean_cents(&self) -> u128 {
        self.total_cents
            .checked_div(u128::from(self.count))
            .unwrap_or(0)
    }

    /// Up to [`TOP_REASONS`] rules by hit count (descending, ties in rule order), zero counts omitted.
    pub fn top_reasons(&self) -> Vec<(Rule, u64)> {
        let mut v: Vec<(Rule, u64)> = Rule::ALL
            .iter()
            .zip(self.rule_hits.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(r, n)| (*r, *n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(TOP_REASONS);
        v
    }
}

/// Totals and per-merchant aggregates of one run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub transactions: u64,
    pub flagged: u64,
    pub total_cents: u128,
    pub flagged_cents: u128,
    pub cards: u64,
    /// Hits of each rule over all transactions.
    pub rule_hits: [u64; RULE_COUNT],
    pub merchants: IdMap<MerchantAgg>,
}

impl Summary {
    /// Adds one scored transaction.
    pub fn add(&mut self, tx: &Transaction, a: &Assessment) {
        self.transactions += 1;
        self.total_cents += u128::from(tx.amount_cents);
        let m = self
            .merchants
            .get_or_insert_with(tx.merchant_id, || MerchantAgg {
                mcc: tx.mcc,
                ..MerchantAgg::default()
            });
        m.count += 1;
        m.total_cents += u128::from(tx.amount_cents);
        if a.flagged() {
            self.flagged += 1;
            self.flagged_cents += u128::from(tx.amount_cents);
            m.flagged += 1;
        }
        for hit in a.hits() {
            let i = hit.rule.index();
            if let Some(n) = self.rule_hits.get_mut(i) {
                *n += 1;
            }
            if let Some(n) = m.rule_hits.get_mut(i) {
                *n += 1;
            }
        }
    }

    /// The deterministic JSON rendering (merchants sorted by id, fixed key order, `\n` at the end).
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(256 + self.merchants.len() * 256);
        // Writing into a String cannot fail; the results are ignored on purpose.
        let _ = write!(
            s,
            "{{\n  \"schema\": \"enclava-fraud-summary-v1\",\n  \"threshold\": {THRESHOLD},\n  \
             \"totals\": {{\"transactions\": {}, \"flagged\": {}, \"total_amount_cents\": {}, \
             \"flagged_amount_cents\": {}, \"cards\": {}, \"merchants\": {}}},\n  \"rule_hits\": {{",
            self.transactions,
            self.flagged,
            self.total_cents,
            self.flagged_cents,
            self.cards,
            self.merchants.len()
        );
        for (i, (rule, n)) in Rule::ALL.iter().zip(self.rule_hits.iter()).enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(s, "{sep}\"{}\": {n}", rule.name());
        }
        s.push_str("},\n  \"merchants\": [");
        let mut ids: Vec<u64> = self.merchants.iter().map(|(id, _)| id).collect();
        ids.sort_unstable();
        for (i, id) in ids.iter().enumerate() {
            let Some(m) = self.merchants.get(*id) else {
                continue;
            };
            s.push_str(if i == 0 { "\n    " } else { ",\n    " });
            let _ = write!(
                s,
                "{{\"merchant_id\": {id}, \"merchant_category\": \"{:04}\", \"count\": {}, \
                 \"total_cents\": {}, \"mean_cents\": {}, \"flagged\": {}, \"top_reasons\": [",
                m.mcc,
                m.count,
                m.total_cents,
                m.mean_cents(),
                m.flagged
            );
            for (j, (rule, n)) in m.top_reasons().iter().enumerate() {
                let sep = if j == 0 { "" } else { ", " };
                let _ = write!(s, "{sep}{{\"rule\": \"{}\", \"count\": {n}}}", rule.name());
            }
            s.push_str("]}");
        }
        s.push_str(if ids.is_empty() {
            "]\n}\n"
        } else {
            "\n  ]\n}\n"
        });
        s
    }
}

/// Bytes read from the input at a time.
pub const CHUNK: usize = 1 << 20;

/// Appends one flagged transaction's `scores.csv` row to `out`.
fn write_flagged(out: &mut Vec<u8>, tx: &Transaction, a: &Assessment) -> io::Result<()> {
    write!(
        out,
        "{},{},{},{},{},{:04},{},{},",
        tx.tx_id,
        tx.card_id,
        tx.timestamp,
        tx.amount_cents,
        tx.merchant_id,
        tx.mcc,
        tx.country,
        a.score
    )?;
    for (i, hit) in a.hits().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        write!(out, "{hit}")?;
    }
    out.push(b'\n');
    Ok(())
}

/// Streaming state of [`run`].
struct Pipeline<'w, W: Write> {
    scores: &'w mut W,
    out_buf: Vec<u8>,
    line_no: u64,
    header_done: bool,
    scorer: Scorer,
    summary: Summary,
}

impl<W: Write> Pipeline<'_, W> {
    fn record(&mut self, tx: &Transaction) -> io::Result<()> {
        let a = self.scorer.assess(tx);
        self.summary.add(tx, &a);
        if a.flagged() {
            write_flagged(&mut self.out_buf, tx, &a)?;
            if self.out_buf.len() >= 1 << 16 {
                self.scores.write_all(&self.out_buf)?;
                self.out_buf.clear();
            }
        }
        Ok(())
    }

    /// Processes `region`, which holds only complete lines (the last one may lack its `\n` at the
    /// end of the input).
    fn process(&mut self, region: &[u8]) -> Result<(), Error> {
        let mut pos = 0;
        while pos < region.len() {
            self.line_no += 1;
            if self.header_done
                && let Some((tx, next)) = csv::parse_row_fast(region, pos)
            {
                self.record(&tx)?;
                pos = next;
                continue;
            }
            // Slow path: the header, blank lines, and anything the fast path did not accept.
            let rest = region.get(pos..).unwrap_or(&[]);
            let len = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            let line = rest.get(..len).unwrap_or(&[]);
            pos += len;
            if line.len() as u64 > MAX_LINE {
                return Err(Error::LineTooLong {
                    line: self.line_no,
                    max: MAX_LINE,
                });
            }
            if !self.header_done {
                csv::check_header(line)?;
                writeln!(self.scores, "{SCORES_HEADER}")?;
                self.header_done = true;
                continue;
            }
            if csv::trim_line_end(line).is_empty() {
                continue;
            }
            let tx = csv::parse_row(self.line_no, line)?;
            self.record(&tx)?;
        }
        Ok(())
    }
}

/// Reads transactions from `input`, writes flagged ones to `scores` (CSV with header) and returns
/// the summary. Blank lines are skipped; anything else malformed stops the run with its line number.
pub fn run<R: Read, W: Write>(mut input: R, scores: &mut W) -> Result<Summary, Error> {
    let mut p = Pipeline {
        scores,
        out_buf: Vec::with_capacity(1 << 17),
        line_no: 0,
        header_done: false,
        scorer: Scorer::new(),
        summary: Summary::default(),
    };
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0usize;
    let mut eof = false;
    let mut seen_any = false;
    while !eof {
        while filled < buf.len() {
            let n = match input.read(buf.get_mut(filled..).unwrap_or(&mut [])) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                eof = true;
                break;
            }
            filled += n;
            seen_any = true;
        }
        let data = buf.get(..filled).unwrap_or(&[]);
        // Complete lines only, except at the end of the input.
        let end = if eof {
            filled
        } else {
            match data.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => {
                    return Err(Error::LineTooLong {
                        line: p.line_no + 1,
                        max: MAX_LINE,
                    });
                }
            }
        };
        p.process(data.get(..end).unwrap_or(&[]))?;
        buf.copy_within(end..filled, 0);
        filled -= end;
    }
    if !seen_any || !p.header_done {
        return Err(Error::EmptyInput);
    }
    p.scores.write_all(&p.out_buf)?;
    p.summary.cards = p.scorer.cards() as u64;
    p.scores.flush()?;
    Ok(p.summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::HEADER;

    fn run_str(input: &str) -> Result<(String, Summary), Error> {
        let mut out = Vec::new();
        let s = run(input.as_bytes(), &mut out)?;
        Ok((String::from_utf8(out).unwrap(), s))
    }

    #[test]
    fn pipeline_flags_and_aggregates() {
        // Card 1: five ordinary purchases, then a burst abroad at a crypto merchant at night.
        let mut input = format!("{HEADER}\n");
        for i in 0..5 {
            input += &format!(
                "{},1,{},2000,10,5411,GB,GB\n",
                i + 1,
                1_767_268_800 + i * 86_400
            );
        }
        // 2026-01-06 01:00 UTC = 02:00 in NG (UTC+1)
        input += "6,1,1767661200,2000,20,6051,NG,GB\r\n\n";
        input += "7,2,1767661300,50000,20,6051,NG,NG\n";
        let (scores, s) = run_str(&input).unwrap();
        let lines: Vec<&str> = scores.lines().collect();
        assert_eq!(lines.len(), 2, "{scores}");
        assert_eq!(lines[0], SCORES_HEADER);
        assert_eq!(
            lines[1],
            "6,1,1767661200,2000,20,6051,NG,50,merchant_category(mcc=6051):+25;\
             country_mismatch(GB->NG):+15;night_time(hour=02):+10"
        );
        assert_eq!(s.transactions, 7);
        assert_eq!(s.flagged, 1);
        assert_eq!(s.cards, 2);
        assert_eq!(s.total_cents, 5 * 2000 + 2000 + 50000);
        assert_eq!(s.flagged_cents, 2000);
        let m20 = s.merchants.get(20).unwrap();
        assert_eq!(
            (m20.count, m20.total_cents, m20.flagged, m20.mean_cents()),
            (2, 52000, 1, 26000)
        );
        assert_eq!(
            m20.top_reasons(),
            vec![
                (Rule::MerchantCategory, 2),
                (Rule::NightTime, 2),
                (Rule::CountryMismatch, 1)
            ]
        );
        let json = s.to_json();
        assert!(
            json.contains("\"totals\": {\"transactions\": 7, \"flagged\": 1,"),
            "{json}"
        );
        assert!(json.contains(
            "{\"merchant_id\": 10, \"merchant_category\": \"5411\", \"count\": 5, \
             \"total_cents\": 10000, \"mean_cents\": 2000, \"flagged\": 0, \"top_reasons\": []}"
        ));
        // Merchants appear sorted by id.
        assert!(
            json.find("\"merchant_id\": 10").unwrap() < json.find("\"merchant_id\": 20").unwrap()
        );
    }

    #[test]
    fn errors_name_the_line() {
        let input = format!("{HEADER}\n1,1,1,1,1,1,GB,GB\n1,1,oops,1,1,1,GB,GB\n");
        match run_str(&input) {
            Err(Error::Parse(ParseError::Field {
                line: 3,
                column: "timestamp",
                ..
            })) => {}
            other => panic!("expected a timestamp error on line 3, got {other:?}"),
        }
        assert!(matches!(run_str(""), Err(Error::EmptyInput)));
        assert!(matches!(
            run_str("a,b\n"),
            Err(Error::Parse(ParseError::Header { .. }))
        ));
        let huge = format!("{HEADER}\n{}\n", "1".repeat(CHUNK + 10));
        assert!(matches!(
            run_str(&huge),
            Err(Error::LineTooLong { line: 2, .. })
        ));
        let long = format!("{HEADER}\n{}\n", "1".repeat(5000));
        assert!(matches!(
            run_str(&long),
            Err(Error::LineTooLong { line: 2, .. })
        ));
    }

    /// A reader that hands out at most `step` bytes per call.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            let (head, tail) = self.data.split_at(n);
            buf[..n].copy_from_slice(head);
            self.data = tail;
            Ok(n)
        }
    }

    #[test]
    fn chunked_streaming_matches_line_by_line_reference() {
        let txs = crate::generate::generate(60_000, 9);
        let mut csv = crate::generate::to_csv(&txs);
        assert!(csv.len() > 2 * CHUNK, "the input must span several chunks");
        csv.pop(); // no newline after the last row

        // Reference: every row through parse_row, one line at a time.
        let mut scorer = Scorer::new();
        let mut expected_scores = format!("{SCORES_HEADER}\n").into_bytes();
        let mut expected = Summary::default();
        for (i, line) in csv.split(|&b| b == b'\n').enumerate().skip(1) {
            let tx = csv::parse_row(i as u64 + 1, line).unwrap();
            let a = scorer.assess(&tx);
            expected.add(&tx, &a);
            if a.flagged() {
                write_flagged(&mut expected_scores, &tx, &a).unwrap();
            }
        }
        expected.cards = scorer.cards() as u64;
        assert!(expected.flagged > 0);

        for step in [CHUNK, 7_777, 1_000_003] {
            let mut out = Vec::new();
            let s = run(Trickle { data: &csv, step }, &mut out).unwrap();
            assert!(
                out == expected_scores,
                "scores differ with read size {step}"
            );
            assert_eq!(
                s.to_json(),
                expected.to_json(),
                "summary differs with read size {step}"
            );
            assert_eq!(s.transactions, 60_000);
        }
    }

    #[test]
    fn header_only_gives_empty_summary() {
        let (scores, s) = run_str(&format!("{HEADER}\n")).unwrap();
        assert_eq!(scores, format!("{SCORES_HEADER}\n"));
        assert_eq!(s.transactions, 0);
        assert!(s.to_json().ends_with("\"merchants\": []\n}\n"));
    }
}
