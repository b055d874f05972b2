//! spreadguard: a Kubernetes admission webhook that keeps workloads alive through the loss
//! of a zone.
//!
//! The [`engine`] is pure and shared by the webhook and `spreadguard audit`; everything else
//! is I/O at its edge. [`cmd`] holds one thin shell per subcommand.

pub mod admission;
pub mod allocator;
pub mod audit;
pub mod certs;
pub mod cluster;
pub mod cmd;
pub mod engine;
pub mod errors;
pub mod load;
pub mod metrics;
pub mod output;
pub mod parallel;
pub mod policy_file;
pub mod reports;
pub mod server;
pub mod telemetry;
pub mod topology_report;
