//! Deterministic synthetic dataset: ordinary card spending plus injected fraud patterns.
//!
//! Integer arithmetic only (no `exp`/`ln`, whose last bits differ between C libraries), so the
//! same `(n, seed)` gives the same file on every platform.

use crate::model::{COUNTRY_UTC_OFFSETS, Country, Transaction};
use crate::score::mcc_risk;

/// 2026-01-01 00:00:00 UTC.
pub const START: i64 = 1_767_225_600;
/// The dataset spans this many days.
pub const DAYS: i64 = 30;

/// PCG-XSH-RR 32-bit output, 64-bit state (O'Neill 2014).
#[derive(Debug, Clone)]
pub struct Pcg32 {
    state: u64,
    inc: u64,
}

impl Pcg32 {
    const MUL: u64 = 6_364_136_223_846_793_005;

    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Pcg32 {
            state: 0,
            inc: (stream << 1) | 1,
        };
        rng.next_u32();
        rng.state = rng.state.wrapping_add(seed);
        rng.next_u32();
        rng
    }

    pub fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.state = old.wrapping_mul(Self::MUL).wrapping_add(self.inc);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        let rot = (old >> 59) as u32;
        xorshifted.rotate_right(rot)
    }

    /// Uniform in `0..n` (0 when `n == 0`), by multiply-shift (bias below 2^-32 * n).
    pub fn below(&mut self, n: u64) -> u64 {
        let n32 = n.min(u64::from(u32::MAX));
        (u64::from(self.next_u32()) * n32) >> 32
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// Picks an index by integer weights (0 if all weights are 0).
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut r = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }
}

/// Home-country weights of cards (and of merchants).
const COUNTRY_WEIGHTS: &[(&[u8; 2], u64)] = &[
    (b"US", 30),
    (b"GB", 12),
    (b"DE", 10),
    (b"FR", 9),
    (b"ES", 5),
    (b"IT", 5),
    (b"NL", 4),
    (b"CA", 4),
    (b"BR", 4),
    (b"MX", 3),
    (b"IN", 4),
    (b"JP", 4),
    (b"AU", 3),
    (b"SG", 2),
    (b"IE", 1),
    (b"ZA", 1),
    (b"NG", 1),
    (b"RU", 1),
    (b"CN", 2),
];

/// Merchant category codes with weights: groceries, restaurants, fuel, … and a few risky ones.
const MCC_WEIGHTS: &[(u16, u64)] = &[
    (5411, 30), // grocery
    (5812, 20), // restaurants
    (5814, 12), // fast food
    (5541, 10), // fuel
    (5311, 6),  // department stores
    (5691, 6),  // clothing
    (4111, 5),  // transit
    (5912, 5),  // pharmacy
    (4121, 4),  // taxis / rideshare
    (7011, 3),  // hotels
    (4511, 2),  // airlines
    (5732, 3),  // electronics
    (5944, 1),  // jewellery
    (6011, 2),  // ATM
    (5967, 1),  // direct marketing
    (7995, 1),  // gambling
    (4829, 1),  // money transfer
    (6051, 1),  // quasi-cash / crypto
];

struct Card {
    id: u64,
    home: usize,
    /// Typical amount, cents.
    typical: u64,
}

struct Merchant {
    id: u64,
    mcc: u16,
}

const FALLBACK_MERCHANT: Merchant = Merchant { id: 1, mcc: 5411 };

struct World {
    cards: Vec<Card>,
    merchants: Vec<Merchant>,
    /// Merchant indices per country index.
    by_country: Vec<Vec<usize>>,
    /// Risky merchant indices (mcc_risk > 0) per country index.
    risky_by_country: Vec<Vec<usize>>,
}

fn country(i: usize) -> Country {
    Country(COUNTRY_WEIGHTS.get(i).map_or(*b"US", |(c, _)| **c))
}

fn offset(i: usize) -> i64 {
    let c = country(i);
    COUNTRY_UTC_OFFSETS
        .iter()
        .find(|(k, _)| **k == c.0)
        .map_or(0, |&(_, o)| o)
}

impl World {
    fn new(rng: &mut Pcg32, n: u64) -> World {
        let country_w: Vec<u64> = COUNTRY_WEIGHTS.iter().map(|(_, w)| *w).collect();
        let mcc_w: Vec<u64> = MCC_WEIGHTS.iter().map(|(_, w)| *w).collect();
        let n_cards = (n / 25).max(10);
        let n_merchants = (n / 100).clamp(4 * COUNTRY_WEIGHTS.len() as u64, 20_000);
        let cards = (0..n_cards)
            .map(|i| {
                // Skewed typical spend, 5.00 .. ~300.00: the product of two uniforms.
                let a = rng.range(10, 100);
                let b = rng.range(50, 300);
                Card {
                    id: 100_000 + i,
                    home: rng.weighted(&country_w),
                    typical: a * b,
                }
            })
            .collect();
        let mut merchants = Vec::new();
        let mut by_country = vec![Vec::new(); COUNTRY_WEIGHTS.len()];
        let mut risky_by_country = vec![Vec::new(); COUNTRY_WEIGHTS.len()];
        for i in 0..n_merchants {
            // The first few merchants cover every country, the rest follow the weights.
            let c = if (i as usize) < 2 * COUNTRY_WEIGHTS.len() {
                i as usize % COUNTRY_WEIGHTS.len()
            } else {
                rng.weighted(&country_w)
            };
            let mcc = MCC_WEIGHTS
                .get(rng.weighted(&mcc_w))
                .map_or(5411, |(m, _)| *m);
            let idx = merchants.len();
            merchants.push(Merchant { id: 1 + i, mcc });
            if let Some(v) = by_country.get_mut(c) {
                v.push(idx);
            }
            if mcc_risk(mcc) > 0
                && let Some(v) = risky_by_country.get_mut(c)
            {
                v.push(idx);
            }
        }
        World {
            cards,
            merchants,
            by_country,
            risky_by_country,
        }
    }

    fn merchant_in(&self, rng: &mut Pcg32, c: usize, risky: bool) -> &Merchant {
        let risky_list = self
            .risky_by_country
            .get(c)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let list = if risky && !risky_list.is_empty() {
            risky_list
        } else {
            self.by_country.get(c).map(Vec::as_slice).unwrap_or(&[])
        };
        let idx = rng.pick(list).copied().unwrap_or(0);
        // `merchants` is never empty (at least 4 per country); the fallback is for the type system.
        self.merchants.get(idx).unwrap_or(&FALLBACK_MERCHANT)
    }

    fn foreign(&self, rng: &mut Pcg32, home: usize) -> usize {
        let k = COUNTRY_WEIGHTS.len();
        (home + 1 + rng.below(k as u64 - 1) as usize) % k
    }
}

/// A local time of day (seconds) that is mostly daytime.
fn day_time(rng: &mut Pcg32) -> i64 {
    let hour = if rng.chance(920) {
        rng.range(7, 23)
    } else {
        rng.range(0, 6)
    };
    hour as i64 * 3600 + rng.below(3600) as i64
}

fn tx_at(card: &Card, m: &Merchant, c: usize, utc: i64, amount: u64) -> Transaction {
    Transaction {
        tx_id: 0,
        card_id: card.id,
        timestamp: utc,
        amount_cents: amount.max(1),
        merchant_id: m.id,
        mcc: m.mcc,
        country: country(c),
        home_country: country(card.home),
    }
}

/// Generates exactly `n` transactions, sorted by time, with `tx_id` 1..=n in that order.
///
/// About 2.5% of rows come from injected fraud patterns: card-testing bursts (many small
/// transactions abroad within minutes at risky merchants), account takeover (one very large
/// purchase abroad at night at an electronics or jewellery merchant) and impossible travel (two
/// countries within an hour).
pub fn generate(n: u64, seed: u64) -> Vec<Transaction> {
    let mut rng = Pcg32::new(seed, 0x00e1_c1a7a);
    let world = World::new(&mut rng, n);
    let mut out: Vec<Transaction> = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let Some(first_card) = world.cards.first() else {
        return out;
    };
    while (out.len() as u64) < n {
        let remaining = n - out.len() as u64;
        let card = rng.pick(&world.cards).unwrap_or(first_card);
        let day = rng.below(DAYS as u64) as i64;
        let pattern = rng.below(1000);
        if pattern < 2 && remaining >= 6 {
            // Card testing: 6..12 small charges abroad, 30 s .. 5 min apart.
            let c = world.foreign(&mut rng, card.home);
            let k = rng.range(6, 12).min(remaining);
            let mut t = START + day * 86_400 + day_time(&mut rng) - offset(c);
            for _ in 0..k {
                let m = world.merchant_in(&mut rng, c, true);
                out.push(tx_at(card, m, c, t, rng.range(100, 2_000)));
                t += rng.range(30, 300) as i64;
            }
        } else if pattern < 5 {
            // Account takeover: one purchase of 8..20x the usual amount, abroad, at night.
            let c = world.foreign(&mut rng, card.home);
            let mut m = world.merchant_in(&mut rng, c, true);
            for _ in 0..8 {
                if matches!(m.mcc, 5732 | 5944) {
                    break;
                }
                m = world.merchant_in(&mut rng, c, true);
            }
            let local = rng.range(0, 4) as i64 * 3600 + rng.below(3600) as i64;
            let t = START + day * 86_400 + local - offset(c);
            out.push(tx_at(card, m, c, t, card.typical * rng.range(8, 20)));
        } else if pattern < 8 && remaining >= 2 {
            // Impossible travel: at home, then abroad 20..90 minutes later.
            let t = START + day * 86_400 + day_time(&mut rng) - offset(card.home);
            let m = world.merchant_in(&mut rng, card.home, false);
            out.push(tx_at(
                card,
                m,
                card.home,
                t,
                card.typical * rng.range(50, 150) / 100,
            ));
            let c = world.foreign(&mut rng, card.home);
            let m = world.merchant_in(&mut rng, c, false);
            let t2 = t + rng.range(20, 90) as i64 * 60;
            out.push(tx_at(
                card,
                m,
                c,
                t2,
                card.typical * rng.range(50, 300) / 100,
            ));
        } else {
            // Ordinary purchase, at home 97% of the time; occasionally a big legitimate one.
            let c = if rng.chance(970) {
                card.home
            } else {
                world.foreign(&mut rng, card.home)
            };
            let m = world.merchant_in(&mut rng, c, false);
            let t = START + day * 86_400 + day_time(&mut rng) - offset(c);
            let mut amount = card.typical * rng.range(50, 150) / 100;
            if rng.chance(5) {
                amount *= 3;
            }
            out.push(tx_at(card, m, c, t, amount));
        }
    }
    out.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    out.sort_by_key(|t| (t.timestamp, t.card_id, t.merchant_id, t.amount_cents));
    for (i, t) in out.iter_mut().enumerate() {
        t.tx_id = i as u64 + 1;
    }
    out
}

/// The dataset as CSV text (header included).
pub fn to_csv(txs: &[Transaction]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + txs.len() * 56);
    out.extend_from_slice(crate::csv::HEADER.as_bytes());
    out.push(b'\n');
    for t in txs {
        crate::csv::write_row(&mut out, t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcg32_matches_reference_vector() {
        // Reference output of pcg32_srandom(42, 54) from the PCG reference implementation.
        let mut rng = Pcg32::new(42, 54);
        let got: Vec<u32> = (0..6).map(|_| rng.next_u32()).collect();
        assert_eq!(
            got,
            [
                0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e
            ]
        );
    }

    #[test]
    fn helpers_stay_in_range() {
        let mut rng = Pcg32::new(1, 2);
        for _ in 0..10_000 {
            assert!(rng.below(7) < 7);
            let r = rng.range(3, 5);
            assert!((3..=5).contains(&r));
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.weighted(&[0, 0, 5]), 2);
        assert_eq!(rng.weighted(&[]), 0);
    }

    #[test]
    fn generation_is_deterministic_and_exact() {
        let a = generate(5_000, 7);
        let b = generate(5_000, 7);
        let c = generate(5_000, 8);
        assert_eq!(a.len(), 5_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        assert!(a.iter().enumerate().all(|(i, t)| t.tx_id == i as u64 + 1));
        assert!(generate(0, 1).is_empty());
        assert_eq!(generate(1, 1).len(), 1);
    }

    #[test]
    fn generated_csv_parses_back() {
        let txs = generate(2_000, 3);
        let csv = to_csv(&txs);
        let mut lines = csv.split(|&b| b == b'\n');
        crate::csv::check_header(lines.next().unwrap()).unwrap();
        let parsed: Vec<Transaction> = lines
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, l)| crate::csv::parse_row(i as u64 + 2, l).unwrap())
            .collect();
        assert_eq!(parsed, txs);
    }

    #[test]
    fn injected_fraud_is_mostly_flagged_and_ordinary_mostly_not() {
        let txs = generate(50_000, 11);
        let mut s = crate::score::Scorer::new();
        let flagged = txs.iter().filter(|t| s.assess(t).flagged()).count();
        // ~2.5% of rows are injected; the rules should flag a comparable share, not everything.
        assert!(flagged > 200, "flagged {flagged}");
        assert!(flagged < 2_500, "flagged {flagged}");
    }
}
