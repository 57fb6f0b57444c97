//! berth keeps a Docker or Podman host in the state that YAML manifests declare.
//!
//! # Layout
//!
//! - [`api`]: the resource model: six kinds under `berth.dev/v1alpha1`, their
//!   validation and defaults.
//! - [`manifest`]: reading manifest files and directories with
//!   `file:line:column` errors, and generating CRDs and JSON Schemas.
//! - [`store`]: the sled store of desired objects, status, sources and the
//!   event log, with compare-and-swap writes and a watch stream.
//! - [`engine`]: the engine trait and its Docker and in-memory fake backends.
//! - [`controller`]: the reconcile runtime and one reconciler per kind.
//! - [`source`]: manifest directories into the store.
//! - [`ingress`]: MQTT, D-Bus and POSIX queue requests, encrypted and
//!   protobuf payloads, on the executor the REST API uses.
//! - [`endpoints`]: every running replica with its addresses and health,
//!   followed from the store and the engine; what DNS and the proxy serve.
//! - [`dns`]: the embedded DNS server (automatic and declared records,
//!   forwarding).
//! - [`proxy`]: the embedded HTTP reverse proxy driven by Routes.
//! - [`metrics`]: Prometheus metrics under controller-runtime's names, for
//!   `/metrics`.
//! - [`server`]: the REST API `berth serve` answers; [`client`]: its client.
//! - [`dashboard`]: the web dashboard at `/ui/` (live objects, events, a
//!   terminal in any replica).
//! - `daemon`: `berth serve`'s process, its subsystems wired from one
//!   checked configuration (crate-private: the CLI builds it).
//! - [`cli`]: the `berth` command line.
//! - [`backoff`]: the delays of every retry and reconnect loop.
//! - [`connections`]: timeouts and connection limits of every listener.

pub mod api;
pub mod backoff;
pub mod cli;
pub mod client;
pub mod connections;
pub mod controller;
mod daemon;
pub mod dashboard;
pub mod dns;
pub mod endpoints;
pub mod engine;
mod error_chain;
pub mod ingress;
pub mod manifest;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod source;
pub mod start_error;
pub mod store;
