//! Unit tests for the whole crate (one test binary).

mod ear;
mod fixtures;
mod fuzz;
mod jwt;
mod maa;
mod pipeline;
