//! Shared helpers of the integration tests.

use std::path::PathBuf;

pub mod api;
pub mod controller;
pub mod engines;
pub mod git;
pub mod private_dockerd;
pub mod serve;
pub mod served;

/// A path inside the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}
