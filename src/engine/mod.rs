//! What berth sends to container engines.
//!
//! For now this is the [`build_context`] module: the in-memory tar that an
//! image build sends to Docker or Podman. The `Engine` trait and its Docker,
//! Podman and fake backends come later and build on it.

pub mod build_context;
