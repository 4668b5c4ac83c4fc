//! The SPDM 1.1 GET_MEASUREMENTS transcript an NVIDIA GPU or NVSwitch returns as its attestation
//! report (DMTF DSP0274 1.1.0 sections 10.11-10.12; NVIDIA's opaque-data TLVs as its verifiers
//! decode them).
//!
//! Layout: the 37-byte request (`11 e0 01 ff`, nonce[32], slot id) followed by the response
//! (`11 60 00 00`, NumberOfBlocks u8, MeasurementRecordLength u24 LE, the measurement blocks,
//! responder nonce[32], OpaqueLength u16 LE, opaque data, signature[96]). Each measurement block is
//! `Index u8, MeasurementSpecification u8 (1 = DMTF), MeasurementSize u16 LE` followed by the DMTF
//! measurement `ValueType u8, ValueSize u16 LE, Value`. The opaque data is a sequence of TLVs
//! `type u16 LE, length u16 LE, value`.
//!
//! The signature (ECDSA P-384, raw r||s) covers SHA-384 of request || response-without-signature;
//! [`SpdmReport::signed`] is exactly those bytes. Bytes after the signature are not signed: one
//! recorded report (trustee's `hopper_coco_report1`) carries one such byte, so they are accepted,
//! counted in `trailing_bytes`, and never read.

use super::NvidiaError;

pub const REQUEST_LEN: usize = 37;
pub const NONCE_LEN: usize = 32;
pub const SIGNATURE_LEN: usize = 96;
/// Bytes past the signature that are tolerated (unsigned, never read).
const MAX_TRAILING: usize = 16;

/// Opaque-data field types (NVIDIA's `OpaqueDataField` ids).
pub mod opaque {
    pub const DRIVER_VERSION: u16 = 3;
    pub const GPU_INFO: u16 = 4;
    pub const VBIOS_VERSION: u16 = 6;
    pub const NVDEC0_STATUS: u16 = 11;
    pub const MSRSCNT: u16 = 12;
    pub const CPRINFO: u16 = 13;
    pub const BOARD_ID: u16 = 14;
    pub const CHIP_SKU: u16 = 15;
    pub const CHIP_SKU_MOD: u16 = 16;
    pub const PROJECT: u16 = 17;
    pub const PROJECT_SKU: u16 = 18;
    pub const PROJECT_SKU_MOD: u16 = 19;
    pub const FWID: u16 = 20;
    pub const PROTECTED_PCIE_STATUS: u16 = 21;
    pub const SWITCH_PDI: u16 = 22;
    pub const FLOORSWEPT_PORTS: u16 = 23;
    pub const SWITCH_POSITION_ID: u16 = 24;
    pub const SWITCH_LOCK_STATUS: u16 = 25;
    pub const SWITCH_GPU_PDIS: u16 = 26;
}

/// One DMTF measurement block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementBlock {
    /// The block index (1-based; compared with RIM `index` = this minus one).
    pub index: u8,
    /// DMTFSpecMeasurementValueType.
    pub value_type: u8,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpaqueField {
    pub field_type: u16,
    pub value: Vec<u8>,
}

/// A parsed GET_MEASUREMENTS request + response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpdmReport {
    /// The requester's nonce (what the verifier chose).
    pub request_nonce: [u8; NONCE_LEN],
    pub slot_id: u8,
    pub number_of_blocks: u8,
    pub blocks: Vec<MeasurementBlock>,
    /// The responder's nonce.
    pub response_nonce: [u8; NONCE_LEN],
    pub opaque: Vec<OpaqueField>,
    /// Raw r || s.
    pub signature: [u8; SIGNATURE_LEN],
    /// request || response up to (excluding) the signature: what the signature covers.
    pub signed: Vec<u8>,
    pub trailing_bytes: usize,
}

fn malformed(reason: String) -> NvidiaError {
    NvidiaError::MalformedReport(reason)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], NvidiaError> {
        let s = crate::bytes::slice_at(self.b, self.pos, n).ok_or_else(|| {
            malformed(format!(
                "{what}: expected {n} bytes at offset {}, found {}",
                self.pos,
                self.b.len().saturating_sub(self.pos)
            ))
        })?;
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, NvidiaError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or_default())
    }

    fn u16(&mut self, what: &str) -> Result<u16, NvidiaError> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([
            s.first().copied().unwrap_or_default(),
            s.get(1).copied().unwrap_or_default(),
        ]))
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], NvidiaError> {
        let s = self.take(N, what)?;
        s.try_into()
            .map_err(|_| malformed(format!("{what}: expected {N} bytes")))
    }
}

fn expect_bytes(found: &[u8], expected: &[u8], what: &str) -> Result<(), NvidiaError> {
    if found == expected {
        Ok(())
    } else {
        Err(malformed(format!(
            "{what}: expected {}, found {}",
            hex::encode(expected),
            hex::encode(found)
        )))
    }
}

/// Parse an attestation report (binary). Structure only: nothing is verified here.
pub fn parse(report: &[u8]) -> Result<SpdmReport, NvidiaError> {
    let mut r = Reader { b: report, pos: 0 };
    // Request: SPDM 1.1, GET_MEASUREMENTS, Param1 bit 0 = signature requested, Param2 0xFF = all
    // measurements.
    expect_bytes(
        r.take(4, "request header")?,
        &[0x11, 0xE0, 0x01, 0xFF],
        "request header (SPDM 1.1 GET_MEASUREMENTS, signed, all blocks)",
    )?;
    let request_nonce = r.array::<NONCE_LEN>("request nonce")?;
    let slot_id = r.u8("request slot id")?;
    // Response: SPDM 1.1 MEASUREMENTS; Param1 (number of indices) is 0 for "all", Param2 holds the
    // slot id in its low nibble.
    expect_bytes(
        r.take(2, "response header")?,
        &[0x11, 0x60],
        "response header (SPDM 1.1 MEASUREMENTS)",
    )?;
    let _param1 = r.u8("response param1")?;
    let param2 = r.u8("response param2")?;
    if param2 & 0x0F != slot_id & 0x0F {
        return Err(malformed(format!(
            "response slot id: expected {}, found {}",
            slot_id & 0x0F,
            param2 & 0x0F
        )));
    }
    let number_of_blocks = r.u8("NumberOfBlocks")?;
    let len_bytes = r.take(3, "MeasurementRecordLength")?;
    let record_len = len_bytes
        .iter()
        .rev()
        .fold(0usize, |acc, b| (acc << 8) | *b as usize);
    let record = r.take(record_len, "measurement record")?;
    let mut blocks = Vec::with_capacity(number_of_blocks as usize);
    let mut m = Reader { b: record, pos: 0 };
    while m.pos < record.len() {
        let index = m.u8("measurement block index")?;
        let spec = m.u8("MeasurementSpecification")?;
        if spec != 1 {
            return Err(malformed(format!(
                "measurement block {index}: expected MeasurementSpecification 1 (DMTF), found {spec}"
            )));
        }
        let size = m.u16("MeasurementSize")? as usize;
        let body = m.take(size, "measurement")?;
        let mut d = Reader { b: body, pos: 0 };
        let value_type = d.u8("DMTFSpecMeasurementValueType")?;
        let value_size = d.u16("DMTFSpecMeasurementValueSize")? as usize;
        let value = d.take(value_size, "DMTFSpecMeasurementValue")?;
        if d.pos != body.len() {
            return Err(malformed(format!(
                "measurement block {index}: MeasurementSize {size} but the DMTF measurement is {} bytes",
                d.pos
            )));
        }
        if blocks.iter().any(|b: &MeasurementBlock| b.index == index) {
            return Err(malformed(format!(
                "measurement block index {index} appears twice"
            )));
        }
        if index == 0 {
            return Err(malformed(
                "measurement block index 0 (indices are 1-based)".into(),
            ));
        }
        blocks.push(MeasurementBlock {
            index,
            value_type,
            value: value.to_vec(),
        });
    }
    if blocks.len() != number_of_blocks as usize {
        return Err(malformed(format!(
            "NumberOfBlocks: expected {number_of_blocks} blocks, found {} in the record",
            blocks.len()
        )));
    }
    let response_nonce = r.array::<NONCE_LEN>("response nonce")?;
    let opaque_len = r.u16("OpaqueLength")? as usize;
    let opaque_bytes = r.take(opaque_len, "opaque data")?;
    let mut opaque = Vec::new();
    let mut o = Reader {
        b: opaque_bytes,
        pos: 0,
    };
    while o.pos < opaque_bytes.len() {
        let field_type = o.u16("opaque field type")?;
        let len = o.u16("opaque field length")? as usize;
        let value = o.take(len, "opaque field value")?;
        if opaque
            .iter()
            .any(|f: &OpaqueField| f.field_type == field_type)
        {
            return Err(malformed(format!(
                "opaque field type {field_type} appears twice"
            )));
        }
        opaque.push(OpaqueField {
            field_type,
            value: value.to_vec(),
        });
    }
    let signed_len = r.pos;
    let signature = r.array::<SIGNATURE_LEN>("signature")?;
    let trailing_bytes = report.len() - r.pos;
    if trailing_bytes > MAX_TRAILING {
        return Err(malformed(format!(
            "expected the report to end after the signature (at most {MAX_TRAILING} unsigned \
             bytes tolerated), found {trailing_bytes} more bytes"
        )));
    }
    Ok(SpdmReport {
        request_nonce,
        slot_id,
        number_of_blocks,
        blocks,
        response_nonce,
        opaque,
        signature,
        signed: report.get(..signed_len).unwrap_or_default().to_vec(),
        trailing_bytes,
    })
}

impl SpdmReport {
    pub fn field(&self, t: u16) -> Option<&[u8]> {
        self.opaque
            .iter()
            .find(|f| f.field_type == t)
            .map(|f| f.value.as_slice())
    }

    /// A NUL-terminated (or NUL-padded) ASCII field.
    pub fn text_field(&self, t: u16) -> Option<String> {
        let v = self.field(t)?;
        let end = v.iter().position(|c| *c == 0).unwrap_or(v.len());
        let s = v.get(..end)?;
        (s.iter().all(|c| c.is_ascii_graphic() || *c == b' '))
            .then(|| String::from_utf8_lossy(s).into_owned())
    }

    pub fn driver_version(&self) -> Option<String> {
        self.text_field(opaque::DRIVER_VERSION)
    }

    /// VBIOS (GPU) or BIOS (NVSwitch) version as NVIDIA prints it: GPUs carry 8 bytes b0..b7 shown
    /// as `b3.b2.b1.b0.b4` in upper-case hex; NVSwitches carry the ASCII text.
    pub fn vbios_version(&self) -> Option<String> {
        let v = self.field(opaque::VBIOS_VERSION)?;
        if let [b0, b1, b2, b3, b4, _, _, _] = v {
            return Some(format!("{b3:02X}.{b2:02X}.{b1:02X}.{b0:02X}.{b4:02X}"));
        }
        self.text_field(opaque::VBIOS_VERSION)
    }

    pub fn measurement(&self, index: u8) -> Option<&MeasurementBlock> {
        self.blocks.iter().find(|b| b.index == index)
    }
}
