//! What `spreadguard audit` computes: the report over manifests (or a live cluster's
//! objects, read by [`cluster`]), with each workload's decision and the outcome the webhook
//! would answer.

pub mod cluster;
mod report;

pub use self::report::{Entry, Report, SkippedKind, Summary, Verdict};
pub use crate::load::Sourced;
