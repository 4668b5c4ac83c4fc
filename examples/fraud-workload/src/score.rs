//! The transparent, rule-based fraud score.
//!
//! Transactions are scored in input order against per-card running state (what the card did
//! *before* this transaction); every rule that fires contributes a fixed, documented number of
//! points, and a transaction is flagged when the sum reaches [`THRESHOLD`].
//!
//! | rule | fires when | points |
//! |---|---|---|
//! | `amount_zscore` | the card has at least [`MIN_HISTORY`] earlier transactions and the amount is at least 3 robust standard deviations above the card's running mean (sd floored at max(25% of the mean, 5.00)) | `min(40, floor(8 z))` |
//! | `large_amount_new_card` | fewer than [`MIN_HISTORY`] earlier transactions and amount >= 1000.00 | 15 |
//! | `velocity_1h` | n >= 5 transactions of the card in the hour up to and including this one | `min(40, 10 (n - 4))` |
//! | `merchant_category` | the MCC is in the risk table ([`mcc_risk`]) | table value |
//! | `country_mismatch` | transaction country differs from the card's home country | 15 |
//! | `impossible_travel` | the card's previous transaction was in another country less than 2 h earlier | 20 |
//! | `night_time` | local hour (country's standard time) in 00:00–04:59 | 10 |
//!
//! All arithmetic is deterministic on every IEEE-754 platform (only `+ - * / sqrt` on `f64`), so
//! the native and the WebAssembly build produce byte-identical output.

use std::fmt;

use crate::model::{Country, IdMap, Transaction, local_hour};

/// Score at or above which a transaction is flagged.
pub const THRESHOLD: u32 = 50;
/// Earlier transactions a card needs before its amount statistics are trusted.
pub const MIN_HISTORY: u64 = 5;
/// The velocity window, seconds.
pub const VELOCITY_WINDOW: i64 = 3600;
/// How many recent timestamps per card are kept (velocity counts saturate here).
pub const VELOCITY_CAP: usize = 16;
/// The impossible-travel window, seconds.
pub const TRAVEL_WINDOW: i64 = 2 * 3600;
/// Amount from which a transaction on a card without history counts as large (cents).
pub const LARGE_NEW_CARD_CENTS: u64 = 100_000;

/// The rules, in the order their contributions are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    AmountZscore,
    LargeAmountNewCard,
    Velocity,
    MerchantCategory,
    CountryMismatch,
    ImpossibleTravel,
    NightTime,
}

/// Number of rules.
pub const RULE_COUNT: usize = 7;

impl Rule {
    /// All rules in listing order.
    pub const ALL: [Rule; RULE_COUNT] = [
        Rule::AmountZscore,
        Rule::LargeAmountNewCard,
        Rule::Velocity,
        Rule::MerchantCategory,
        Rule::CountryMismatch,
        Rule::ImpossibleTravel,
        Rule::NightTime,
    ];

    /// Stable name used in the outputs.
    pub fn name(self) -> &'static str {
        match self {
            Rule::AmountZscore => "amount_zscore",
            Rule::LargeAmountNewCard => "large_amount_new_card",
            Rule::Velocity => "velocity_1h",
            Rule::MerchantCategory => "merchant_category",
            Rule::CountryMismatch => "country_mismatch",
            Rule::ImpossibleTravel => "impossible_travel",
            Rule::NightTime => "night_time",
        }
    }

    /// Position in [`Rule::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Risk points of a merchant category code (0 for ordinary categories).
pub fn mcc_risk(mcc: u16) -> u32 {
    match mcc {
        6051 => 25, // quasi-cash, crypto
        7995 => 20, // gambling
        4829 => 20, // money transfer
        5967 => 15, // direct marketing, inbound teleservices
        5944 => 10, // jewellery
        5732 => 10, // electronics
        6011 => 5,  // ATM cash
        _ => 0,
    }
}

/// What made a rule fire, for the human-readable reason.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Detail {
    ZScore(f64),
    Amount(u64),
    Count(u32),
    Mcc(u16),
    Countries { home: Country, at: Country },
    Travel { from: Country, minutes: i64 },
    Hour(u32),
}

/// One rule's contribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub rule: Rule,
    pub points: u32,
    pub detail: Detail,
}

impl fmt::Display for Hit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.rule.name();
        match self.detail {
            Detail::ZScore(z) => write!(f, "{name}(z={z:.1})"),
            Detail::Amount(c) => write!(f, "{name}(amount={}.{:02})", c / 100, c % 100),
            Detail::Count(n) => write!(f, "{name}(n={n})"),
            Detail::Mcc(m) => write!(f, "{name}(mcc={m:04})"),
            Detail::Countries { home, at } => write!(f, "{name}({home}->{at})"),
            Detail::Travel { from, minutes } => write!(f, "{name}(from={from},{minutes}min)"),
            Detail::Hour(h) => write!(f, "{name}(hour={h:02})"),
        }?;
        write!(f, ":+{}", self.points)
    }
}

/// The score of one transaction and every contribution to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub score: u32,
    hits: [Option<Hit>; RULE_COUNT],
}

impl Assessment {
    /// Whether the score reaches [`THRESHOLD`].
    pub fn flagged(&self) -> bool {
        self.score >= THRESHOLD
    }

    /// The rules that fired, in [`Rule::ALL`] order.
    pub fn hits(&self) -> impl Iterator<Item = &Hit> {
        self.hits.iter().flatten()
    }

    /// Points of one rule (0 when it did not fire).
    pub fn points(&self, rule: Rule) -> u32 {
        self.hits
            .get(rule.index())
            .copied()
            .flatten()
            .map_or(0, |h| h.points)
    }

    /// `rule(detail):+points` joined with `;`.
    pub fn reasons(&self) -> String {
        let mut s = String::new();
        for (i, hit) in self.hits().enumerate() {
            if i > 0 {
                s.push(';');
            }
            s.push_str(&hit.to_string());
        }
        s
    }
}

/// What is remembered about a card.
#[derive(Debug, Clone)]
struct CardState {
    /// Welford running statistics over amounts (cents).
    n: u64,
    mean: f64,
    m2: f64,
    /// Ring of the most recent timestamps.
    recent: [i64; VELOCITY_CAP],
    recent_len: usize,
    recent_next: usize,
    /// Previous transaction's time and country.
    last: Option<(i64, Country)>,
}

impl CardState {
    fn new() -> Self {
        CardState {
            n: 0,
            mean: 0.0,
            m2: 0.0,
            recent: [0; VELOCITY_CAP],
            recent_len: 0,
            recent_next: 0,
            last: None,
        }
    }

    fn stddev(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / (self.n - 1) as f64).sqrt()
        }
    }

    /// Transactions in `(ts - window, ts]` among the remembered ones (this one not included).
    fn recent_within(&self, ts: i64) -> u32 {
        let valid = self.recent.get(..self.recent_len).unwrap_or(&[]);
        valid
            .iter()
            .filter(|&&t| t <= ts && ts - t < VELOCITY_WINDOW)
            .count() as u32
    }

    fn update(&mut self, tx: &Transaction) {
        self.n += 1;
        let x = tx.amount_cents as f64;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
        if let Some(slot) = self.recent.get_mut(self.recent_next) {
            *slot = tx.timestamp;
        }
        self.recent_next = (self.recent_next + 1) % VELOCITY_CAP;
        self.recent_len = (self.recent_len + 1).min(VELOCITY_CAP);
        self.last = Some((tx.timestamp, tx.country));
    }
}

/// Scores transactions in order, keeping per-card state.
#[derive(Default)]
pub struct Scorer {
    cards: IdMap<CardState>,
}

impl Scorer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct cards seen.
    pub fn cards(&self) -> usize {
        self.cards.len()
    }

    /// Scores `tx` against what its card did before, then remembers `tx`.
    pub fn assess(&mut self, tx: &Transaction) -> Assessment {
        let card = self.cards.get_or_insert_with(tx.card_id, CardState::new);
        let mut hits: [Option<Hit>; RULE_COUNT] = [None; RULE_COUNT];
        let mut put = |rule: Rule, points: u32, detail: Detail| {
            if let Some(slot) = hits.get_mut(rule.index()) {
                *slot = Some(Hit {
                    rule,
                    points,
                    detail,
                });
            }
        };

        let amount = tx.amount_cents as f64;
        if card.n >= MIN_HISTORY {
            // Plain comparisons rather than f64::max, which is a libm call on wasm32 (its
            // NaN rules differ from f64.max); no value here is NaN.
            let floor = if card.mean * 0.25 > 500.0 {
                card.mean * 0.25
            } else {
                500.0
            };
            let sd = card.stddev();
            let sd = if sd > floor { sd } else { floor };
            let z = (amount - card.mean) / sd;
            if z >= 3.0 {
                // Saturating float->int conversion; z is finite because sd >= 500.
                let points = ((z * 8.0) as u32).min(40);
                put(Rule::AmountZscore, points, Detail::ZScore(z));
            }
        } else if tx.amount_cents >= LARGE_NEW_CARD_CENTS {
            put(
                Rule::LargeAmountNewCard,
                15,
                Detail::Amount(tx.amount_cents),
            );
        }

        let n = card.recent_within(tx.timestamp) + 1;
        if n >= 5 {
            put(Rule::Velocity, (10 * (n - 4)).min(40), Detail::Count(n));
        }

        let risk = mcc_risk(tx.mcc);
        if risk > 0 {
            put(Rule::MerchantCategory, risk, Detail::Mcc(tx.mcc));
        }

        if tx.country != tx.home_country {
            put(
                Rule::CountryMismatch,
                15,
                Detail::Countries {
                    home: tx.home_country,
                    at: tx.country,
                },
            );
        }

        if let Some((last_ts, last_country)) = card.last {
            let gap = tx.timestamp - last_ts;
            if last_country != tx.country && (0..TRAVEL_WINDOW).contains(&gap) {
                put(
                    Rule::ImpossibleTravel,
                    20,
                    Detail::Travel {
                        from: last_country,
                        minutes: gap / 60,
                    },
                );
            }
        }

        let hour = local_hour(tx.timestamp, tx.country);
        if hour < 5 {
            put(Rule::NightTime, 10, Detail::Hour(hour));
        }

        card.update(tx);
        let score = hits.iter().flatten().map(|h| h.points).sum();
        Assessment { score, hits }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON_UTC: i64 = 1_767_268_800; // 2026-01-01 12:00:00 UTC

    fn tx(card: u64, ts: i64, amount: u64) -> Transaction {
        Transaction {
            tx_id: 0,
            card_id: card,
            timestamp: ts,
            amount_cents: amount,
            merchant_id: 1,
            mcc: 5411,
            country: Country(*b"GB"),
            home_country: Country(*b"GB"),
        }
    }

    /// Five ordinary purchases a day apart, so only amount statistics build up.
    fn with_history(s: &mut Scorer, card: u64, amounts: &[u64]) -> i64 {
        let mut ts = NOON_UTC;
        for &a in amounts {
            let a = s.assess(&tx(card, ts, a));
            assert_eq!(a.score, 0, "history must be clean: {}", a.reasons());
            ts += 86_400;
        }
        ts
    }

    #[test]
    fn ordinary_transaction_scores_zero() {
        let mut s = Scorer::new();
        let a = s.assess(&tx(1, NOON_UTC, 2500));
        assert_eq!(a.score, 0);
        assert!(!a.flagged());
        assert_eq!(a.reasons(), "");
    }

    #[test]
    fn amount_zscore_uses_floored_stddev() {
        let mut s = Scorer::new();
        // mean 2000, sample sd 0 -> floored to max(500, 0.25 * 2000) = 500.
        let ts = with_history(&mut s, 1, &[2000; 5]);
        // 2000 + 2.9 sd: below 3.
        assert_eq!(s.assess(&tx(1, ts, 3450)).points(Rule::AmountZscore), 0);
        let mut s = Scorer::new();
        let ts = with_history(&mut s, 1, &[2000; 5]);
        // z = (4000 - 2000) / 500 = 4 -> floor(32)
        let a = s.assess(&tx(1, ts, 4000));
        assert_eq!(a.points(Rule::AmountZscore), 32);
        assert_eq!(a.reasons(), "amount_zscore(z=4.0):+32");
        // Huge amounts are capped at 40.
        let a = s.assess(&tx(1, ts + 86_400, 10_000_000));
        assert_eq!(a.points(Rule::AmountZscore), 40);
    }

    #[test]
    fn amount_zscore_needs_history() {
        let mut s = Scorer::new();
        let ts = with_history(&mut s, 1, &[2000; 4]);
        let a = s.assess(&tx(1, ts, 90_000));
        assert_eq!(a.points(Rule::AmountZscore), 0);
        assert_eq!(a.points(Rule::LargeAmountNewCard), 0);
        let a = s.assess(&tx(2, ts, 100_000));
        assert_eq!(a.points(Rule::LargeAmountNewCard), 15);
        assert_eq!(a.reasons(), "large_amount_new_card(amount=1000.00):+15");
    }

    #[test]
    fn welford_matches_two_pass_stddev() {
        let mut c = CardState::new();
        let xs = [1200u64, 3400, 560, 7800, 2300, 999];
        for &x in &xs {
            c.update(&tx(1, NOON_UTC, x));
        }
        let mean = xs.iter().sum::<u64>() as f64 / xs.len() as f64;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / 5.0;
        assert!((c.mean - mean).abs() < 1e-9);
        assert!((c.stddev() - var.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn velocity_counts_the_last_hour() {
        let mut s = Scorer::new();
        let mut scores = Vec::new();
        for i in 0..7 {
            scores.push(
                s.assess(&tx(1, NOON_UTC + i * 300, 1000))
                    .points(Rule::Velocity),
            );
        }
        assert_eq!(scores, [0, 0, 0, 0, 10, 20, 30]);
        // One hour after the 4th transaction (t=900) only t=1200,1500,1800 remain -> n = 4.
        let a = s.assess(&tx(1, NOON_UTC + 900 + 3600, 1000));
        assert_eq!(a.points(Rule::Velocity), 0);
        // Other cards do not count.
        assert_eq!(
            s.assess(&tx(2, NOON_UTC + 1900, 1000))
                .points(Rule::Velocity),
            0
        );
    }

    #[test]
    fn velocity_is_capped() {
        let mut s = Scorer::new();
        let mut last = None;
        for i in 0..30 {
            last = Some(s.assess(&tx(1, NOON_UTC + i, 1000)));
        }
        let a = last.unwrap();
        assert_eq!(a.points(Rule::Velocity), 40);
    }

    #[test]
    fn merchant_category_country_travel_and_night() {
        let mut s = Scorer::new();
        let home = s.assess(&tx(1, NOON_UTC, 1000));
        assert_eq!(home.score, 0);
        let mut t = tx(1, NOON_UTC + 1800, 1000);
        t.country = Country(*b"NG");
        t.mcc = 6051;
        let a = s.assess(&t);
        assert_eq!(a.points(Rule::MerchantCategory), 25);
        assert_eq!(a.points(Rule::CountryMismatch), 15);
        assert_eq!(a.points(Rule::ImpossibleTravel), 20);
        assert_eq!(a.points(Rule::NightTime), 0);
        assert_eq!(a.score, 60);
        assert!(a.flagged());
        assert_eq!(
            a.reasons(),
            "merchant_category(mcc=6051):+25;country_mismatch(GB->NG):+15;\
             impossible_travel(from=GB,30min):+20"
        );
        // Japan 9 h later: a different country but outside the 2 h travel window, 06:30 local.
        let mut t = tx(1, NOON_UTC + 3 * 3600 + 1800 + 6 * 3600, 1000); // 21:30 UTC = 06:30 JST
        t.country = Country(*b"JP");
        let a = s.assess(&t);
        assert_eq!(a.points(Rule::ImpossibleTravel), 0);
        assert_eq!(a.points(Rule::NightTime), 0);
        let mut t = tx(3, NOON_UTC + 15 * 3600, 1000); // 03:00 UTC next day = 12:00 JST
        t.country = Country(*b"GB");
        let a = s.assess(&t);
        assert_eq!(a.points(Rule::NightTime), 10);
        assert_eq!(a.reasons(), "night_time(hour=03):+10");
    }

    #[test]
    fn out_of_order_timestamps_do_not_panic_or_count() {
        let mut s = Scorer::new();
        for i in 0..6 {
            s.assess(&tx(1, NOON_UTC + 10_000 - i * 100, 1000));
        }
        // Earlier timestamps than remembered ones are not "within the last hour" of them.
        let a = s.assess(&tx(1, NOON_UTC, 1000));
        assert_eq!(a.points(Rule::Velocity), 0);
        assert_eq!(a.points(Rule::ImpossibleTravel), 0);
    }
}
