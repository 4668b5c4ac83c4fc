//! Init-data (CoCo's initdata specification): a TOML document
//! `version = "0.1.0"`, `algorithm = "sha256" | "sha384" | "sha512"`, `[data]` (policy files,
//! agent configuration, ...). Its digest is the named hash of the document's bytes exactly as
//! sent, and the host puts it into the TEE's launch-time field: SNP HOSTDATA (32 bytes), TDX
//! MRCONFIGID (48 bytes), for Azure vTPM guests PCR 8 — zero-padded, or truncated, to the field.

use crate::binding::{HashAlg, fit};
use crate::error::{ErrorKind, KbsError};

/// The digest of an init-data document and the algorithm it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitDataDigest {
    pub algorithm: HashAlg,
    pub digest: Vec<u8>,
}

/// Parse the TOML enough to read `algorithm` and `version`, and hash the bytes.
pub fn digest(body: &str) -> Result<InitDataDigest, KbsError> {
    let doc: toml::Table = body.parse().map_err(|e: toml::de::Error| {
        KbsError::invalid(format!(
            "init-data.body: expected a TOML document, found invalid TOML ({})",
            e.message()
        ))
    })?;
    let alg = match doc.get("algorithm") {
        Some(toml::Value::String(s)) => HashAlg::parse(s).ok_or_else(|| {
            KbsError::invalid(format!(
                "init-data algorithm: expected sha256, sha384 or sha512, found {:?}",
                s.chars().take(16).collect::<String>()
            ))
        })?,
        _ => {
            return Err(KbsError::invalid(
                "init-data algorithm: expected a string member, found none",
            ));
        }
    };
    match doc.get("version") {
        Some(toml::Value::String(_)) => {}
        _ => {
            return Err(KbsError::invalid(
                "init-data version: expected a string member, found none",
            ));
        }
    }
    Ok(InitDataDigest {
        algorithm: alg,
        digest: alg.digest(body.as_bytes()),
    })
}

/// Check `field` (the TEE's HOSTDATA / MRCONFIGID / PCR) against the digest, fitted to it.
pub fn check(d: &InitDataDigest, field: &[u8], field_name: &str) -> Result<(), KbsError> {
    let expected = fit(&d.digest, field.len());
    if field.is_empty()
        || aws_lc_rs::constant_time::verify_slices_are_equal(&expected, field).is_err()
    {
        return Err(KbsError::new(
            ErrorKind::InitDataMismatch,
            format!(
                "init-data: expected {field_name} = {} ({} of the init-data, fitted to {} bytes), found {}",
                hex::encode(&expected),
                d.algorithm.as_str(),
                field.len(),
                hex::encode(field)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_and_check() {
        let body = "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n\"a.toml\" = \"x\"\n";
        let d = digest(body).unwrap();
        assert_eq!(d.algorithm, HashAlg::Sha256);
        assert_eq!(d.digest, HashAlg::Sha256.digest(body.as_bytes()));
        let mut mrconfigid = d.digest.clone();
        mrconfigid.resize(48, 0);
        assert!(check(&d, &mrconfigid, "MRCONFIGID").is_ok());
        assert!(check(&d, &d.digest, "HOSTDATA").is_ok());
        let e = check(&d, &[0u8; 32], "HOSTDATA").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InitDataMismatch);
        assert!(digest("algorithm = \"md5\"\nversion=\"0.1.0\"").is_err());
        assert!(digest("not toml [").is_err());
    }
}
