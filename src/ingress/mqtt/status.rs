//! Each object's status, kept retained on the broker: republished in full
//! on every (re)connection, then on every store change that alters it;
//! cleared (an empty retained message) when the object is deleted, and
//! when the broker holds the status of an object berth no longer has.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};

use crate::api::{AnyObject, Kind, ObjectKey};
use crate::ingress::execute::status_of;
use crate::store::{ChangeType, Store};

use super::topics::Topics;

/// Publishes statuses until the session ends. `sessions` counts broker
/// connections; `retained` are status topics the broker announced.
pub(crate) async fn publish(
    client: AsyncClient,
    topics: Topics,
    store: Store,
    mut sessions: watch::Receiver<u64>,
    mut retained: mpsc::Receiver<Bytes>,
    max_send: Arc<AtomicU32>,
) {
    let mut changes = store.watch();
    let mut published = Published { client, topics, last: HashMap::new(), max_send };
    loop {
        tokio::select! {
            changed = sessions.changed() => {
                if changed.is_err() {
                    return;
                }
                // A new session: the broker may have lost what it held.
                published.last.clear();
                published.all(&store).await;
            }
            change = changes.recv() => match change {
                Ok(change) if *sessions.borrow() > 0 => match change.change {
                    ChangeType::Deleted => published.clear(&change.object.key()).await,
                    _ => published.one(&change.object).await,
                },
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => published.all(&store).await,
                Err(RecvError::Closed) => return,
            },
            Some(topic) = retained.recv() => {
                let key = published.topics.status_key(&String::from_utf8_lossy(&topic));
                let gone = match &key {
                    Some(key) => matches!(store.get(key), Ok(None)),
                    None => true,
                };
                if gone {
                    let topic = String::from_utf8_lossy(&topic).into_owned();
                    let _ = published.client.publish(topic, QoS::AtLeastOnce, true, Bytes::new()).await;
                }
            }
        }
    }
}

/// What was last published per status topic, so that only changes go out.
struct Published {
    client: AsyncClient,
    topics: Topics,
    last: HashMap<String, Vec<u8>>,
    /// The largest packet the broker takes.
    max_send: Arc<AtomicU32>,
}

impl Published {
    async fn all(&mut self, store: &Store) {
        match store.list(None, None) {
            Ok(objects) => {
                for object in &objects {
                    self.one(object).await;
                }
            }
            Err(error) => tracing::warn!("MQTT status: cannot list the store: {error}"),
        }
    }

    async fn one(&mut self, object: &AnyObject) {
        let topic = self.topics.status(&object.key());
        let payload = serde_json::to_vec(&status_of(object)).unwrap_or_default();
        if self.last.get(&topic) == Some(&payload) {
            return;
        }
        if payload.len() + topic.len() + 512 > self.max_send.load(Ordering::Relaxed) as usize {
            // A retained publish the broker refuses would be sent again on
            // every reconnect: this status is left out, once per change.
            tracing::warn!("MQTT status: {topic} is {} bytes, over the packet limit; not published", payload.len());
            self.last.insert(topic, payload);
            return;
        }
        if self.client.publish(topic.clone(), QoS::AtLeastOnce, true, payload.clone()).await.is_ok() {
            self.last.insert(topic, payload);
        }
    }

    async fn clear(&mut self, key: &ObjectKey) {
        let topic = self.topics.status(key);
        self.last.remove(&topic);
        let _ = self.client.publish(topic, QoS::AtLeastOnce, true, Bytes::new()).await;
    }
}

impl Topics {
    /// The object a status topic is about.
    pub(crate) fn status_key(&self, topic: &str) -> Option<ObjectKey> {
        let prefix = self.statuses();
        let rest = topic.strip_prefix(prefix.trim_end_matches('#'))?;
        let mut levels = rest.split('/');
        let (namespace, kind, name) = (levels.next()?, levels.next()?, levels.next()?);
        if levels.next().is_some() {
            return None;
        }
        let kind = Kind::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(kind))?;
        Some(ObjectKey::new(kind, namespace, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_topic_names_its_object() {
        let topics = Topics::new("box");
        let key = ObjectKey::new(Kind::Volume, "apps", "data");
        assert_eq!(topics.status_key(&topics.status(&key)), Some(key));
        assert_eq!(topics.status_key("berth/box/status/apps/gadget/x"), None);
        assert_eq!(topics.status_key("berth/box/status/apps/volume/x/y"), None);
    }
}
