//! The report in the formats other tools read: policy report objects for Kubernetes
//! dashboards, SARIF for CI code scanning.

pub mod policy_report;
pub mod sarif;
