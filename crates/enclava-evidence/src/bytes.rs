//! Bounds-checked reads of fixed-size fields from untrusted bytes: `None` when the input is too
//! short, never a panic (the crate denies indexing and unwrap outside tests).

/// The `N` bytes at `at`.
pub(crate) fn array_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The `n` bytes at `at`.
pub(crate) fn slice_at(b: &[u8], at: usize, n: usize) -> Option<&[u8]> {
    b.get(at..at.checked_add(n)?)
}

pub(crate) fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    array_at(b, at).map(u32::from_le_bytes)
}

pub(crate) fn u64_le(b: &[u8], at: usize) -> Option<u64> {
    array_at(b, at).map(u64::from_le_bytes)
}
