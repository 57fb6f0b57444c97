//! Shared helpers of the integration tests.

use std::path::PathBuf;

pub mod api;
pub mod broker;
pub mod bus;
pub mod controller;
pub mod engines;
pub mod git;
pub mod ingress;
pub mod private_dockerd;
pub mod serve;
pub mod served;
pub mod tools;

/// A path inside the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}
