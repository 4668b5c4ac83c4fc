//! JWK integers (RFC 7518 section 6): big-endian octet strings that *should* be minimal. Azure
//! accepts non-minimal ones and Microsoft's SDK tests send them (an RSA `n` with a leading zero
//! byte, as DER would encode it), and minimal EC coordinates can arrive shorter than the curve
//! size. Every JWK integer in the project (vault key import, release wrapping keys, trusted
//! attestation issuers' keys) goes through these two functions, so size checks and the crypto
//! library always see the same normalised value.

/// Why a JWK integer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwkIntError {
    /// The value is zero (empty, or only zero bytes): no RSA component can be zero.
    Zero { bytes: usize },
    /// The value needs more bytes than the field has.
    TooLong { max: usize, found: usize },
}

impl std::fmt::Display for JwkIntError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwkIntError::Zero { bytes } => write!(
                f,
                "expected a non-zero big-endian integer, found {bytes} zero byte(s)"
            ),
            JwkIntError::TooLong { max, found } => {
                write!(f, "expected at most {max} significant bytes, found {found}")
            }
        }
    }
}

impl std::error::Error for JwkIntError {}

/// A variable-length integer (RSA `n`, `e`, `d`, `p`, `q`, `dp`, `dq`, `qi`) in its minimal form:
/// leading zero bytes removed. Zero is refused.
pub fn jwk_uint(bytes: &[u8]) -> Result<&[u8], JwkIntError> {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    match bytes.get(first..) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(JwkIntError::Zero { bytes: bytes.len() }),
    }
}

/// A fixed-length integer (EC `x`, `y`, `d`) written into `out` (exactly the field size):
/// left-padded with zeros when the value arrives shorter, surplus leading zeros dropped; refused
/// when the value does not fit. The caller owns `out`, so a secret (`d`) lands only in a buffer
/// the caller zeroizes.
pub fn jwk_fixed_into(bytes: &[u8], out: &mut [u8]) -> Result<(), JwkIntError> {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let value = bytes.get(first..).unwrap_or(&[]);
    let pad = out
        .len()
        .checked_sub(value.len())
        .ok_or(JwkIntError::TooLong {
            max: out.len(),
            found: value.len(),
        })?;
    let (zeros, rest) = out.split_at_mut(pad);
    zeros.fill(0);
    rest.copy_from_slice(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_strips_leading_zeros_and_refuses_zero() {
        assert_eq!(jwk_uint(&[0, 0, 1, 0]), Ok(&[1u8, 0][..]));
        assert_eq!(jwk_uint(&[7]), Ok(&[7u8][..]));
        assert_eq!(jwk_uint(&[0, 0]), Err(JwkIntError::Zero { bytes: 2 }));
        assert_eq!(jwk_uint(&[]), Err(JwkIntError::Zero { bytes: 0 }));
    }

    #[test]
    fn fixed_pads_strips_and_refuses_what_does_not_fit() {
        let mut out = [0xffu8; 4];
        jwk_fixed_into(&[1, 2], &mut out).unwrap();
        assert_eq!(out, [0, 0, 1, 2]);
        jwk_fixed_into(&[0, 0, 9, 8, 7, 6], &mut out).unwrap();
        assert_eq!(out, [9, 8, 7, 6]);
        jwk_fixed_into(&[], &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 0]);
        assert_eq!(
            jwk_fixed_into(&[1, 2, 3, 4, 5], &mut out),
            Err(JwkIntError::TooLong { max: 4, found: 5 })
        );
    }
}
