//! Shamir secret sharing over GF(2^8) (the AES field, polynomial x^8 + x^4 + x^3 + x + 1), and
//! the printable share encoding.
//!
//! Each byte of the secret is the constant term of its own random polynomial of degree `t - 1`;
//! share `i` (1..=n) holds the polynomials evaluated at `x = i`. Any `t` shares recover the
//! secret by Lagrange interpolation at 0; fewer give a value independent of the secret.
//!
//! Field arithmetic is branch-free on secret data (no lookup tables).
//!
//! Encoding: `ensh1-III-TTT-<hex data>-<checksum>` where `ensh1` names the format version, `III`
//! the share index and `TTT` the threshold (decimal), and the checksum is the first 4 bytes
//! (8 hex) of SHA-256 over the format tag, index, threshold and data: a mistyped share is
//! rejected before it is used. The checksum is unkeyed, so it only catches typos: anyone can
//! compute it for a forged share. Authenticity comes from the per-share [`commitment`] that
//! the vault stores at init (see the parent module) and checks before a share is used.

use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

/// The format tag of encoded shares.
pub const SHARE_PREFIX: &str = "ensh1";

/// One share: x-coordinate (1..=255), the threshold it was issued with, and the y bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    pub index: u8,
    pub threshold: u8,
    pub data: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Share {{ index: {}, threshold: {}, data: <redacted> }}",
            self.index, self.threshold
        )
    }
}

/// Errors from splitting, combining and parsing shares. Never contain share data.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ShamirError {
    #[error(
        "invalid sharing parameters: expected 1 <= threshold <= shares <= 255, found threshold {threshold} and shares {shares}"
    )]
    Parameters { shares: u8, threshold: u8 },
    #[error("cannot split an empty secret")]
    EmptySecret,
    #[error("no shares given")]
    NoShares,
    #[error("not enough shares: need {threshold}, have {found}")]
    NotEnough { threshold: u8, found: usize },
    #[error("share {index} appears twice")]
    DuplicateIndex { index: u8 },
    #[error(
        "shares do not belong together: expected {expected} data bytes and threshold {threshold}, share {index} differs"
    )]
    Mismatch {
        expected: usize,
        threshold: u8,
        index: u8,
    },
    #[error("malformed share: {0}")]
    Malformed(String),
    #[error("share checksum mismatch: the share was mistyped or altered")]
    Checksum,
}

// --- GF(2^8) --------------------------------------------------------------------------------

/// Multiply in GF(2^8) without secret-dependent branches.
fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    for _ in 0..8 {
        // mask = 0xff when the low bit of b is set
        let mask = 0u8.wrapping_sub(b & 1);
        p ^= a & mask;
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    p
}

/// Multiplicative inverse (a^254); inverse of 0 is 0.
fn gf_inv(a: u8) -> u8 {
    // a^254 = a^(2+4+8+16+32+64+128)
    let mut result = 1u8;
    let mut sq = a;
    for _ in 0..7 {
        sq = gf_mul(sq, sq);
        result = gf_mul(result, sq);
    }
    result
}

// --- split / combine ------------------------------------------------------------------------

/// Split `secret` into `n` shares, any `t` of which recover it.
pub fn split<R: RngCore + CryptoRng>(
    secret: &[u8],
    n: u8,
    t: u8,
    rng: &mut R,
) -> Result<Vec<Share>, ShamirError> {
    if t == 0 || n == 0 || t > n {
        return Err(ShamirError::Parameters {
            shares: n,
            threshold: t,
        });
    }
    if secret.is_empty() {
        return Err(ShamirError::EmptySecret);
    }
    let mut shares: Vec<Share> = (1..=n)
        .map(|i| Share {
            index: i,
            threshold: t,
            data: Zeroizing::new(vec![0u8; secret.len()]),
        })
        .collect();
    // coefficients[0] = secret byte, the rest random.
    let mut coeffs = Zeroizing::new(vec![0u8; t as usize]);
    for (pos, &s) in secret.iter().enumerate() {
        if let Some(c0) = coeffs.first_mut() {
            *c0 = s;
        }
        if let Some(rest) = coeffs.get_mut(1..) {
            rng.fill_bytes(rest);
        }
        for share in shares.iter_mut() {
            // Horner evaluation at x = index.
            let x = share.index;
            let mut y = 0u8;
            for &c in coeffs.iter().rev() {
                y = gf_mul(y, x) ^ c;
            }
            if let Some(slot) = share.data.get_mut(pos) {
                *slot = y;
            }
        }
    }
    coeffs.zeroize();
    Ok(shares)
}

/// Lagrange interpolation at 0 of the given shares, without checking the threshold. With fewer
/// shares than the threshold the result is unrelated to the secret.
pub fn interpolate(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    interpolate_at(shares, 0)
}

/// Lagrange interpolation of the given shares at `x`: the y bytes the share with index `x` of
/// the same sharing holds (`x = 0` is the secret). Used to recompute every share of a sharing
/// from `threshold` good ones (to commit to all of them). Same checks as [`interpolate`].
pub fn interpolate_at(shares: &[Share], x: u8) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    let first = shares.first().ok_or(ShamirError::NoShares)?;
    let len = first.data.len();
    for (i, s) in shares.iter().enumerate() {
        if s.data.len() != len || s.threshold != first.threshold {
            return Err(ShamirError::Mismatch {
                expected: len,
                threshold: first.threshold,
                index: s.index,
            });
        }
        if s.index == 0 {
            return Err(ShamirError::Malformed("share index 0 is not valid".into()));
        }
        if shares.iter().take(i).any(|o| o.index == s.index) {
            return Err(ShamirError::DuplicateIndex { index: s.index });
        }
    }
    // Lagrange basis at x: l_i = prod_{j != i} (x - x_j) / (x_i - x_j); subtraction is XOR.
    let mut basis = Vec::with_capacity(shares.len());
    for (i, si) in shares.iter().enumerate() {
        let mut num = 1u8;
        let mut den = 1u8;
        for (j, sj) in shares.iter().enumerate() {
            if i != j {
                num = gf_mul(num, sj.index ^ x);
                den = gf_mul(den, sj.index ^ si.index);
            }
        }
        basis.push(gf_mul(num, gf_inv(den)));
    }
    let mut out = Zeroizing::new(vec![0u8; len]);
    for (share, &l) in shares.iter().zip(basis.iter()) {
        for (o, &y) in out.iter_mut().zip(share.data.iter()) {
            *o ^= gf_mul(y, l);
        }
    }
    Ok(out)
}

/// Recover the secret from at least `threshold` distinct shares.
pub fn combine(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    let first = shares.first().ok_or(ShamirError::NoShares)?;
    if shares.len() < first.threshold as usize {
        return Err(ShamirError::NotEnough {
            threshold: first.threshold,
            found: shares.len(),
        });
    }
    interpolate(shares)
}

// --- commitments ----------------------------------------------------------------------------

/// Domain separation of share commitments (format version 1 of the commitment).
const COMMITMENT_DOMAIN: &[u8] = b"enclava/v1/unseal-share-commitment";

/// A binding commitment to one share: SHA-256 over a domain tag, a per-vault random `salt`, the
/// index, the threshold, the data length and the data. Stored at init, it lets the vault check a
/// submitted share while sealed (no key is needed) before the share joins the pending set. It
/// reveals nothing usable about the share: the data is 32 uniformly random bytes (preimage
/// resistance), and the salt keeps commitments of different vaults unlinkable.
pub fn commitment(salt: &[u8], share: &Share) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(COMMITMENT_DOMAIN);
    h.update((salt.len() as u64).to_be_bytes());
    h.update(salt);
    h.update([share.index, share.threshold]);
    h.update((share.data.len() as u64).to_be_bytes());
    h.update(&*share.data);
    h.finalize().into()
}

/// Constant-time check of `share` against a stored [`commitment`].
pub fn matches_commitment(salt: &[u8], share: &Share, expected: &[u8]) -> bool {
    bool::from(commitment(salt, share).as_slice().ct_eq(expected))
}

// --- encoding -------------------------------------------------------------------------------

fn checksum(index: u8, threshold: u8, data: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(SHARE_PREFIX.as_bytes());
    h.update([index, threshold]);
    h.update(data);
    let d = h.finalize();
    let mut out = [0u8; 4];
    for (o, b) in out.iter_mut().zip(d.iter()) {
        *o = *b;
    }
    out
}

impl Share {
    /// The printable form `ensh1-III-TTT-<hex>-<checksum>`.
    pub fn encode(&self) -> Zeroizing<String> {
        let data_hex = Zeroizing::new(hex::encode(&*self.data));
        Zeroizing::new(format!(
            "{SHARE_PREFIX}-{:03}-{:03}-{}-{}",
            self.index,
            self.threshold,
            data_hex.as_str(),
            hex::encode(checksum(self.index, self.threshold, &self.data))
        ))
    }

    /// Parse a printable share (surrounding whitespace and letter case are ignored).
    pub fn decode(text: &str) -> Result<Share, ShamirError> {
        let text = Zeroizing::new(text.trim().to_ascii_lowercase());
        let parts: Vec<&str> = text.split('-').collect();
        let [prefix, idx, thr, data_hex, sum] = parts.as_slice() else {
            return Err(ShamirError::Malformed(format!(
                "expected 5 dash-separated fields ({SHARE_PREFIX}-index-threshold-data-checksum), found {}",
                parts.len()
            )));
        };
        if *prefix != SHARE_PREFIX {
            return Err(ShamirError::Malformed(format!(
                "expected a share starting with '{SHARE_PREFIX}-' (format version 1), found a different prefix"
            )));
        }
        let index: u8 = idx
            .parse()
            .map_err(|_| ShamirError::Malformed("share index is not a number 1-255".into()))?;
        let threshold: u8 = thr
            .parse()
            .map_err(|_| ShamirError::Malformed("share threshold is not a number 1-255".into()))?;
        if index == 0 || threshold == 0 {
            return Err(ShamirError::Malformed(
                "share index and threshold must be 1-255".into(),
            ));
        }
        let data = Zeroizing::new(
            hex::decode(data_hex)
                .map_err(|_| ShamirError::Malformed("share data is not hexadecimal".into()))?,
        );
        if data.is_empty() {
            return Err(ShamirError::Malformed("share data is empty".into()));
        }
        let sum = hex::decode(sum)
            .map_err(|_| ShamirError::Malformed("share checksum is not hexadecimal".into()))?;
        if !bool::from(sum.as_slice().ct_eq(&checksum(index, threshold, &data))) {
            return Err(ShamirError::Checksum);
        }
        Ok(Share {
            index,
            threshold,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn field_inverse() {
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1, "a = {a}");
        }
        assert_eq!(gf_mul(0x57, 0x83), 0xc1); // FIPS-197 example
    }

    #[test]
    fn encode_decode_and_typo_detection() {
        let mut rng = StdRng::seed_from_u64(7);
        let shares = split(b"0123456789abcdef0123456789abcdef", 5, 3, &mut rng).unwrap();
        for s in &shares {
            let text = s.encode();
            assert!(text.starts_with("ensh1-"));
            let back = Share::decode(&text).unwrap();
            assert_eq!(&back, s);
            // Flip one hex digit of the data part.
            let mut chars: Vec<char> = text.chars().collect();
            let pos = 20;
            chars[pos] = if chars[pos] == '0' { '1' } else { '0' };
            let typo: String = chars.into_iter().collect();
            assert_eq!(Share::decode(&typo), Err(ShamirError::Checksum));
        }
        assert!(matches!(
            Share::decode("ensh2-001-003-aa-00000000"),
            Err(ShamirError::Malformed(_))
        ));
        assert!(matches!(
            Share::decode("garbage"),
            Err(ShamirError::Malformed(_))
        ));
        assert!(matches!(Share::decode(""), Err(ShamirError::Malformed(_))));
    }

    #[test]
    fn interpolation_recomputes_every_share_and_commitments_bind() {
        let mut rng = StdRng::seed_from_u64(9);
        let shares = split(&[7u8; 32], 5, 3, &mut rng).unwrap();
        let chosen = vec![shares[4].clone(), shares[0].clone(), shares[2].clone()];
        for s in &shares {
            let y = interpolate_at(&chosen, s.index).unwrap();
            assert_eq!(y.as_slice(), s.data.as_slice(), "share {}", s.index);
        }
        assert_eq!(interpolate_at(&chosen, 0).unwrap().as_slice(), &[7u8; 32]);

        let salt = [1u8; 32];
        let c = commitment(&salt, &shares[1]);
        assert!(matches_commitment(&salt, &shares[1], &c));
        // Another share, another salt, a changed byte, a changed index: no match.
        assert!(!matches_commitment(&salt, &shares[2], &c));
        assert!(!matches_commitment(&[2u8; 32], &shares[1], &c));
        let mut altered = shares[1].clone();
        altered.data[0] ^= 1;
        assert!(!matches_commitment(&salt, &altered, &c));
        let mut moved = shares[1].clone();
        moved.index = 3;
        assert!(!matches_commitment(&salt, &moved, &c));
        assert!(!matches_commitment(&salt, &shares[1], &c[..31]));
    }

    #[test]
    fn parameter_errors() {
        let mut rng = StdRng::seed_from_u64(1);
        assert!(split(b"x", 3, 4, &mut rng).is_err());
        assert!(split(b"x", 3, 0, &mut rng).is_err());
        assert!(split(b"", 3, 2, &mut rng).is_err());
        let shares = split(b"abc", 3, 2, &mut rng).unwrap();
        assert_eq!(
            combine(&shares[..1]),
            Err(ShamirError::NotEnough {
                threshold: 2,
                found: 1
            })
        );
        let dup = vec![shares[0].clone(), shares[0].clone()];
        assert_eq!(combine(&dup), Err(ShamirError::DuplicateIndex { index: 1 }));
    }

    fn subset(shares: &[Share], picks: &[usize], k: usize) -> Vec<Share> {
        // Choose k distinct shares using the pick sequence.
        let mut pool: Vec<Share> = shares.to_vec();
        let mut out = Vec::new();
        for p in picks.iter().take(k) {
            let i = p % pool.len();
            out.push(pool.remove(i));
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_t_of_n_recover(secret in proptest::collection::vec(any::<u8>(), 1..48),
                              n in 1u8..12, t_frac in 0u8..=255, seed in any::<u64>(),
                              picks in proptest::collection::vec(any::<usize>(), 12)) {
            let t = 1 + (t_frac % n);
            let mut rng = StdRng::seed_from_u64(seed);
            let shares = split(&secret, n, t, &mut rng).unwrap();
            prop_assert_eq!(shares.len(), n as usize);
            for k in t..=n {
                let chosen = subset(&shares, &picks, k as usize);
                let rec = combine(&chosen).unwrap();
                prop_assert_eq!(rec.as_slice(), secret.as_slice());
            }
        }

        #[test]
        fn fewer_than_t_do_not_recover(secret in proptest::collection::vec(any::<u8>(), 16..33),
                                       n in 2u8..10, t_frac in 0u8..=255, seed in any::<u64>(),
                                       picks in proptest::collection::vec(any::<usize>(), 10)) {
            let t = 2 + (t_frac % (n - 1));
            let mut rng = StdRng::seed_from_u64(seed);
            let shares = split(&secret, n, t, &mut rng).unwrap();
            let chosen = subset(&shares, &picks, (t - 1) as usize);
            prop_assert!(combine(&chosen).is_err());
            let guess = interpolate(&chosen).unwrap();
            // With >= 16 random bytes the chance of an accidental match is 2^-128.
            prop_assert_ne!(guess.as_slice(), secret.as_slice());
        }

        #[test]
        fn decode_never_panics(s in ".{0,200}") {
            let _ = Share::decode(&s);
        }
    }
}
