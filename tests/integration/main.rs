//! Integration tests of berth, in one binary.
//!
//! - `bad_manifests`: the catalogue of rejected manifests and their positions.
//! - `api_strict`: dry runs (`true`, `All`) on every write change nothing;
//!   unknown query parameters are refused everywhere.
//! - `hostile_yaml`: alias and merge-key bombs, 10,000 documents, deep
//!   nesting and huge strings refused through every entry point, in bounded memory.
//! - `limits`: idle connections cannot starve the API or the proxy of a real `berth serve`.
//! - `loading`: manifests that load (examples, directories, multi-document files).
//! - `fuzz`: arbitrary bytes and YAML never make the loader panic.
//! - `store`: compare-and-swap, generations, atomicity, durability, the lock.
//! - `generated`: `crds/` and the README reference match the types.
//! - `cli`: the `berth` binary's offline commands and exit codes.
//! - `envelope_cli`: `berth keygen`, `encrypt` and `decrypt` against an
//!   independent Python implementation of the envelope
//!   (`tests/clients/envelope.py`): interop both ways, tampering, wrong
//!   keys and channels, rotation, keyring permissions.
//! - `controller`: the controller on the fake engine (convergence, crash-resume, drift).
//! - `proxy`: the HTTP proxy against in-process backends (balancing,
//!   precedence, headers, upgrades, streaming, retry, 404/503).
//! - `metrics`: what the controller's metrics say about reconciles on the fake engine.
//! - `dir_source`: watched manifest directories on real files.
//! - `dir_model`: random file operations on a watched directory against a
//!   model (moves, renames, splits, invalid edits), with the fake engine.
//! - `git_source`: the git source on repositories the tests make (file://
//!   and HTTP through `git http-backend`), its webhooks and `/sources`.
//! - `dns`: the DNS server over real sockets (records, conflicts, updates,
//!   forwarding, malformed packets).
//! - `e2e`: the `berth serve` binary on real Docker and Podman (the
//!   examples converge; edits, deletions, drift, a crash and an invalid
//!   file), one scenario list per engine (`e2e::podman::...`).
//! - `engines`: the two-engine smoke test (real Docker and Podman).
//! - `outage`: `berth serve` on a private dockerd that the test stops and
//!   starts again (the API answers, CPU and log stay bounded, the stack
//!   converges when the engine returns).
//! - `conformance`: what every `Engine` backend must do, one test per check
//!   and engine (`conformance::docker::...`).
//! - `mqtt`, `dbus`, `message_queue`, `rest_payloads`: the ways in against
//!   real peers (a private mosquitto with mosquitto_pub/sub and a paho
//!   MQTT 5 client; a private dbus-daemon with busctl and gdbus; a Python
//!   posix_ipc client; a Python REST client), with protobuf and encrypted
//!   payloads made by Python's `protobuf` and `cryptography`; one MQTT case
//!   on real Docker.
//! - `dashboard`: the web dashboard in Debian's Chromium (playwright-core)
//!   on real Docker; its login and origin rules over raw HTTP.
//! - `exec`: `berth exec` on real Docker and Podman (streams, exit codes,
//!   stdin, a terminal through a real pty); the exec WebSocket's refusals
//!   and session bound on the fake engine.
//! - `actions`: `berth restart`, `suspend` and `resume` on the fake engine with
//!   a watched file (a suspension holds against its edits), refusals.
//! - `layout`: no two files of a module use each other around a circle.

mod support;

mod actions;
mod api;
mod api_cli;
mod api_patch;
mod api_strict;
mod bad_manifests;
mod cli;
mod clients;
mod conformance;
mod controller;
mod crash_loop;
mod dashboard;
mod dbus;
mod dir_model;
mod dir_source;
mod dns;
mod e2e;
mod engines;
mod envelope_cli;
mod exec;
mod fuzz;
mod generated;
mod git_source;
mod hostile_yaml;
mod kube_rs;
mod kubectl;
mod layout;
mod limits;
mod loading;
mod message_queue;
mod metrics;
mod mqtt;
mod outage;
mod policy;
mod proxy;
mod rest_payloads;
mod store;
