//! What the ingress transports record: each request's outcome and time.

use std::time::Duration;

use super::families::{IngressLabels, TransportLabels};
use super::Metrics;

impl Metrics {
    /// Records one request on `transport`: whether it succeeded, whether
    /// it could not even be opened (a bad envelope, key, channel, replay,
    /// or plaintext where encryption is required), and how long it took.
    pub fn ingress_request(&self, transport: &'static str, ok: bool, undecryptable: bool, took: Duration) {
        let outcome = match (ok, undecryptable) {
            (_, true) => "undecryptable",
            (true, false) => "ok",
            (false, false) => "error",
        };
        let families = self.families();
        families.ingress_requests.get_or_create(&IngressLabels { transport, outcome }).inc();
        families.ingress_duration.get_or_create(&TransportLabels { transport }).observe(took.as_secs_f64());
    }
}
