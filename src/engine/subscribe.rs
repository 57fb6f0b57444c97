//! Opening the engine's event stream, again and again, as the followers of
//! the engine (the controller's and the endpoint set's) do.
//!
//! Docker's `events()` succeeds without asking the daemon (the request goes
//! out when the stream is first polled), so after a stream dropped the
//! engine is pinged first: otherwise every attempt of an outage would look
//! like a reconnection, with its relist or resync against a dead engine
//! and its log lines. Attempts back off with [`RECONNECT`], capped at 2 s:
//! the cap is how long a returned engine may go unnoticed.

use std::time::Duration;

use futures::stream::BoxStream;

use super::{Engine, EngineEvent, Result};
use crate::backoff::{Backoff, Reconnect};

/// Between attempts: 800 ms doubling to 2 s, jittered. The cap bounds how
/// long a returned engine goes unnoticed, and with it how long after its
/// return the stack converges (within 5 s is what berth promises). An
/// attempt is one request to the engine, and [`Reconnect`] logs one attempt
/// in ten at the cap, so a long outage costs no CPU and a log line every
/// 15 s or so.
pub const RECONNECT: Backoff = Backoff::new(Duration::from_millis(800), Duration::from_secs(2));

/// The engine's event stream, once the engine answers; `after_drop` when a
/// stream was open before (the engine is pinged first then). Failed
/// attempts are counted, waited out and logged by `reconnect`.
pub async fn subscribe(
    engine: &dyn Engine,
    reconnect: &mut Reconnect,
    after_drop: bool,
) -> BoxStream<'static, Result<EngineEvent>> {
    loop {
        let attempt = async {
            if after_drop {
                engine.info().await?;
            }
            engine.events().await
        };
        match attempt.await {
            Ok(stream) => return stream,
            Err(e) => {
                let delay = reconnect.failed(&format_args!("{e:#}"));
                tokio::time::sleep(delay).await;
            }
        }
    }
}
