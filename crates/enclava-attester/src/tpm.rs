//! TPM 2.0 command and response marshalling for the few commands the Azure vTPM collector sends
//! (TPM 2.0 Library Part 3 "Commands", Part 2 "Structures"). Pure functions over bytes; all
//! integers big endian.
//!
//! Command layout: `tag u16 | commandSize u32 | commandCode u32 | handles | [authorizationSize u32
//! | TPMS_AUTH_COMMAND..] | parameters`. With `tag = TPM_ST_SESSIONS` one password session
//! (TPM_RS_PW) with an empty password authorizes the first handle.
//!
//! Response layout: `tag u16 | responseSize u32 | responseCode u32 | handles | [parameterSize u32]
//! | parameters | [TPMS_AUTH_RESPONSE..]`.

use crate::AttesterError;

pub const TPM_ST_NO_SESSIONS: u16 = 0x8001;
pub const TPM_ST_SESSIONS: u16 = 0x8002;

pub const TPM_CC_NV_DEFINE_SPACE: u32 = 0x0000_012A;
pub const TPM_CC_NV_WRITE: u32 = 0x0000_0137;
pub const TPM_CC_NV_READ: u32 = 0x0000_014E;
pub const TPM_CC_QUOTE: u32 = 0x0000_0158;
pub const TPM_CC_NV_READ_PUBLIC: u32 = 0x0000_0169;
pub const TPM_CC_PCR_READ: u32 = 0x0000_017E;

/// The password authorization session handle.
pub const TPM_RS_PW: u32 = 0x4000_0009;
/// The owner hierarchy.
pub const TPM_RH_OWNER: u32 = 0x4000_0001;

pub const TPM_ALG_SHA256: u16 = 0x000B;
pub const TPM_ALG_RSASSA: u16 = 0x0014;
pub const TPM_ALG_NULL: u16 = 0x0010;

/// TPMA_NV bits used here.
pub const TPMA_NV_OWNERWRITE: u32 = 1 << 1;
pub const TPMA_NV_AUTHWRITE: u32 = 1 << 2;
pub const TPMA_NV_PPREAD: u32 = 1 << 16;
pub const TPMA_NV_OWNERREAD: u32 = 1 << 17;
pub const TPMA_NV_AUTHREAD: u32 = 1 << 18;

/// The size of MAX_NV_BUFFER_SIZE on common TPMs (and the reference implementation): reads and
/// writes are chunked to at most this many bytes.
pub const MAX_NV_BUFFER: usize = 1024;
/// Number of PCRs in a bank.
pub const PCR_COUNT: usize = 24;

pub const TPM_RC_SUCCESS: u32 = 0;
/// TPM_RC_HANDLE (format 1, 0x08B) with handle number 1: "the first handle does not exist".
pub const TPM_RC_HANDLE_1: u32 = 0x18B;

/// Password session authorization area (TPMS_AUTH_COMMAND): sessionHandle TPM_RS_PW, empty nonce,
/// sessionAttributes continueSession, empty password.
fn pw_auth() -> [u8; 9] {
    let mut a = [0u8; 9];
    a[..4].copy_from_slice(&TPM_RS_PW.to_be_bytes());
    // nonce size 0 (a[4..6]), sessionAttributes (a[6]), hmac size 0 (a[7..9])
    a[6] = 0x01;
    a
}

fn command(tag: u16, cc: u32, handles: &[u32], params: &[u8]) -> Vec<u8> {
    let auth = pw_auth();
    let mut body = Vec::with_capacity(64 + params.len());
    for h in handles {
        body.extend_from_slice(&h.to_be_bytes());
    }
    if tag == TPM_ST_SESSIONS {
        body.extend_from_slice(&(auth.len() as u32).to_be_bytes());
        body.extend_from_slice(&auth);
    }
    body.extend_from_slice(params);
    let size = 10 + body.len();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&(size as u32).to_be_bytes());
    out.extend_from_slice(&cc.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn tpm2b(out: &mut Vec<u8>, data: &[u8]) -> Result<(), AttesterError> {
    let n = u16::try_from(data.len()).map_err(|_| {
        AttesterError::malformed(
            "TPM2B buffer",
            "at most 65535 bytes",
            format!("{} bytes", data.len()),
        )
    })?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// A TPML_PCR_SELECTION with one SHA-256 selection of `pcrs` (indices below 24).
pub fn pcr_selection_sha256(pcrs: &[u32]) -> Vec<u8> {
    let mut select = [0u8; 3];
    for &p in pcrs {
        if let Some(byte) = select.get_mut(p as usize / 8) {
            *byte |= 1 << (p % 8);
        }
    }
    let mut out = Vec::with_capacity(10);
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    out.push(3);
    out.extend_from_slice(&select);
    out
}

/// TPM2_NV_ReadPublic(nvIndex).
pub fn nv_read_public(nv_index: u32) -> Vec<u8> {
    command(TPM_ST_NO_SESSIONS, TPM_CC_NV_READ_PUBLIC, &[nv_index], &[])
}

/// TPM2_NV_Read(authHandle, nvIndex, size, offset) with a password session.
pub fn nv_read(auth_handle: u32, nv_index: u32, size: u16, offset: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(4);
    p.extend_from_slice(&size.to_be_bytes());
    p.extend_from_slice(&offset.to_be_bytes());
    command(
        TPM_ST_SESSIONS,
        TPM_CC_NV_READ,
        &[auth_handle, nv_index],
        &p,
    )
}

/// TPM2_NV_Write(authHandle, nvIndex, data, offset) with a password session.
pub fn nv_write(
    auth_handle: u32,
    nv_index: u32,
    data: &[u8],
    offset: u16,
) -> Result<Vec<u8>, AttesterError> {
    if data.len() > MAX_NV_BUFFER {
        return Err(AttesterError::malformed(
            "TPM2_NV_Write data",
            format!("at most {MAX_NV_BUFFER} bytes (TPM2B_MAX_NV_BUFFER)"),
            format!("{} bytes", data.len()),
        ));
    }
    let mut p = Vec::with_capacity(data.len() + 4);
    tpm2b(&mut p, data)?;
    p.extend_from_slice(&offset.to_be_bytes());
    Ok(command(
        TPM_ST_SESSIONS,
        TPM_CC_NV_WRITE,
        &[auth_handle, nv_index],
        &p,
    ))
}

/// TPM2_NV_DefineSpace(TPM_RH_OWNER, auth = empty, publicInfo) for an ordinary index of
/// `data_size` bytes with SHA-256 names and `attributes`.
pub fn nv_define_space(nv_index: u32, attributes: u32, data_size: u16) -> Vec<u8> {
    // TPMS_NV_PUBLIC: nvIndex u32, nameAlg u16, attributes u32, authPolicy TPM2B (empty), dataSize u16
    let mut public = Vec::with_capacity(14);
    public.extend_from_slice(&nv_index.to_be_bytes());
    public.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    public.extend_from_slice(&attributes.to_be_bytes());
    public.extend_from_slice(&0u16.to_be_bytes());
    public.extend_from_slice(&data_size.to_be_bytes());
    let mut p = Vec::with_capacity(18);
    p.extend_from_slice(&0u16.to_be_bytes()); // auth: TPM2B_AUTH, empty
    p.extend_from_slice(&(public.len() as u16).to_be_bytes());
    p.extend_from_slice(&public);
    command(TPM_ST_SESSIONS, TPM_CC_NV_DEFINE_SPACE, &[TPM_RH_OWNER], &p)
}

/// TPM2_Quote(signHandle, qualifyingData, inScheme = RSASSA/SHA-256, PCRselect) with a password
/// session for the key.
pub fn quote(
    sign_handle: u32,
    qualifying_data: &[u8],
    pcrs: &[u32],
) -> Result<Vec<u8>, AttesterError> {
    if qualifying_data.len() > 64 {
        return Err(AttesterError::malformed(
            "TPM2_Quote qualifyingData",
            "at most 64 bytes (TPM2B_DATA)",
            format!("{} bytes", qualifying_data.len()),
        ));
    }
    let mut p = Vec::new();
    tpm2b(&mut p, qualifying_data)?;
    p.extend_from_slice(&TPM_ALG_RSASSA.to_be_bytes());
    p.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    p.extend_from_slice(&pcr_selection_sha256(pcrs));
    Ok(command(TPM_ST_SESSIONS, TPM_CC_QUOTE, &[sign_handle], &p))
}

/// TPM2_PCR_Read(pcrSelectionIn) for SHA-256 PCRs.
pub fn pcr_read(pcrs: &[u32]) -> Vec<u8> {
    command(
        TPM_ST_NO_SESSIONS,
        TPM_CC_PCR_READ,
        &[],
        &pcr_selection_sha256(pcrs),
    )
}

// ---------------------------------------------------------------- response codes

/// The name of a TPM 2.0 response code (Part 2, 6.6), with the handle/parameter/session number
/// for format-one codes, e.g. `TPM_RC_HANDLE (handle 1)`.
pub fn rc_name(rc: u32) -> String {
    if rc & 0x80 != 0 {
        // Format one: error number in bits 0..5, then P (bit 6) and N (bits 8..11).
        let base = match rc & 0x3F {
            0x01 => "TPM_RC_ASYMMETRIC",
            0x02 => "TPM_RC_ATTRIBUTES",
            0x03 => "TPM_RC_HASH",
            0x04 => "TPM_RC_VALUE",
            0x05 => "TPM_RC_HIERARCHY",
            0x07 => "TPM_RC_KEY_SIZE",
            0x08 => "TPM_RC_MGF",
            0x09 => "TPM_RC_MODE",
            0x0A => "TPM_RC_TYPE",
            0x0B => "TPM_RC_HANDLE",
            0x0C => "TPM_RC_KDF",
            0x0D => "TPM_RC_RANGE",
            0x0E => "TPM_RC_AUTH_FAIL",
            0x0F => "TPM_RC_NONCE",
            0x10 => "TPM_RC_PP",
            0x12 => "TPM_RC_SCHEME",
            0x15 => "TPM_RC_SIZE",
            0x16 => "TPM_RC_SYMMETRIC",
            0x17 => "TPM_RC_TAG",
            0x18 => "TPM_RC_SELECTOR",
            0x1A => "TPM_RC_INSUFFICIENT",
            0x1B => "TPM_RC_SIGNATURE",
            0x1C => "TPM_RC_KEY",
            0x1D => "TPM_RC_POLICY_FAIL",
            0x1F => "TPM_RC_INTEGRITY",
            0x20 => "TPM_RC_TICKET",
            0x21 => "TPM_RC_RESERVED_BITS",
            0x22 => "TPM_RC_BAD_AUTH",
            0x23 => "TPM_RC_EXPIRED",
            0x24 => "TPM_RC_POLICY_CC",
            0x25 => "TPM_RC_BINDING",
            0x26 => "TPM_RC_CURVE",
            0x27 => "TPM_RC_ECC_POINT",
            _ => "TPM_RC_(unknown format-one error)",
        };
        let n = (rc >> 8) & 0xF;
        if rc & 0x40 != 0 {
            format!("{base} (parameter {n})")
        } else if n & 0x8 != 0 {
            format!("{base} (session {})", n & 0x7)
        } else if n != 0 {
            format!("{base} (handle {n})")
        } else {
            base.to_string()
        }
    } else {
        let name = match rc {
            0x000 => "TPM_RC_SUCCESS",
            0x01E => "TPM_RC_BAD_TAG",
            0x100 => "TPM_RC_INITIALIZE",
            0x101 => "TPM_RC_FAILURE",
            0x103 => "TPM_RC_SEQUENCE",
            0x120 => "TPM_RC_DISABLED",
            0x121 => "TPM_RC_EXCLUSIVE",
            0x124 => "TPM_RC_AUTH_TYPE",
            0x125 => "TPM_RC_AUTH_MISSING",
            0x126 => "TPM_RC_POLICY",
            0x127 => "TPM_RC_PCR",
            0x128 => "TPM_RC_PCR_CHANGED",
            0x12D => "TPM_RC_UPGRADE",
            0x12E => "TPM_RC_TOO_MANY_CONTEXTS",
            0x12F => "TPM_RC_AUTH_UNAVAILABLE",
            0x130 => "TPM_RC_REBOOT",
            0x131 => "TPM_RC_UNBALANCED",
            0x142 => "TPM_RC_COMMAND_SIZE",
            0x143 => "TPM_RC_COMMAND_CODE",
            0x144 => "TPM_RC_AUTHSIZE",
            0x145 => "TPM_RC_AUTH_CONTEXT",
            0x146 => "TPM_RC_NV_RANGE",
            0x147 => "TPM_RC_NV_SIZE",
            0x148 => "TPM_RC_NV_LOCKED",
            0x149 => "TPM_RC_NV_AUTHORIZATION",
            0x14A => "TPM_RC_NV_UNINITIALIZED",
            0x14B => "TPM_RC_NV_SPACE",
            0x14C => "TPM_RC_NV_DEFINED",
            0x150 => "TPM_RC_BAD_CONTEXT",
            0x151 => "TPM_RC_CPHASH",
            0x152 => "TPM_RC_PARENT",
            0x153 => "TPM_RC_NEEDS_TEST",
            0x154 => "TPM_RC_NO_RESULT",
            0x155 => "TPM_RC_SENSITIVE",
            0x901 => "TPM_RC_CONTEXT_GAP",
            0x902 => "TPM_RC_OBJECT_MEMORY",
            0x903 => "TPM_RC_SESSION_MEMORY",
            0x904 => "TPM_RC_MEMORY",
            0x905 => "TPM_RC_SESSION_HANDLES",
            0x906 => "TPM_RC_OBJECT_HANDLES",
            0x907 => "TPM_RC_LOCALITY",
            0x908 => "TPM_RC_YIELDED",
            0x909 => "TPM_RC_CANCELED",
            0x90A => "TPM_RC_TESTING",
            0x920 => "TPM_RC_NV_RATE",
            0x921 => "TPM_RC_LOCKOUT",
            0x922 => "TPM_RC_RETRY",
            0x923 => "TPM_RC_NV_UNAVAILABLE",
            _ if rc & 0x400 != 0 => "TPM_RC_(vendor-defined)",
            _ => "TPM_RC_(unknown)",
        };
        name.to_string()
    }
}

// ---------------------------------------------------------------- responses

/// A bounds-checked big-endian reader over a response.
struct Rd<'a> {
    b: &'a [u8],
    command: &'static str,
}

impl<'a> Rd<'a> {
    fn short(&self, need: usize, what: &str) -> AttesterError {
        AttesterError::TpmResponse {
            command: self.command,
            expected: format!("{need} more bytes for {what}"),
            found: format!("{} bytes left", self.b.len()),
        }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], AttesterError> {
        if self.b.len() < n {
            return Err(self.short(n, what));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self, what: &str) -> Result<u8, AttesterError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, AttesterError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, AttesterError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn tpm2b(&mut self, what: &str) -> Result<&'a [u8], AttesterError> {
        let n = self.u16(what)? as usize;
        self.take(n, what)
    }
}

/// Check the response header and return the bytes after it (handles, parameters, sessions).
/// A non-zero response code becomes [`AttesterError::TpmRc`] naming the code.
pub fn response_body<'a>(
    command: &'static str,
    resp: &'a [u8],
    expected_tag: u16,
) -> Result<&'a [u8], AttesterError> {
    let mut r = Rd { b: resp, command };
    let tag = r.u16("the response tag")?;
    let size = r.u32("the response size")? as usize;
    let rc = r.u32("the response code")?;
    if size != resp.len() {
        return Err(AttesterError::TpmResponse {
            command,
            expected: format!("responseSize = the {} bytes received", resp.len()),
            found: format!("responseSize {size}"),
        });
    }
    if rc != TPM_RC_SUCCESS {
        return Err(AttesterError::TpmRc {
            command,
            rc,
            rc_name: rc_name(rc),
        });
    }
    if tag != expected_tag {
        return Err(AttesterError::TpmResponse {
            command,
            expected: format!("tag {expected_tag:#06x}"),
            found: format!("tag {tag:#06x}"),
        });
    }
    Ok(r.b)
}

/// The parameter area of a TPM_ST_SESSIONS response without response handles.
fn session_params<'a>(command: &'static str, body: &'a [u8]) -> Result<Rd<'a>, AttesterError> {
    let mut r = Rd { b: body, command };
    let n = r.u32("parameterSize")? as usize;
    let params = r.take(n, "the parameters")?;
    Ok(Rd { b: params, command })
}

fn no_trailing(r: &Rd<'_>, what: &str) -> Result<(), AttesterError> {
    if r.b.is_empty() {
        Ok(())
    } else {
        Err(AttesterError::TpmResponse {
            command: r.command,
            expected: format!("nothing after {what}"),
            found: format!("{} trailing bytes", r.b.len()),
        })
    }
}

/// TPMS_NV_PUBLIC of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvPublic {
    pub nv_index: u32,
    pub name_alg: u16,
    pub attributes: u32,
    pub data_size: u16,
}

pub fn parse_nv_read_public(resp: &[u8]) -> Result<NvPublic, AttesterError> {
    const CMD: &str = "NV_ReadPublic";
    let body = response_body(CMD, resp, TPM_ST_NO_SESSIONS)?;
    let mut r = Rd {
        b: body,
        command: CMD,
    };
    let public = r.tpm2b("nvPublic")?;
    let _name = r.tpm2b("nvName")?;
    no_trailing(&r, "nvName")?;
    let mut p = Rd {
        b: public,
        command: CMD,
    };
    let nv_index = p.u32("TPMS_NV_PUBLIC.nvIndex")?;
    let name_alg = p.u16("TPMS_NV_PUBLIC.nameAlg")?;
    let attributes = p.u32("TPMS_NV_PUBLIC.attributes")?;
    let _policy = p.tpm2b("TPMS_NV_PUBLIC.authPolicy")?;
    let data_size = p.u16("TPMS_NV_PUBLIC.dataSize")?;
    no_trailing(&p, "TPMS_NV_PUBLIC")?;
    Ok(NvPublic {
        nv_index,
        name_alg,
        attributes,
        data_size,
    })
}

pub fn parse_nv_read(resp: &[u8]) -> Result<Vec<u8>, AttesterError> {
    const CMD: &str = "NV_Read";
    let body = response_body(CMD, resp, TPM_ST_SESSIONS)?;
    let mut r = session_params(CMD, body)?;
    let data = r.tpm2b("data")?.to_vec();
    no_trailing(&r, "data")?;
    Ok(data)
}

/// A response without output parameters (NV_Write, NV_DefineSpace).
pub fn parse_empty(command: &'static str, resp: &[u8]) -> Result<(), AttesterError> {
    let body = response_body(command, resp, TPM_ST_SESSIONS)?;
    let r = session_params(command, body)?;
    no_trailing(&r, "the (empty) parameters")
}

/// TPM2_Quote output: the marshalled TPMS_ATTEST and the raw RSASSA signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteResponse {
    pub attest: Vec<u8>,
    pub signature: Vec<u8>,
}

pub fn parse_quote(resp: &[u8]) -> Result<QuoteResponse, AttesterError> {
    const CMD: &str = "Quote";
    let body = response_body(CMD, resp, TPM_ST_SESSIONS)?;
    let mut r = session_params(CMD, body)?;
    let attest = r.tpm2b("quoted (TPM2B_ATTEST)")?.to_vec();
    let sig_alg = r.u16("signature.sigAlg")?;
    let hash = r.u16("signature.hash")?;
    if sig_alg != TPM_ALG_RSASSA || hash != TPM_ALG_SHA256 {
        return Err(AttesterError::TpmResponse {
            command: CMD,
            expected: "an RSASSA (0x0014) SHA-256 (0x000b) signature".into(),
            found: format!("scheme {sig_alg:#06x} with hash {hash:#06x}"),
        });
    }
    let signature = r.tpm2b("signature.sig")?.to_vec();
    no_trailing(&r, "the signature")?;
    Ok(QuoteResponse { attest, signature })
}

/// TPM2_PCR_Read output: which SHA-256 PCRs were returned (ascending) and their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrReadResponse {
    pub update_counter: u32,
    pub pcrs: Vec<u32>,
    pub digests: Vec<Vec<u8>>,
}

pub fn parse_pcr_read(resp: &[u8]) -> Result<PcrReadResponse, AttesterError> {
    const CMD: &str = "PCR_Read";
    let body = response_body(CMD, resp, TPM_ST_NO_SESSIONS)?;
    let mut r = Rd {
        b: body,
        command: CMD,
    };
    let update_counter = r.u32("pcrUpdateCounter")?;
    let count = r.u32("pcrSelectionOut.count")?;
    let mut pcrs = Vec::new();
    for _ in 0..count.min(16) {
        let alg = r.u16("TPMS_PCR_SELECTION.hash")?;
        let n = r.u8("TPMS_PCR_SELECTION.sizeofSelect")? as usize;
        let select = r.take(n, "TPMS_PCR_SELECTION.pcrSelect")?;
        if alg != TPM_ALG_SHA256 {
            if select.iter().any(|&b| b != 0) {
                return Err(AttesterError::TpmResponse {
                    command: CMD,
                    expected: "only SHA-256 (0x000b) PCRs".into(),
                    found: format!("a selection in bank {alg:#06x}"),
                });
            }
            continue;
        }
        for (i, byte) in select.iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    pcrs.push((i * 8 + bit) as u32);
                }
            }
        }
    }
    if count > 16 {
        return Err(AttesterError::TpmResponse {
            command: CMD,
            expected: "at most 16 PCR selections".into(),
            found: count.to_string(),
        });
    }
    let n = r.u32("pcrValues.count")? as usize;
    if n != pcrs.len() {
        return Err(AttesterError::TpmResponse {
            command: CMD,
            expected: format!("{} digests for the selected PCRs", pcrs.len()),
            found: format!("{n} digests"),
        });
    }
    let mut digests = Vec::with_capacity(n);
    for _ in 0..n {
        let d = r.tpm2b("pcrValues.digests[]")?;
        if d.len() != 32 {
            return Err(AttesterError::TpmResponse {
                command: CMD,
                expected: "32-byte SHA-256 PCR values".into(),
                found: format!("a {}-byte value", d.len()),
            });
        }
        digests.push(d.to_vec());
    }
    no_trailing(&r, "pcrValues")?;
    Ok(PcrReadResponse {
        update_counter,
        pcrs,
        digests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    // Byte-exact commands, written field by field from TPM 2.0 Part 3.
    #[test]
    fn nv_read_public_command() {
        assert_eq!(
            nv_read_public(0x0140_0001),
            h("8001 0000000e 00000169 01400001")
        );
    }

    #[test]
    fn nv_read_command() {
        assert_eq!(
            nv_read(TPM_RH_OWNER, 0x0140_0001, 1024, 2048),
            h("8002 00000023 0000014e 40000001 01400001
               00000009 40000009 0000 01 0000
               0400 0800")
        );
    }

    #[test]
    fn nv_write_command() {
        let data = [0xAB; 64];
        let cmd = nv_write(TPM_RH_OWNER, 0x0140_0002, &data, 0).unwrap();
        let mut expected = h("8002 00000063 00000137 40000001 01400002
                              00000009 40000009 0000 01 0000
                              0040");
        expected.extend_from_slice(&data);
        expected.extend_from_slice(&h("0000"));
        assert_eq!(cmd, expected);
        assert_eq!(cmd.len(), 0x63);
        assert!(nv_write(TPM_RH_OWNER, 1, &[0; 1025], 0).is_err());
    }

    #[test]
    fn nv_define_space_command() {
        let attrs = TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_PPREAD;
        assert_eq!(attrs, 0x0003_0002);
        assert_eq!(
            nv_define_space(0x0140_0002, attrs, 64),
            h("8002 0000002d 0000012a 40000001
               00000009 40000009 0000 01 0000
               0000
               000e 01400002 000b 00030002 0000 0040")
        );
    }

    #[test]
    fn quote_command() {
        let cmd = quote(0x8100_0003, b"challenge", &(0..24).collect::<Vec<_>>()).unwrap();
        assert_eq!(
            cmd,
            h("8002 00000034 00000158 81000003
               00000009 40000009 0000 01 0000
               0009 6368616c6c656e6765
               0014 000b
               00000001 000b 03 ffffff")
        );
        assert!(quote(0x8100_0003, &[0; 65], &[0]).is_err());
    }

    #[test]
    fn pcr_read_command() {
        assert_eq!(
            pcr_read(&[0, 1, 2, 3, 4, 5, 6, 7]),
            h("8001 00000014 0000017e 00000001 000b 03 ff0000")
        );
        assert_eq!(
            pcr_read(&[8, 23]),
            h("8001 00000014 0000017e 00000001 000b 03 000180")
        );
    }

    #[test]
    fn rc_names() {
        assert_eq!(rc_name(0x18B), "TPM_RC_HANDLE (handle 1)");
        assert_eq!(rc_name(0x9A2), "TPM_RC_BAD_AUTH (session 1)");
        assert_eq!(rc_name(0x1D5), "TPM_RC_SIZE (parameter 1)");
        assert_eq!(rc_name(0x14A), "TPM_RC_NV_UNINITIALIZED");
        assert_eq!(rc_name(0x922), "TPM_RC_RETRY");
        assert_eq!(rc_name(0x101), "TPM_RC_FAILURE");
    }

    #[test]
    fn error_responses_become_typed_errors() {
        let resp = h("8001 0000000a 0000018b");
        match parse_nv_read_public(&resp) {
            Err(AttesterError::TpmRc {
                command,
                rc,
                rc_name,
            }) => {
                assert_eq!(command, "NV_ReadPublic");
                assert_eq!(rc, 0x18B);
                assert_eq!(rc_name, "TPM_RC_HANDLE (handle 1)");
            }
            other => panic!("expected TpmRc, got {other:?}"),
        }
        let e = parse_quote(&h("8001 0000000a 0000098e"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("TPM2_Quote") && e.contains("TPM_RC_AUTH_FAIL (session 1)"),
            "{e}"
        );
    }

    #[test]
    fn nv_read_public_response() {
        let resp = h("8001 0000003e 00000000
                      000e 01400001 000b 00060002 0000 0a28
                      0022 000b 1111111111111111111111111111111111111111111111111111111111111111");
        let p = parse_nv_read_public(&resp).unwrap();
        assert_eq!(
            p,
            NvPublic {
                nv_index: 0x0140_0001,
                name_alg: TPM_ALG_SHA256,
                attributes: 0x0006_0002,
                data_size: 0x0a28,
            }
        );
        // Wrong size field, truncations.
        let mut bad = resp.clone();
        bad[5] = 0x31;
        assert!(parse_nv_read_public(&bad).is_err());
        for n in 0..resp.len() {
            assert!(parse_nv_read_public(&resp[..n]).is_err());
        }
    }

    #[test]
    fn nv_read_response() {
        let resp = h("8002 00000019 00000000 00000006 0004 deadbeef 0000 01 0000");
        assert_eq!(parse_nv_read(&resp).unwrap(), h("deadbeef"));
        let lying = h("8002 00000019 00000000 00000006 0005 deadbeef 0000 01 0000");
        assert!(parse_nv_read(&lying).is_err());
    }

    #[test]
    fn pcr_read_response() {
        let mut resp = h("8001 00000000 00000000 00000011 00000001 000b 03 030000 00000002");
        resp.extend_from_slice(&h("0020"));
        resp.extend_from_slice(&[0x11; 32]);
        resp.extend_from_slice(&h("0020"));
        resp.extend_from_slice(&[0x22; 32]);
        let len = resp.len() as u32;
        resp[2..6].copy_from_slice(&len.to_be_bytes());
        let r = parse_pcr_read(&resp).unwrap();
        assert_eq!(r.update_counter, 0x11);
        assert_eq!(r.pcrs, vec![0, 1]);
        assert_eq!(r.digests, vec![vec![0x11; 32], vec![0x22; 32]]);
        for n in 0..resp.len() {
            assert!(parse_pcr_read(&resp[..n]).is_err());
        }
    }
}
