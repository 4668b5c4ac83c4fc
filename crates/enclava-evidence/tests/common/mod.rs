//! Where the real hardware vectors live. Tests read them in place (never copied into the repo).
#![allow(dead_code)]

pub use enclava_testvectors::read;
