//! Shared helpers for integration tests.
#![allow(dead_code)]

pub mod fake_apiserver;
pub mod objects;
pub mod sink;
pub mod tls;
