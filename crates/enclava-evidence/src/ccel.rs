//! TDX CCEL (Confidential Computing Event Log) parsing and RTMR replay.
//!
//! - The ACPI `CCEL` table says where the log lives: header (36 bytes, signature "CCEL"), then
//!   CC type (u8, 2 = TDX), CC subtype (u8), reserved (u16), log area minimum length (u64), log
//!   area start address (u64). See [`parse_ccel_table`].
//! - The log is a TCG crypto-agile event log (little endian): a first `TCG_PCR_EVENT` record (SHA-1
//!   format) carrying the "Spec ID Event03" structure that lists the digest algorithms and sizes,
//!   then `TCG_PCR_EVENT2` records {mr_index u32, event_type u32, TPML_DIGEST_VALUES {count u32,
//!   {alg u16, digest}*}, event_size u32, event}. The log ends at a record whose index is
//!   0xffffffff (erased flash) or that is all zero, or at the end of the data.
//! - CC measurement register index 0 is MRTD (not logged here), 1..4 are RTMR0..3. Each event's
//!   SHA-384 digest extends its RTMR: `RTMR = SHA-384(RTMR || digest)`, starting from zeros.
//!   `EV_NO_ACTION` events are informational and extend nothing.

use serde::{Deserialize, Serialize};
use sha2::Digest;
use thiserror::Error;

pub const EV_NO_ACTION: u32 = 0x0000_0003;
pub const TPM_ALG_SHA384: u16 = 0x000c;
const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
/// More algorithms than this in the Spec ID event is not a real log.
const MAX_ALGORITHMS: u32 = 16;

#[derive(Debug, Error)]
pub enum CcelError {
    #[error("malformed event log: {0}")]
    Malformed(String),
    #[error("malformed CCEL table: {0}")]
    MalformedTable(String),
    #[error("RTMR{rtmr} mismatch: the quote has {expected}, the event log replays to {found}")]
    RtmrMismatch {
        rtmr: usize,
        expected: String,
        found: String,
    },
}

impl crate::error::FailedCheck for CcelError {
    fn failed_check(&self) -> &'static str {
        match self {
            CcelError::Malformed(_) => "malformed_event_log",
            CcelError::MalformedTable(_) => "malformed_ccel_table",
            CcelError::RtmrMismatch { .. } => "rtmr_mismatch",
        }
    }
}

/// The ACPI CCEL table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcelTable {
    pub revision: u8,
    pub oem_id: String,
    pub cc_type: u8,
    pub cc_subtype: u8,
    pub log_area_minimum_length: u64,
    pub log_area_start_address: u64,
}

/// Parse the ACPI CCEL table (checksum included).
pub fn parse_ccel_table(table: &[u8]) -> Result<CcelTable, CcelError> {
    let bad = |m: String| CcelError::MalformedTable(m);
    // The fixed 56-byte header; constant offsets into it cannot be out of bounds.
    let Some(head) = table.first_chunk::<56>() else {
        return Err(bad(format!("{} bytes, expected at least 56", table.len())));
    };
    if &head[0..4] != b"CCEL" {
        return Err(bad(format!(
            "signature is {:?}, expected \"CCEL\"",
            String::from_utf8_lossy(&head[0..4])
        )));
    }
    let length = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if length < 56 || length > table.len() {
        return Err(bad(format!(
            "length field is {length}, the table is {} bytes",
            table.len()
        )));
    }
    let sum = table
        .iter()
        .take(length)
        .fold(0u8, |a, &b| a.wrapping_add(b));
    if sum != 0 {
        return Err(bad(format!(
            "checksum does not add up to zero (sum {sum:#04x})"
        )));
    }
    let u64_at = |o: usize| crate::bytes::u64_le(head, o).unwrap_or_default();
    Ok(CcelTable {
        revision: head[8],
        oem_id: String::from_utf8_lossy(&head[10..16])
            .trim_end()
            .to_string(),
        cc_type: head[36],
        cc_subtype: head[37],
        log_area_minimum_length: u64_at(40),
        log_area_start_address: u64_at(48),
    })
}

/// One `TCG_PCR_EVENT2` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// CC measurement register index: 1..4 = RTMR0..3.
    pub mr_index: u32,
    pub event_type: u32,
    /// The SHA-384 digest (hex).
    pub digest_sha384: String,
    /// The event data (hex).
    pub data: String,
}

impl Event {
    /// The RTMR this event extends (None for `EV_NO_ACTION`).
    pub fn rtmr(&self) -> Option<usize> {
        if self.event_type == EV_NO_ACTION {
            return None;
        }
        (1..=4)
            .contains(&self.mr_index)
            .then(|| self.mr_index as usize - 1)
    }
}

/// A parsed and replayed event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLog {
    pub events: Vec<Event>,
    /// RTMR0..3 as replayed from the events (hex).
    pub rtmrs: [String; 4],
}

struct Le<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Le<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CcelError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                CcelError::Malformed(format!(
                    "truncated at offset {}: needed {n} bytes, {} left",
                    self.pos,
                    self.remaining()
                ))
            })?;
        let s = self.b.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CcelError> {
        let b = self.take(N)?;
        // `take` returned exactly N bytes.
        Ok(b.try_into().unwrap_or([0; N]))
    }
    fn u8(&mut self) -> Result<u8, CcelError> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, CcelError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, CcelError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.pos)
    }
    /// The next `n` bytes without consuming them.
    fn peek(&self, n: usize) -> Option<&'a [u8]> {
        crate::bytes::slice_at(self.b, self.pos, n)
    }
}

/// Parse the event log (the CCEL log area) and replay its SHA-384 digests into RTMR0..3.
pub fn replay(event_log: &[u8]) -> Result<EventLog, CcelError> {
    let bad = |m: String| CcelError::Malformed(m);
    let mut r = Le {
        b: event_log,
        pos: 0,
    };

    // First record: TCG_PCR_EVENT with the Spec ID event.
    let _pcr = r.u32()?;
    let first_type = r.u32()?;
    if first_type != EV_NO_ACTION {
        return Err(bad(format!(
            "first event type is {first_type:#x}, expected EV_NO_ACTION (Spec ID event)"
        )));
    }
    let _sha1 = r.take(20)?;
    let size = r.u32()? as usize;
    let spec = r.take(size)?;
    let mut s = Le { b: spec, pos: 0 };
    if s.take(16)? != SPEC_ID_SIGNATURE {
        return Err(bad("first event is not a \"Spec ID Event03\" event".into()));
    }
    let _platform_class = s.u32()?;
    let _minor = s.u8()?;
    let _major = s.u8()?;
    let _errata = s.u8()?;
    let _uintn = s.u8()?;
    let n_algs = s.u32()?;
    if n_algs == 0 || n_algs > MAX_ALGORITHMS {
        return Err(bad(format!("Spec ID event lists {n_algs} algorithms")));
    }
    let mut sizes: Vec<(u16, usize)> = Vec::new();
    for _ in 0..n_algs {
        let alg = s.u16()?;
        let size = s.u16()? as usize;
        sizes.push((alg, size));
    }
    if !sizes.contains(&(TPM_ALG_SHA384, 48)) {
        return Err(bad("Spec ID event does not list SHA-384 (48 bytes)".into()));
    }

    let mut events = Vec::new();
    let mut rtmrs = [[0u8; 48]; 4];
    while r.remaining() >= 8 {
        let head = r.peek(8).unwrap_or_default();
        if head.starts_with(&[0xff; 4]) || head == [0u8; 8] {
            break;
        }
        let mr_index = r.u32()?;
        let event_type = r.u32()?;
        let count = r.u32()?;
        if count == 0 || count > n_algs {
            return Err(bad(format!(
                "event at offset {} has {count} digests",
                r.pos.saturating_sub(12)
            )));
        }
        let mut sha384 = None;
        for _ in 0..count {
            let alg = r.u16()?;
            let size = sizes
                .iter()
                .find(|(a, _)| *a == alg)
                .map(|(_, s)| *s)
                .ok_or_else(|| {
                    bad(format!(
                        "digest algorithm {alg:#06x} is not in the Spec ID event"
                    ))
                })?;
            let d = r.take(size)?;
            if alg == TPM_ALG_SHA384 {
                sha384 = Some(d);
            }
        }
        let digest = sha384.ok_or_else(|| bad("event without a SHA-384 digest".into()))?;
        let size = r.u32()? as usize;
        let data = r.take(size)?;
        let event = Event {
            mr_index,
            event_type,
            digest_sha384: hex::encode(digest),
            data: hex::encode(data),
        };
        if event_type != EV_NO_ACTION {
            let i = event.rtmr().ok_or_else(|| {
                bad(format!(
                    "event extends MR index {mr_index}, expected 1 to 4 (RTMR0..3)"
                ))
            })?;
            // `rtmr()` is 0..=3, the bounds of `rtmrs`.
            if let Some(rtmr) = rtmrs.get_mut(i) {
                let mut h = sha2::Sha384::new();
                h.update(*rtmr);
                h.update(digest);
                rtmr.copy_from_slice(&h.finalize());
            }
        }
        events.push(event);
    }
    Ok(EventLog {
        events,
        rtmrs: rtmrs.map(hex::encode),
    })
}

/// `rtmr_mismatch` unless the replayed RTMRs equal the quote's.
pub fn check_against(rtmrs_from_quote: [[u8; 48]; 4], log: &EventLog) -> Result<(), CcelError> {
    for (i, (quoted, replayed)) in rtmrs_from_quote.iter().zip(&log.rtmrs).enumerate() {
        let quoted = hex::encode(quoted);
        if &quoted != replayed {
            return Err(CcelError::RtmrMismatch {
                rtmr: i,
                expected: quoted,
                found: replayed.clone(),
            });
        }
    }
    Ok(())
}
