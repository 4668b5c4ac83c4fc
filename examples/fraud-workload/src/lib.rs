//! Example Enclava workload: transparent rule-based card-fraud scoring.
//!
//! Reads `transactions.csv` from the input directory, writes `scores.csv` (flagged transactions,
//! their score and every rule's contribution) and `summary.json` (totals, rule hits and
//! per-merchant aggregates) to the output directory. Output is byte-for-byte deterministic and the
//! same whether the program runs natively or as WASI preview 1 WebAssembly.
//!
//! See [`score`] for the rules and [`generate`] for the synthetic dataset.

pub mod csv;
pub mod generate;
pub mod model;
pub mod report;
pub mod score;
