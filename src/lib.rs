//! spreadguard: a Kubernetes admission webhook that keeps workloads alive through the loss
//! of a zone.
//!
//! The [`engine`] is pure and shared by the webhook and `spreadguard audit`; everything else
//! is I/O at its edge.

pub mod admission;
pub mod allocator;
pub mod audit;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod engine;
pub mod manifests;
pub mod metrics;
pub mod nodes;
pub mod output;
pub mod policy;
pub mod server;
pub mod telemetry;
pub mod topology_command;
