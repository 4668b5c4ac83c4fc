//! The ATTESTATION_REPORT wire format (SEV-SNP Firmware ABI specification, "ATTESTATION_REPORT
//! Structure" table, report versions 2 to 5) and the bit fields inside it.
//!
//! Parsing is purely structural: sizes, the version, the signature algorithm and the fields the
//! specification marks as reserved (must be zero / must be one). Nothing here is trusted until
//! [`super::verify`] has checked the signature.

use serde::{Deserialize, Serialize};

use super::SnpError;

/// Size of an attestation report in bytes.
pub const REPORT_LEN: usize = 0x4A0;
/// The signature covers bytes `0..SIGNED_LEN`.
pub const SIGNED_LEN: usize = 0x2A0;
/// SIGNATURE_ALGO value for ECDSA P-384 with SHA-384 (the only one defined).
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// Size of each of R and S in the AMD signature format (little endian, zero extended).
pub const ECDSA_COMPONENT_LEN: usize = 72;
/// Report versions this parser understands.
pub const SUPPORTED_VERSIONS: [u32; 4] = [2, 3, 4, 5];

/// The AMD EPYC product generations with SEV-SNP that this crate knows the roots of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Product {
    Milan,
    Genoa,
    Turin,
}

impl Product {
    pub const ALL: [Product; 3] = [Product::Milan, Product::Genoa, Product::Turin];

    pub fn as_str(self) -> &'static str {
        match self {
            Product::Milan => "Milan",
            Product::Genoa => "Genoa",
            Product::Turin => "Turin",
        }
    }

    /// The product of a CPU from the combined family and model that reports v3+ carry
    /// (CPUID_FAM_ID / CPUID_MOD_ID). Milan: family 19h models 00h-0Fh; Genoa (and its Bergamo /
    /// Siena siblings, which share the Genoa roots): 19h models 10h-1Fh and A0h-AFh; Turin (and
    /// Turin Dense): 1Ah models 00h-1Fh.
    pub fn from_cpuid(family: u8, model: u8) -> Option<Product> {
        match (family, model) {
            (0x19, 0x00..=0x0F) => Some(Product::Milan),
            (0x19, 0x10..=0x1F) | (0x19, 0xA0..=0xAF) => Some(Product::Genoa),
            (0x1A, 0x00..=0x1F) => Some(Product::Turin),
            _ => None,
        }
    }

    /// Whether TCB_VERSION uses the Turin layout (with an FMC byte).
    pub fn turin_tcb_layout(self) -> bool {
        matches!(self, Product::Turin)
    }
}

impl std::fmt::Display for Product {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which key signed the report (KEY_INFO.SIGNING_KEY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningKey {
    /// Versioned Chip Endorsement Key (0).
    Vcek,
    /// Versioned Loaded Endorsement Key (1).
    Vlek,
    /// No key: the report is not signed (7).
    None,
}

impl SigningKey {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningKey::Vcek => "vcek",
            SigningKey::Vlek => "vlek",
            SigningKey::None => "none",
        }
    }
}

impl std::fmt::Display for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TCB_VERSION decoded for one product generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TcbVersion {
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
    /// Turin and later only.
    pub fmc: Option<u8>,
}

impl TcbVersion {
    /// Decode the 8 little-endian bytes of a TCB_VERSION. Milan/Genoa: byte 0 boot loader, 1 TEE,
    /// 2-5 reserved, 6 SNP, 7 microcode. Turin: byte 0 FMC, 1 boot loader, 2 TEE, 3 SNP, 4-6
    /// reserved, 7 microcode.
    pub fn decode(raw: u64, turin: bool) -> TcbVersion {
        let b = raw.to_le_bytes();
        if turin {
            TcbVersion {
                fmc: Some(b[0]),
                bootloader: b[1],
                tee: b[2],
                snp: b[3],
                microcode: b[7],
            }
        } else {
            TcbVersion {
                fmc: None,
                bootloader: b[0],
                tee: b[1],
                snp: b[6],
                microcode: b[7],
            }
        }
    }
}

/// The guest policy (POLICY, offset 08h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GuestPolicy {
    pub raw: u64,
    pub abi_minor: u8,
    pub abi_major: u8,
    pub smt: bool,
    pub migrate_ma: bool,
    pub debug: bool,
    pub single_socket: bool,
    pub cxl_allow: bool,
    pub mem_aes_256_xts: bool,
    pub rapl_dis: bool,
    pub ciphertext_hiding: bool,
    pub page_swap_disable: bool,
}

impl GuestPolicy {
    /// Bit 17 is reserved and must be one; bits 63:26 are reserved and must be zero.
    pub const RESERVED_ONE: u64 = 1 << 17;
    pub const RESERVED_ZERO: u64 = !((1u64 << 26) - 1);

    pub fn decode(raw: u64) -> GuestPolicy {
        let bit = |n: u32| raw & (1u64 << n) != 0;
        GuestPolicy {
            raw,
            abi_minor: (raw & 0xFF) as u8,
            abi_major: ((raw >> 8) & 0xFF) as u8,
            smt: bit(16),
            migrate_ma: bit(18),
            debug: bit(19),
            single_socket: bit(20),
            cxl_allow: bit(21),
            mem_aes_256_xts: bit(22),
            rapl_dis: bit(23),
            ciphertext_hiding: bit(24),
            page_swap_disable: bit(25),
        }
    }
}

/// Platform information (PLATFORM_INFO, offset 40h). Unknown bits are kept in `raw` and not
/// rejected: they describe the host, and new firmware defines new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlatformInfo {
    pub raw: u64,
    pub smt_en: bool,
    pub tsme_en: bool,
    pub ecc_en: bool,
    pub rapl_dis: bool,
    pub ciphertext_hiding_en: bool,
    pub alias_check_complete: bool,
}

impl PlatformInfo {
    pub fn decode(raw: u64) -> PlatformInfo {
        let bit = |n: u32| raw & (1u64 << n) != 0;
        PlatformInfo {
            raw,
            smt_en: bit(0),
            tsme_en: bit(1),
            ecc_en: bit(2),
            rapl_dis: bit(3),
            ciphertext_hiding_en: bit(4),
            alias_check_complete: bit(5),
        }
    }
}

/// KEY_INFO (offset 48h): bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY,
/// bits 31:5 reserved (zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyInfo {
    pub raw: u32,
    pub author_key_en: bool,
    pub mask_chip_key: bool,
    pub signing_key: SigningKey,
}

/// A firmware version (major.minor.build).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FirmwareVersion {
    pub major: u8,
    pub minor: u8,
    pub build: u8,
}

impl std::fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)
    }
}

/// CPUID family / model / stepping (reports v3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cpuid {
    pub family: u8,
    pub model: u8,
    pub stepping: u8,
}

/// A parsed (not yet verified) attestation report. TCB fields are kept raw because their layout
/// depends on the product; use [`AttestationReport::decode_tcb`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationReport {
    pub version: u32,
    pub guest_svn: u32,
    pub policy: GuestPolicy,
    pub family_id: [u8; 16],
    pub image_id: [u8; 16],
    pub vmpl: u32,
    pub signature_algo: u32,
    pub current_tcb: u64,
    pub platform_info: PlatformInfo,
    pub key_info: KeyInfo,
    pub report_data: [u8; 64],
    pub measurement: [u8; 48],
    pub host_data: [u8; 32],
    pub id_key_digest: [u8; 48],
    pub author_key_digest: [u8; 48],
    pub report_id: [u8; 32],
    pub report_id_ma: [u8; 32],
    pub reported_tcb: u64,
    /// Reports v3+.
    pub cpuid: Option<Cpuid>,
    pub chip_id: [u8; 64],
    pub committed_tcb: u64,
    pub current_version: FirmwareVersion,
    pub committed_version: FirmwareVersion,
    pub launch_tcb: u64,
    /// Reports v4+ (zero-filled before).
    pub launch_mit_vector: Option<u64>,
    pub current_mit_vector: Option<u64>,
    /// R, little endian as in the report.
    pub signature_r: [u8; ECDSA_COMPONENT_LEN],
    /// S, little endian as in the report.
    pub signature_s: [u8; ECDSA_COMPONENT_LEN],
}

impl AttestationReport {
    /// The product the report's CPUID fields name (v3+), if known.
    pub fn cpuid_product(&self) -> Option<Product> {
        self.cpuid
            .and_then(|c| Product::from_cpuid(c.family, c.model))
    }

    /// Decode a raw TCB_VERSION of this report for `product`.
    pub fn decode_tcb(raw: u64, product: Product) -> TcbVersion {
        TcbVersion::decode(raw, product.turin_tcb_layout())
    }

    /// The signature as big-endian `r || s` (48 bytes each) for a fixed-size P-384 verifier, or
    /// `None` when R or S does not fit in 48 bytes.
    pub fn signature_fixed_be(&self) -> Option<[u8; 96]> {
        let mut out = [0u8; 96];
        for (dst, src) in [(0usize, &self.signature_r), (48usize, &self.signature_s)] {
            if src.iter().skip(48).any(|&b| b != 0) {
                return None;
            }
            // Little-endian on the wire, big-endian out: the low 48 bytes reversed.
            for (o, s) in out.iter_mut().skip(dst).zip(src.iter().take(48).rev()) {
                *o = *s;
            }
        }
        Some(out)
    }
}

/// Little-endian readers over a slice whose length was checked by the caller.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn arr<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.0.get(off..off + N) {
            out.copy_from_slice(src);
        }
        out
    }
    fn u8(&self, off: usize) -> u8 {
        self.0.get(off).copied().unwrap_or(0)
    }
    fn u32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.arr(off))
    }
    fn u64(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.arr(off))
    }
    fn mbz(&self, lo: usize, hi: usize, what: &str) -> Result<(), SnpError> {
        match self.0.get(lo..hi) {
            Some(s) if s.iter().all(|&b| b == 0) => Ok(()),
            Some(s) => Err(SnpError::MalformedReport(format!(
                "reserved bytes {lo:#05x}..{hi:#05x} ({what}) must be zero, found {}",
                hex::encode(s)
            ))),
            None => Err(SnpError::MalformedReport(format!(
                "report too short for {what}"
            ))),
        }
    }
}

/// Parse a 1184-byte attestation report (versions 2 to 5). Checks the size, the version, the
/// signature algorithm and every reserved field, never the signature.
pub fn parse_report(bytes: &[u8]) -> Result<AttestationReport, SnpError> {
    if bytes.len() != REPORT_LEN {
        return Err(SnpError::MalformedReport(format!(
            "expected {REPORT_LEN} bytes, found {}",
            bytes.len()
        )));
    }
    let c = Cursor(bytes);
    let version = c.u32(0x00);
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(SnpError::UnsupportedReportVersion { found: version });
    }
    let signature_algo = c.u32(0x34);
    if signature_algo != SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(SnpError::UnsupportedSignatureAlgorithm {
            found: signature_algo,
        });
    }

    let policy_raw = c.u64(0x08);
    if policy_raw & GuestPolicy::RESERVED_ONE == 0 {
        return Err(SnpError::MalformedReport(format!(
            "policy bit 17 is reserved and must be one, found policy {policy_raw:#x}"
        )));
    }
    if policy_raw & GuestPolicy::RESERVED_ZERO != 0 {
        return Err(SnpError::MalformedReport(format!(
            "policy bits 63:26 are reserved and must be zero, found policy {policy_raw:#x}"
        )));
    }

    let key_info_raw = c.u32(0x48);
    if key_info_raw >> 5 != 0 {
        return Err(SnpError::MalformedReport(format!(
            "KEY_INFO bits 31:5 are reserved and must be zero, found {key_info_raw:#x}"
        )));
    }
    let signing_key = match (key_info_raw >> 2) & 7 {
        0 => SigningKey::Vcek,
        1 => SigningKey::Vlek,
        7 => SigningKey::None,
        other => {
            return Err(SnpError::MalformedReport(format!(
                "KEY_INFO.SIGNING_KEY must be 0 (VCEK), 1 (VLEK) or 7 (none), found {other}"
            )));
        }
    };
    let key_info = KeyInfo {
        raw: key_info_raw,
        author_key_en: key_info_raw & 1 != 0,
        mask_chip_key: key_info_raw & 2 != 0,
        signing_key,
    };
    c.mbz(0x4C, 0x50, "after KEY_INFO")?;

    let cpuid = if version >= 3 {
        c.mbz(0x18B, 0x1A0, "after CPUID")?;
        Some(Cpuid {
            family: c.u8(0x188),
            model: c.u8(0x189),
            stepping: c.u8(0x18A),
        })
    } else {
        c.mbz(0x188, 0x1A0, "after REPORTED_TCB")?;
        None
    };
    c.mbz(0x1EB, 0x1EC, "after CURRENT_MAJOR")?;
    c.mbz(0x1EF, 0x1F0, "after COMMITTED_MAJOR")?;
    let (launch_mit_vector, current_mit_vector) = if version >= 4 {
        c.mbz(0x208, SIGNED_LEN, "after CURRENT_MIT_VECTOR")?;
        (Some(c.u64(0x1F8)), Some(c.u64(0x200)))
    } else {
        c.mbz(0x1F8, SIGNED_LEN, "after LAUNCH_TCB")?;
        (None, None)
    };
    // The ECDSA signature format uses 0x90 bytes of the 0x200-byte SIGNATURE field.
    c.mbz(
        SIGNED_LEN + 2 * ECDSA_COMPONENT_LEN,
        REPORT_LEN,
        "rest of SIGNATURE",
    )?;

    let chip_id: [u8; 64] = c.arr(0x1A0);
    if key_info.mask_chip_key && chip_id.iter().any(|&b| b != 0) {
        return Err(SnpError::MalformedReport(
            "MASK_CHIP_KEY is set, so CHIP_ID must be zero, found a non-zero CHIP_ID".into(),
        ));
    }

    Ok(AttestationReport {
        version,
        guest_svn: c.u32(0x04),
        policy: GuestPolicy::decode(policy_raw),
        family_id: c.arr(0x10),
        image_id: c.arr(0x20),
        vmpl: c.u32(0x30),
        signature_algo,
        current_tcb: c.u64(0x38),
        platform_info: PlatformInfo::decode(c.u64(0x40)),
        key_info,
        report_data: c.arr(0x50),
        measurement: c.arr(0x90),
        host_data: c.arr(0xC0),
        id_key_digest: c.arr(0xE0),
        author_key_digest: c.arr(0x110),
        report_id: c.arr(0x140),
        report_id_ma: c.arr(0x160),
        reported_tcb: c.u64(0x180),
        cpuid,
        chip_id,
        committed_tcb: c.u64(0x1E0),
        current_version: FirmwareVersion {
            build: c.u8(0x1E8),
            minor: c.u8(0x1E9),
            major: c.u8(0x1EA),
        },
        committed_version: FirmwareVersion {
            build: c.u8(0x1EC),
            minor: c.u8(0x1ED),
            major: c.u8(0x1EE),
        },
        launch_tcb: c.u64(0x1F0),
        launch_mit_vector,
        current_mit_vector,
        signature_r: c.arr(SIGNED_LEN),
        signature_s: c.arr(SIGNED_LEN + ECDSA_COMPONENT_LEN),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(version: u32) -> Vec<u8> {
        let mut r = vec![0u8; REPORT_LEN];
        r[0..4].copy_from_slice(&version.to_le_bytes());
        r[0x08..0x10].copy_from_slice(&0x30000u64.to_le_bytes());
        r[0x34..0x38].copy_from_slice(&1u32.to_le_bytes());
        r
    }

    #[test]
    fn tcb_layouts() {
        let raw = u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            TcbVersion::decode(raw, false),
            TcbVersion {
                bootloader: 1,
                tee: 2,
                snp: 7,
                microcode: 8,
                fmc: None
            }
        );
        assert_eq!(
            TcbVersion::decode(raw, true),
            TcbVersion {
                fmc: Some(1),
                bootloader: 2,
                tee: 3,
                snp: 4,
                microcode: 8
            }
        );
    }

    #[test]
    fn versions_and_reserved_fields() {
        for v in [2, 3, 4, 5] {
            let r = parse_report(&minimal(v)).unwrap();
            assert_eq!(r.version, v);
            assert_eq!(r.cpuid.is_some(), v >= 3);
            assert_eq!(r.launch_mit_vector.is_some(), v >= 4);
        }
        for v in [0, 1, 6, u32::MAX] {
            assert!(matches!(
                parse_report(&minimal(v)),
                Err(SnpError::UnsupportedReportVersion { found }) if found == v
            ));
        }
        // v2 has no CPUID: 0x188 is reserved there but not in v3.
        let mut r = minimal(2);
        r[0x188] = 0x19;
        assert!(matches!(
            parse_report(&r),
            Err(SnpError::MalformedReport(_))
        ));
        let mut r = minimal(3);
        r[0x188] = 0x19;
        assert_eq!(parse_report(&r).unwrap().cpuid.unwrap().family, 0x19);
        // mitigation vectors only from v4 on.
        let mut r = minimal(3);
        r[0x1F8] = 1;
        assert!(parse_report(&r).is_err());
        let mut r = minimal(5);
        r[0x1F8] = 1;
        r[0x200] = 2;
        let p = parse_report(&r).unwrap();
        assert_eq!(
            (p.launch_mit_vector, p.current_mit_vector),
            (Some(1), Some(2))
        );
        r[0x208] = 1;
        assert!(parse_report(&r).is_err());
        // policy bit 17 must be one; bits 26+ must be zero.
        let mut r = minimal(2);
        r[0x0A] = 0;
        assert!(parse_report(&r).is_err());
        let mut r = minimal(2);
        r[0x0B] = 0x04;
        assert!(parse_report(&r).is_err());
        // signing key 2..=6 reserved, 7 = none.
        for (sk, ok) in [(0u32, true), (1, true), (2, false), (6, false), (7, true)] {
            let mut r = minimal(2);
            r[0x48..0x4C].copy_from_slice(&(sk << 2).to_le_bytes());
            assert_eq!(parse_report(&r).is_ok(), ok, "signing key {sk}");
        }
        let mut r = minimal(2);
        r[0x34] = 2;
        assert!(matches!(
            parse_report(&r),
            Err(SnpError::UnsupportedSignatureAlgorithm { found: 2 })
        ));
    }

    #[test]
    fn cpuid_products() {
        assert_eq!(Product::from_cpuid(0x19, 0x01), Some(Product::Milan));
        assert_eq!(Product::from_cpuid(0x19, 0x11), Some(Product::Genoa));
        assert_eq!(Product::from_cpuid(0x19, 0xA0), Some(Product::Genoa));
        assert_eq!(Product::from_cpuid(0x1A, 0x02), Some(Product::Turin));
        assert_eq!(Product::from_cpuid(0x1A, 0x11), Some(Product::Turin));
        assert_eq!(Product::from_cpuid(0x17, 0x31), None);
    }

    #[test]
    fn signature_conversion() {
        let mut r = minimal(2);
        r[SIGNED_LEN] = 0xAA; // least significant byte of R
        r[SIGNED_LEN + 47] = 0xBB; // most significant of the 48
        r[SIGNED_LEN + 72] = 0xCC;
        let p = parse_report(&r).unwrap();
        let sig = p.signature_fixed_be().unwrap();
        assert_eq!((sig[0], sig[47], sig[95]), (0xBB, 0xAA, 0xCC));
        let mut r2 = r.clone();
        r2[SIGNED_LEN + 48] = 1;
        assert!(parse_report(&r2).unwrap().signature_fixed_be().is_none());
    }
}
