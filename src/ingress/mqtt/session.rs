//! One berth's session with the broker: the event loop (connect,
//! subscribe, reconnect with backoff), the worker that executes commands
//! in arrival order and answers each, and the retained online flag.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Filter, LastWill, Packet, Publish, PublishProperties, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::{mpsc, watch};

use crate::backoff::{Reconnect, HEALTHY_FOR};
use crate::ingress::execute::Ingress;
use crate::ingress::message::{Answer, ApplyOptions, Handler, Message, Transport};
use crate::server::ApiError;
use crate::store::Store;

use super::args::MqttConfig;
use super::status;
use super::topics::Topics;

/// How many commands the broker may have in flight to berth (MQTT 5
/// receive maximum): unacknowledged commands wait at the broker, not here.
const RECEIVE_MAXIMUM: u16 = 16;

/// How long the broker keeps berth's session (its subscription and the
/// QoS 1 commands sent meanwhile) while berth is away.
const SESSION_EXPIRY_SECS: u32 = 3600;

fn options(config: &MqttConfig, topics: &Topics) -> MqttOptions {
    let mut options = MqttOptions::new(config.client_id.clone(), config.host.clone(), config.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_start(false)
        .set_session_expiry_interval(Some(SESSION_EXPIRY_SECS))
        .set_receive_maximum(Some(RECEIVE_MAXIMUM))
        .set_max_packet_size(Some(config.max_packet))
        .set_manual_acks(true)
        .set_last_will(LastWill::new(topics.online(), "offline", QoS::AtLeastOnce, true, None));
    // Commands and replies are small and wait on each other: no Nagle delay.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    options.set_network_options(network);
    if let Some((user, password)) = &config.credentials {
        options.set_credentials(user.clone(), password.clone());
    }
    if let Some(roots) = &config.tls {
        options.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(
            tls_config(roots),
        ))));
    }
    options
}

fn tls_config(roots: &[rustls::pki_types::CertificateDer<'static>]) -> rustls::ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    let (_added, _ignored) = store.add_parsable_certificates(roots.iter().cloned());
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions")
        .with_root_certificates(store)
        .with_no_client_auth()
}

/// Serves commands from the broker `config` names until `stop`, then
/// says `offline` and disconnects.
pub(crate) async fn run(config: MqttConfig, ingress: Arc<Ingress>, store: Store, stop: impl Future<Output = ()>) {
    let topics = Topics::new(&config.node);
    let broker = format!("{}://{}:{}", if config.tls.is_some() { "mqtts" } else { "mqtt" }, config.host, config.port);
    tracing::info!(node = %config.node, client_id = %config.client_id, "MQTT commands on {} at {broker}", topics.commands());
    let (client, mut events) = AsyncClient::new(options(&config, &topics), 64);
    let (commands, queued) = mpsc::channel(usize::from(RECEIVE_MAXIMUM) * 2);
    let (connected, sessions) = watch::channel(0u64);
    let (retained_tx, retained) = mpsc::channel(1024);
    // The largest packet berth may send: its own limit, or the broker's if smaller.
    let max_send = Arc::new(AtomicU32::new(config.max_packet));
    let worker = Worker {
        client: client.clone(),
        topics: topics.clone(),
        ingress,
        broker: broker.clone(),
        max_send: max_send.clone(),
    };
    let work = tokio::spawn(worker.run(queued));
    let statuses =
        tokio::spawn(status::publish(client.clone(), topics.clone(), store, sessions, retained, max_send.clone()));
    let mut stop = std::pin::pin!(stop);
    let mut reconnect = Reconnect::new("MQTT broker");
    // A connection counts as working only once it stayed up a while: one
    // the broker drops at once (a packet it refuses) keeps backing off.
    let mut connected_at: Option<Instant> = None;
    loop {
        tokio::select! {
            () = &mut stop => break,
            polled = events.poll() => match polled {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    connected_at = Some(Instant::now());
                    let broker_max = ack.properties.and_then(|p| p.max_packet_size).unwrap_or(u32::MAX);
                    max_send.store(config.max_packet.min(broker_max), Ordering::Relaxed);
                    tracing::info!("MQTT connected to {broker}");
                    subscribe(&client, &topics);
                    connected.send_modify(|n| *n += 1);
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if publish.topic.starts_with(topics.statuses().trim_end_matches('#').as_bytes()) {
                        // A retained status the broker holds: stale ones are cleared.
                        let _ = retained_tx.try_send(publish.topic);
                    } else if let Err(error) = commands.try_send(publish) {
                        // Never wait here: this loop is what sends and pings.
                        // QoS 1 commands stay within the receive maximum; a
                        // flood of QoS 0 ones (at most once) is dropped.
                        match error {
                            mpsc::error::TrySendError::Full(dropped) => tracing::warn!(
                                "MQTT: {} commands are waiting; dropped one on {} (QoS {:?})",
                                commands.max_capacity(),
                                String::from_utf8_lossy(&dropped.topic),
                                dropped.qos
                            ),
                            mpsc::error::TrySendError::Closed(_) => break,
                        }
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    if connected_at.take().is_some_and(|at| at.elapsed() >= HEALTHY_FOR) {
                        reconnect.succeeded();
                    }
                    let delay = reconnect.failed(&format_args!("{broker}: {error}"));
                    tokio::select! {
                        () = &mut stop => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
    statuses.abort();
    work.abort();
    say_offline(&client, &topics, &mut events).await;
}

/// Subscribes to the commands and, once, to the retained statuses (to
/// clear those of objects that are gone). Queued without waiting: the
/// event loop that sends them is the caller.
fn subscribe(client: &AsyncClient, topics: &Topics) {
    let commands = Filter {
        path: topics.commands(),
        qos: QoS::AtLeastOnce,
        nolocal: true,
        // Keep the retain flag on live messages too, so that a retained
        // command is seen as one and refused.
        preserve_retain: true,
        retain_forward_rule: RetainForwardRule::OnEverySubscribe,
    };
    let statuses = Filter {
        path: topics.statuses(),
        qos: QoS::AtMostOnce,
        nolocal: true,
        preserve_retain: true,
        retain_forward_rule: RetainForwardRule::OnEverySubscribe,
    };
    if let Err(error) = client.try_subscribe_many([commands, statuses]) {
        tracing::warn!("MQTT: cannot subscribe: {error}");
    }
    if let Err(error) = client.try_publish(topics.online(), QoS::AtLeastOnce, true, "online") {
        tracing::warn!("MQTT: cannot publish {}: {error}", topics.online());
    }
}

/// Publishes `offline` (the will covers a crash; this is the clean way
/// out), disconnects, and drives the event loop until both are sent or a
/// second has passed.
async fn say_offline(client: &AsyncClient, topics: &Topics, events: &mut EventLoop) {
    if client.try_publish(topics.online(), QoS::AtLeastOnce, true, "offline").is_err() {
        return;
    }
    let _ = client.try_disconnect();
    let drained = async {
        while let Ok(event) = events.poll().await {
            if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
}

/// Executes commands one at a time, in the order they came.
struct Worker {
    client: AsyncClient,
    topics: Topics,
    ingress: Arc<Ingress>,
    broker: String,
    max_send: Arc<AtomicU32>,
}

impl Worker {
    async fn run(self, mut queued: mpsc::Receiver<Publish>) {
        while let Some(publish) = queued.recv().await {
            self.serve(publish).await;
        }
    }

    async fn serve(&self, publish: Publish) {
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        let properties = publish.properties.clone().unwrap_or_default();
        if publish.retain && publish.payload.is_empty() {
            // The broker telling a new subscriber that a retained command was cleared.
            let _ = self.client.ack(&publish).await;
            return;
        }
        let id = self.topics.reply_id(&topic);
        let answer = match self.message(&topic, &publish, &properties) {
            Ok(message) => self.ingress.handle(message).await,
            Err(error) => self.ingress.refuse(Transport::Mqtt, &format!("mqtt:{topic}"), error),
        };
        let reply_to = properties.response_topic.clone().unwrap_or_else(|| self.topics.reply(id.as_deref()));
        let answer = self.fitting(answer, &reply_to);
        let reply = PublishProperties {
            content_type: Some(answer.content_type.clone()),
            correlation_data: properties.correlation_data.clone(),
            user_properties: vec![("code".into(), answer.code.to_string())],
            ..Default::default()
        };
        if let Err(error) =
            self.client.publish_with_properties(reply_to, QoS::AtLeastOnce, false, answer.payload, reply).await
        {
            tracing::warn!("MQTT: cannot publish the reply to {topic}: {error}");
        }
        if publish.retain {
            // Clear it, so that no later subscriber receives it again.
            let _ = self.client.publish(topic, QoS::AtLeastOnce, true, Bytes::new()).await;
        }
        // Acknowledged once answered: a crash before this re-delivers it.
        if let Err(error) = self.client.ack(&publish).await {
            tracing::warn!("MQTT: cannot acknowledge a command: {error}");
        }
    }

    /// `answer`, or a 413 in its place when it would not fit a packet the
    /// broker takes (a QoS 1 publish it refuses would be sent again on
    /// every reconnect).
    fn fitting(&self, answer: Answer, topic: &str) -> Answer {
        let limit = self.max_send.load(Ordering::Relaxed) as usize;
        // Fixed header, topic, packet id and properties: 512 bytes is ample.
        if answer.payload.len() + topic.len() + 512 <= limit {
            return answer;
        }
        let error = ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "mqtt:{topic}: the request {} (code {}), but its reply is {} bytes, over the {limit}-byte packet \
                 limit (berth's --mqtt-max-packet or the broker's); ask for less (one object's status) or raise \
                 the limits",
                if answer.ok { "was executed" } else { "failed" },
                answer.code,
                answer.payload.len()
            ),
        );
        self.ingress.refuse(Transport::Mqtt, &format!("mqtt:{topic}"), error)
    }

    /// The message a publish carries, or why berth refuses it.
    fn message(&self, topic: &str, publish: &Publish, properties: &PublishProperties) -> Result<Message, ApiError> {
        if publish.retain {
            return Err(ApiError::bad_request(format!(
                "mqtt:{topic}: retained commands are refused (one would run again on every reconnect); \
                 publish without the retain flag (mosquitto_pub without -r); berth cleared it"
            )));
        }
        let command = self.topics.command(topic).map_err(ApiError::bad_request)?;
        let options = apply_options(topic, &properties.user_properties)?;
        Ok(Message {
            transport: Transport::Mqtt,
            channel: format!("mqtt:{topic}"),
            verb: Some(command.verb),
            options,
            content_type: properties.content_type.clone(),
            payload: publish.payload.to_vec(),
            sender: format!("a client of {}", self.broker),
            id: command.id,
        })
    }
}

/// The apply options MQTT 5 user properties give: `dryRun`, `force`
/// (`true`/`false`) and `source`; any other is an error.
fn apply_options(topic: &str, properties: &[(String, String)]) -> Result<ApplyOptions, ApiError> {
    let mut options = ApplyOptions::default();
    for (name, value) in properties {
        let flag = |value: &str| match value {
            "true" => Ok(true),
            "false" => Ok(false),
            other => {
                Err(ApiError::bad_request(format!("mqtt:{topic}: user property {name}={other}: give true or false")))
            }
        };
        match name.as_str() {
            "dryRun" => options.dry_run = flag(value)?,
            "force" => options.force = flag(value)?,
            "source" => options.source = Some(value.clone()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "mqtt:{topic}: user property `{other}` is not one berth reads; use dryRun, force or source"
                )))
            }
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_properties_are_the_apply_options_and_nothing_else() {
        let props = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter().map(|(a, b)| ((*a).to_string(), (*b).to_string())).collect()
        };
        let options = apply_options("t", &props(&[("dryRun", "true"), ("source", "fleet")])).unwrap();
        assert_eq!(options, ApplyOptions { dry_run: true, force: false, source: Some("fleet".into()) });
        assert!(apply_options("t", &props(&[("force", "yes")])).unwrap_err().message.contains("true or false"));
        assert!(apply_options("t", &props(&[("prune", "true")])).unwrap_err().message.contains("not one berth reads"));
    }
}
