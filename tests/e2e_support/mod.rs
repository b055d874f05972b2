//! The e2e test bed: a real control plane (etcd, kube-apiserver, kube-scheduler,
//! kube-controller-manager built from Kubernetes' Go modules by scripts/controlplane.sh),
//! Nodes without kubelets, and spreadguard registered through the Helm chart. See the README,
//! "Testing against a real control plane".
#![allow(dead_code)]

pub mod api;
pub mod bed;
pub mod chart;
pub mod kubectl;
pub mod objects;
pub mod procs;
pub mod shared;
pub mod spreadguard;
pub mod tls;
pub mod wait;
pub mod webhook;
