//! Where the real hardware vectors live (enclava-testvectors). Tests read
//! them in place (never copied into the repo).
#![allow(dead_code)]

pub mod svc;

pub use enclava_testvectors::read;
