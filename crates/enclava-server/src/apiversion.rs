//! The `api-version` query parameter: required on data routes; known versions served as they
//! are; unknown but well-formed versions from 7.0 on accepted (newer SDKs must keep working) with
//! a note in the `x-enclava-api-version-note` response header.

/// Versions this server implements, oldest first.
pub const KNOWN: &[&str] = &[
    "2016-10-01",
    "7.0",
    "7.1",
    "7.2",
    "7.3",
    "7.4",
    "7.5",
    "7.6",
    "2025-07-01",
    "2026-04-01",
];

/// Response header carrying the note for unknown versions.
pub const NOTE_HEADER: &str = "x-enclava-api-version-note";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiVersion {
    Known(String),
    /// Well-formed, not in [`KNOWN`]; served with the newest behaviour; the note explains.
    Unknown {
        version: String,
        note: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiVersionError {
    Missing,
    Invalid(String),
}

impl ApiVersionError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiVersionError::Missing => "MissingApiVersionParameter",
            ApiVersionError::Invalid(_) => "InvalidApiVersionParameter",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiVersionError::Missing => {
                "The api-version query parameter (?api-version=) is required for all requests."
                    .to_string()
            }
            ApiVersionError::Invalid(v) => {
                let shown: String = v.chars().take(64).collect();
                format!(
                    "The api-version '{shown}' is invalid: expected a version such as 7.6 or 2025-07-01 (supported: {})",
                    KNOWN.join(", ")
                )
            }
        }
    }
}

/// Order key: 7.x versions sort before date versions.
fn rank(v: &str) -> Option<(u32, u32, u32, u32)> {
    let base = v.split_once("-preview").map(|(b, _)| b).unwrap_or(v);
    if let Some((maj, min)) = base.split_once('.') {
        let maj: u32 = maj.parse().ok()?;
        let min: u32 = min.parse().ok()?;
        return Some((0, maj, min, 0));
    }
    let parts: Vec<&str> = base.split('-').collect();
    if let [y, m, d] = parts.as_slice()
        && y.len() == 4
        && m.len() == 2
        && d.len() == 2
    {
        let (y, m, d): (u32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        if (1..=12).contains(&m) && (1..=31).contains(&d) {
            return Some((1, y, m, d));
        }
    }
    None
}

/// Whether the (already checked) api-version `v` is `min` or newer. Date versions from 2025 on are
/// newer than every 7.x version; 2016-10-01 is the legacy pre-7.0 version, older than all of them.
pub fn at_least(v: &str, min: &str) -> bool {
    let r = |s: &str| {
        rank(s).map(|r| {
            if r.0 == 1 && r.1 < 2025 {
                (0, 0, 0, 0)
            } else {
                r
            }
        })
    };
    matches!((r(v), r(min)), (Some(a), Some(b)) if a >= b)
}

/// Check the `api-version` value of a data-plane request.
pub fn check(value: Option<&str>) -> Result<ApiVersion, ApiVersionError> {
    let v = match value {
        None => return Err(ApiVersionError::Missing),
        Some(v) if v.trim().is_empty() => return Err(ApiVersionError::Missing),
        Some(v) => v.trim(),
    };
    let base = v.split_once("-preview").map(|(b, _)| b).unwrap_or(v);
    if KNOWN.contains(&base) {
        return Ok(ApiVersion::Known(v.to_string()));
    }
    let r = rank(v).ok_or_else(|| ApiVersionError::Invalid(v.to_string()))?;
    // Anything older than 7.0 that we do not know is not a Key Vault data-plane version.
    if r < (0, 7, 0, 0) {
        return Err(ApiVersionError::Invalid(v.to_string()));
    }
    let newest = KNOWN.last().copied().unwrap_or("7.6");
    let note = if rank(newest).is_some_and(|n| r > n) {
        format!("api-version {v} is newer than this server knows; served as {newest}")
    } else {
        format!("api-version {v} is not a version this server knows; served as {newest}")
    };
    Ok(ApiVersion::Unknown {
        version: v.to_string(),
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_orders_versions() {
        assert!(at_least("7.6", "7.6"));
        assert!(at_least("7.6-preview.1", "7.6"));
        assert!(at_least("2025-07-01", "7.6"));
        assert!(!at_least("7.5", "7.6"));
        assert!(!at_least("2016-10-01", "7.0"));
        assert!(!at_least("not-a-version", "7.6"));
    }

    #[test]
    fn versions() {
        assert_eq!(check(None), Err(ApiVersionError::Missing));
        assert_eq!(check(Some("")), Err(ApiVersionError::Missing));
        assert_eq!(check(Some("7.5")), Ok(ApiVersion::Known("7.5".into())));
        assert_eq!(
            check(Some("7.6-preview.2")),
            Ok(ApiVersion::Known("7.6-preview.2".into()))
        );
        assert_eq!(
            check(Some("2025-07-01")),
            Ok(ApiVersion::Known("2025-07-01".into()))
        );
        match check(Some("2027-01-01")) {
            Ok(ApiVersion::Unknown { note, .. }) => assert!(note.contains("newer"), "{note}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(check(Some("8.0")), Ok(ApiVersion::Unknown { .. })));
        assert_eq!(
            check(Some("banana")),
            Err(ApiVersionError::Invalid("banana".into()))
        );
        assert_eq!(
            check(Some("6.0")),
            Err(ApiVersionError::Invalid("6.0".into()))
        );
        assert_eq!(
            check(Some("2025-13-01")),
            Err(ApiVersionError::Invalid("2025-13-01".into()))
        );
        assert_eq!(
            ApiVersionError::Missing.code(),
            "MissingApiVersionParameter"
        );
    }
}
