//! `GET /ui/stats/{namespace}/{name}`: a Container's replicas' CPU,
//! memory, network and block I/O, live on its page, as Server-Sent Events
//! (`stats`, a JSON array, one entry per replica) every [`INTERVAL`].
//!
//! The engine is asked only while a page is open, and at most
//! [`MAX_STREAMS`] pages at once are followed, in the whole process (the
//! next gets one `problem` event saying so, and asks again in 30 s): each
//! sample costs the engine a stats call per replica. CPU is a percentage of
//! one core over the interval, from the difference of two samples; the
//! first sample has none.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::{Kind, ObjectKey};
use crate::engine::{labels, ContainerStats, Engine};
use crate::server::AppState;

/// Time between samples.
const INTERVAL: Duration = Duration::from_secs(2);
/// Pages followed at once.
pub const MAX_STREAMS: usize = 8;
/// Replicas sampled per page.
const MAX_REPLICAS: usize = 16;
/// When a refused page asks again.
const RETRY_REFUSED: Duration = Duration::from_secs(30);
/// How long one replica's sample may take.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(3);

static STREAMS: std::sync::LazyLock<Arc<Semaphore>> =
    std::sync::LazyLock::new(|| Arc::new(Semaphore::new(MAX_STREAMS)));

/// One replica's figures.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReplicaSample {
    replica: u32,
    /// Of one core, over the last interval; `None` on the first sample.
    cpu_percent: Option<f64>,
    memory_bytes: u64,
    memory_limit_bytes: u64,
    network_receive_bytes: u64,
    network_transmit_bytes: u64,
    block_read_bytes: u64,
    block_write_bytes: u64,
}

/// What a stream keeps between samples.
struct Sampler {
    engine: Arc<dyn Engine>,
    owner: std::collections::BTreeMap<String, String>,
    /// Per container id: CPU seconds and when they were read.
    previous: HashMap<String, (f64, Instant)>,
    /// Held as long as the stream lives.
    _permit: OwnedSemaphorePermit,
}

impl Sampler {
    async fn sample(&mut self) -> Event {
        let replicas = match self.engine.list_containers(&self.owner).await {
            Ok(replicas) => replicas,
            Err(error) => return Event::default().event("problem").data(format!("the engine did not answer: {error}")),
        };
        let mut replicas: Vec<(u32, String)> =
            replicas.into_iter().filter_map(|c| Some((c.labels.get(labels::REPLICA)?.parse().ok()?, c.id))).collect();
        replicas.sort();
        replicas.truncate(MAX_REPLICAS);
        let reads = replicas.iter().map(|(_, id)| tokio::time::timeout(SAMPLE_TIMEOUT, self.engine.stats(id)));
        let results = futures::future::join_all(reads).await;
        let now = Instant::now();
        let mut samples = Vec::new();
        let mut previous = HashMap::new();
        for ((replica, id), result) in replicas.into_iter().zip(results) {
            let Ok(Ok(stats)) = result else { continue };
            let cpu_percent = self.previous.get(&id).and_then(|(seconds, at)| {
                let wall = now.duration_since(*at).as_secs_f64();
                (wall > 0.0).then(|| ((stats.cpu_seconds - seconds).max(0.0) / wall * 100.0 * 10.0).round() / 10.0)
            });
            previous.insert(id, (stats.cpu_seconds, now));
            samples.push(of(replica, cpu_percent, &stats));
        }
        self.previous = previous;
        Event::default().event("stats").data(serde_json::to_string(&samples).unwrap_or_default())
    }
}

fn of(replica: u32, cpu_percent: Option<f64>, stats: &ContainerStats) -> ReplicaSample {
    ReplicaSample {
        replica,
        cpu_percent,
        memory_bytes: stats.memory_bytes,
        memory_limit_bytes: stats.memory_limit_bytes,
        network_receive_bytes: stats.network_receive_bytes,
        network_transmit_bytes: stats.network_transmit_bytes,
        block_read_bytes: stats.block_read_bytes,
        block_write_bytes: stats.block_write_bytes,
    }
}

/// A stream of one `problem` event: a browser shows it (an EventSource
/// never shows an error status's body), and comes back after a while.
fn refused(message: String) -> Response {
    let event = Event::default().event("problem").retry(RETRY_REFUSED).data(message);
    Sse::new(stream::once(async { Ok::<Event, Infallible>(event) })).into_response()
}

/// The handler.
pub(super) async fn follow(State(state): State<AppState>, Path((namespace, name)): Path<(String, String)>) -> Response {
    let Some(connected) = state.engine.get() else {
        return refused("the engine is not connected yet".into());
    };
    let Ok(permit) = STREAMS.clone().try_acquire_owned() else {
        return refused(format!("{MAX_STREAMS} pages show replica usage already; close one and reload this one"));
    };
    let key = ObjectKey::new(Kind::Container, &namespace, &name);
    let sampler = Sampler {
        engine: connected.ctx.engine.clone(),
        owner: labels::owner_labels(&connected.ctx.instance, &key),
        previous: HashMap::new(),
        _permit: permit,
    };
    let samples = stream::unfold((sampler, true), |(mut sampler, first)| async move {
        if !first {
            tokio::time::sleep(INTERVAL).await;
        }
        let event = sampler.sample().await;
        Some((Ok::<Event, Infallible>(event), (sampler, false)))
    });
    Sse::new(samples.boxed()).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
