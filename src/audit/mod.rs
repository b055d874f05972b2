//! What `spreadguard audit` computes: the report over manifests (or a live cluster's
//! objects, read by [`cluster`]), with each workload's decision and the outcome the webhook
//! would answer.

pub mod cluster;
pub mod formats;
pub mod lists;
pub mod pods;
mod report;
pub mod watched;
pub mod zone_loss;

pub use self::report::{Entry, Live, Origin, Report, Scan, SkippedKind, Summary, Verdict};
pub use crate::load::Sourced;
