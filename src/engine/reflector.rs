//! The engine reflector: one event stream and one cache of this instance's
//! engine objects, shared by the controller and the endpoint set.
//!
//! kube-runtime's reflector/store shape: list once per kind, then follow
//! the event stream, inspecting only what an event names, and keep the
//! result in memory indexed by owner. Reconcilers read observed state from
//! here, so a reconcile with nothing to do calls the engine not at all; a
//! reconcile that acts lists its own replicas again afterwards and writes
//! them through ([`Reflector::refresh_containers`]), so its next reconcile
//! does not see the engine from before its own changes.
//!
//! Followers get [`Notice`]s: each raw event as it comes (the endpoint set
//! takes a stopping replica out before it is inspected), then which owners'
//! observed state changed once the cache holds the change, and `Resynced`
//! after every full list (the start, a reconnection, the periodic resync).
//! An event that changes nothing (a container's own `create` after its
//! reconcile wrote it through) wakes nobody.
//!
//! After the stream drops, the engine is pinged with the shared backoff
//! ([`super::subscribe`]) until it answers; the stream reopens and
//! everything is listed again, once per kind.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::{broadcast, watch};

use super::{
    labels, ContainerInfo, Engine, EngineEvent, EventAction, EventSubject, ImageInfo, NetworkInfo, VolumeInfo,
};
use crate::api::ObjectKey;
use crate::backoff::Reconnect;

/// Notices a follower may fall behind by before it gets `Lagged` (and must
/// treat it as a resync).
const NOTICE_CAPACITY: usize = 4_096;

/// Most events taken before their containers are inspected and the
/// changes announced: a burst (a stack starting) costs one inspect per
/// container, not one per event, and one notice per batch.
const MAX_BATCH: usize = 512;

/// Inspects run at once for one batch.
const INSPECT_CONCURRENCY: usize = 8;

/// What followers of the reflector hear.
#[derive(Clone, Debug)]
pub enum Notice {
    /// An engine event about one of this instance's containers (or one the
    /// cache knows), as it came, before the cache follows it.
    Event(EngineEvent),
    /// The observed state of these owners changed; the cache holds it.
    Changed(Vec<ObjectKey>),
    /// This owner's reconcile acted and wrote its containers through
    /// ([`Reflector::refresh_containers`]): the cache holds what it saw.
    /// The endpoint set follows it; the controller need not wake that
    /// reconcile's object again, since it decided its next look from the
    /// same list.
    WrittenThrough(ObjectKey),
    /// Everything was listed again: followers read everything again.
    Resynced,
}

/// The cache and its followers; clones share them.
#[derive(Clone)]
pub struct Reflector {
    shared: Arc<Shared>,
}

struct Shared {
    engine: Arc<dyn Engine>,
    instance: String,
    cache: RwLock<Cache>,
    notices: broadcast::Sender<Notice>,
    /// Counts the full lists done (0: not observed yet).
    lists: watch::Sender<u64>,
}

/// This instance's engine objects.
#[derive(Default)]
struct Cache {
    /// Containers by id.
    containers: HashMap<String, ContainerInfo>,
    /// Container ids by owner.
    by_owner: HashMap<ObjectKey, BTreeSet<String>>,
    /// Networks by id.
    networks: HashMap<String, NetworkInfo>,
    /// Volumes by name.
    volumes: HashMap<String, VolumeInfo>,
    /// Present images by the reference they were asked for: inspected once,
    /// kept until an image event or a relist says the images may differ.
    images: HashMap<String, ImageInfo>,
    /// Bumped whenever `images` is emptied, so an inspect that started
    /// before cannot put back what an event just made stale.
    image_generation: u64,
}

impl Cache {
    fn forget_images(&mut self) {
        self.images.clear();
        self.image_generation += 1;
    }

    /// Puts `info` in (or takes `id` out, for `None`); the owners whose
    /// containers changed.
    fn set_container(&mut self, id: &str, info: Option<ContainerInfo>, instance: &str) -> Vec<ObjectKey> {
        if self.containers.get(id) == info.as_ref() {
            return Vec::new();
        }
        let mut changed = Vec::new();
        let old = self.containers.remove(id);
        if let Some(owner) = old.as_ref().and_then(|o| labels::owner_of(&o.labels, instance)) {
            if let Some(ids) = self.by_owner.get_mut(&owner) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_owner.remove(&owner);
                }
            }
            changed.push(owner);
        }
        if let Some(info) = info {
            if let Some(owner) = labels::owner_of(&info.labels, instance) {
                self.by_owner.entry(owner.clone()).or_default().insert(id.to_string());
                if !changed.contains(&owner) {
                    changed.push(owner);
                }
                self.containers.insert(id.to_string(), info);
            }
        }
        changed
    }

    fn containers_of(&self, owner: &ObjectKey) -> Vec<ContainerInfo> {
        let ids = self.by_owner.get(owner).into_iter().flatten();
        let mut found: Vec<ContainerInfo> = ids.filter_map(|id| self.containers.get(id).cloned()).collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }
}

/// An engine object with ownership labels.
trait Owned {
    fn labels(&self) -> &super::Labels;
}

impl Owned for ContainerInfo {
    fn labels(&self) -> &super::Labels {
        &self.labels
    }
}

impl Owned for NetworkInfo {
    fn labels(&self) -> &super::Labels {
        &self.labels
    }
}

impl Owned for VolumeInfo {
    fn labels(&self) -> &super::Labels {
        &self.labels
    }
}

/// Owners of `items` whose entries differ between `old` and `new` (added,
/// removed or changed), by `owner`.
fn changed_owners<T: PartialEq>(
    old: &HashMap<String, T>,
    new: &HashMap<String, T>,
    owner: impl Fn(&T) -> Option<ObjectKey>,
) -> BTreeSet<ObjectKey> {
    let gone_or_changed = old.iter().filter(|(id, item)| new.get(*id) != Some(*item)).filter_map(|(_, i)| owner(i));
    let added_or_changed = new.iter().filter(|(id, item)| old.get(*id) != Some(*item)).filter_map(|(_, i)| owner(i));
    gone_or_changed.chain(added_or_changed).collect()
}

impl Reflector {
    /// A reflector of `instance`'s objects on `engine`; empty until
    /// [`Reflector::run`] has listed the engine.
    pub fn new(engine: Arc<dyn Engine>, instance: &str) -> Reflector {
        Reflector {
            shared: Arc::new(Shared {
                engine,
                instance: instance.to_string(),
                cache: RwLock::new(Cache::default()),
                notices: broadcast::channel(NOTICE_CAPACITY).0,
                lists: watch::channel(0).0,
            }),
        }
    }

    /// The engine it follows.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.shared.engine
    }

    /// Notices from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.shared.notices.subscribe()
    }

    /// Returns once the engine has been listed in full at least once.
    pub async fn observed(&self) {
        let mut lists = self.shared.lists.subscribe();
        let _ = lists.wait_for(|n| *n > 0).await;
    }

    /// Whether the engine has been listed in full: until then reads go to
    /// the engine (a plan or a test without a running reflector).
    fn is_observed(&self) -> bool {
        *self.shared.lists.borrow() > 0
    }

    /// The containers of `owner`, by name.
    pub async fn containers_of(&self, owner: &ObjectKey) -> super::Result<Vec<ContainerInfo>> {
        if self.is_observed() {
            return Ok(self.cached_containers_of(owner));
        }
        self.engine().list_containers(&labels::owner_labels(&self.shared.instance, owner)).await
    }

    /// Every container of this instance.
    pub async fn all_containers(&self) -> super::Result<Vec<ContainerInfo>> {
        if self.is_observed() {
            return Ok(self.cached_containers());
        }
        self.engine().list_containers(&labels::instance_labels(&self.shared.instance)).await
    }

    /// The networks of `owner`.
    pub async fn networks_of(&self, owner: &ObjectKey) -> super::Result<Vec<NetworkInfo>> {
        if self.is_observed() {
            let cache = self.read();
            return Ok(cache.networks.values().filter(|n| self.owns(&n.labels, owner)).cloned().collect());
        }
        self.engine().list_networks(&labels::owner_labels(&self.shared.instance, owner)).await
    }

    /// The volumes of `owner`.
    pub async fn volumes_of(&self, owner: &ObjectKey) -> super::Result<Vec<VolumeInfo>> {
        if self.is_observed() {
            let cache = self.read();
            return Ok(cache.volumes.values().filter(|v| self.owns(&v.labels, owner)).cloned().collect());
        }
        self.engine().list_volumes(&labels::owner_labels(&self.shared.instance, owner)).await
    }

    /// The image `reference` names, or `None` when the engine has none:
    /// after the first full list, a present image is inspected once and
    /// then answered from memory until an image event (a pull, tag, untag
    /// or removal) or a relist.
    pub async fn image(&self, reference: &str) -> super::Result<Option<ImageInfo>> {
        let observed = self.is_observed();
        let generation = {
            let cache = self.read();
            match cache.images.get(reference) {
                Some(found) if observed => return Ok(Some(found.clone())),
                _ => cache.image_generation,
            }
        };
        let found = self.engine().inspect_image(reference).await?;
        if let (Some(info), true) = (&found, observed) {
            let mut cache = self.write();
            if cache.image_generation == generation {
                cache.images.insert(reference.to_string(), info.clone());
            }
        }
        Ok(found)
    }

    /// The cached containers of `owner`, by name.
    pub fn cached_containers_of(&self, owner: &ObjectKey) -> Vec<ContainerInfo> {
        self.read().containers_of(owner)
    }

    /// Every cached container.
    pub fn cached_containers(&self) -> Vec<ContainerInfo> {
        self.read().containers.values().cloned().collect()
    }

    /// Every cached container of an owner, grouped by owner.
    pub fn cached_containers_by_owner(&self) -> Vec<(ObjectKey, Vec<ContainerInfo>)> {
        let cache = self.read();
        cache.by_owner.keys().map(|owner| (owner.clone(), cache.containers_of(owner))).collect()
    }

    /// Every owner named by a cached engine object.
    pub fn owners(&self) -> BTreeSet<ObjectKey> {
        let cache = self.read();
        let instance = &self.shared.instance;
        let containers = cache.by_owner.keys().cloned();
        let networks = cache.networks.values().filter_map(|n| labels::owner_of(&n.labels, instance));
        let volumes = cache.volumes.values().filter_map(|v| labels::owner_of(&v.labels, instance));
        containers.chain(networks).chain(volumes).collect()
    }

    /// Lists `owner`'s containers through the engine, keeps the result and
    /// tells what changed: what a reconcile that acted sees next, and what
    /// the endpoint set learns of it (the engine's events of those changes
    /// then find nothing new).
    pub async fn refresh_containers(&self, owner: &ObjectKey) -> super::Result<Vec<ContainerInfo>> {
        let listed = self.engine().list_containers(&labels::owner_labels(&self.shared.instance, owner)).await?;
        let (found, changed) = {
            let mut cache = self.write();
            let instance = &self.shared.instance;
            let known: Vec<String> = cache.by_owner.get(owner).into_iter().flatten().cloned().collect();
            let listed_ids: BTreeSet<&str> = listed.iter().map(|c| c.id.as_str()).collect();
            let mut changed = BTreeSet::new();
            for id in known.iter().filter(|id| !listed_ids.contains(id.as_str())) {
                changed.extend(cache.set_container(id, None, instance));
            }
            for info in &listed {
                changed.extend(cache.set_container(&info.id, Some(info.clone()), instance));
            }
            (cache.containers_of(owner), !changed.is_empty())
        };
        if changed {
            self.tell(Notice::WrittenThrough(owner.clone()));
        }
        Ok(found)
    }

    /// Lists the networks through the engine, keeps them and tells what changed.
    pub async fn refresh_networks(&self) -> super::Result<()> {
        let listed = self.engine().list_networks(&labels::instance_labels(&self.shared.instance)).await?;
        let changed = self.keep_networks(listed);
        self.tell_changed(changed);
        Ok(())
    }

    /// Lists the volumes through the engine, keeps them and tells what changed.
    pub async fn refresh_volumes(&self) -> super::Result<()> {
        let listed = self.engine().list_volumes(&labels::instance_labels(&self.shared.instance)).await?;
        let changed = self.keep_volumes(listed);
        self.tell_changed(changed);
        Ok(())
    }

    /// Keeps `listed` as the networks (by id); the owners whose changed.
    fn keep_networks(&self, listed: Vec<NetworkInfo>) -> BTreeSet<ObjectKey> {
        self.replace(|cache| &mut cache.networks, listed.into_iter().map(|n| (n.id.clone(), n)))
    }

    /// Keeps `listed` as the volumes (by name); the owners whose changed.
    fn keep_volumes(&self, listed: Vec<VolumeInfo>) -> BTreeSet<ObjectKey> {
        self.replace(|cache| &mut cache.volumes, listed.into_iter().map(|v| (v.name.clone(), v)))
    }

    /// Replaces one map of the cache; the owners whose entries changed.
    fn replace<T: PartialEq + Owned>(
        &self,
        map: impl FnOnce(&mut Cache) -> &mut HashMap<String, T>,
        fresh: impl Iterator<Item = (String, T)>,
    ) -> BTreeSet<ObjectKey> {
        let fresh: HashMap<String, T> = fresh.collect();
        let mut cache = self.write();
        let map = map(&mut cache);
        let changed = changed_owners(map, &fresh, |item| labels::owner_of(item.labels(), &self.shared.instance));
        *map = fresh;
        changed
    }

    fn owns(&self, labels: &super::Labels, owner: &ObjectKey) -> bool {
        labels::owner_of(labels, &self.shared.instance).as_ref() == Some(owner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.shared.cache.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.shared.cache.write().unwrap_or_else(|p| p.into_inner())
    }

    fn tell(&self, notice: Notice) {
        // No receivers is fine: nobody follows yet.
        let _ = self.shared.notices.send(notice);
    }

    fn tell_changed(&self, owners: BTreeSet<ObjectKey>) {
        if !owners.is_empty() {
            self.tell(Notice::Changed(owners.into_iter().collect()));
        }
    }

    /// Follows the engine forever: lists it, then applies its events, and
    /// lists it again every `relist_every` and after every reconnection.
    /// Meant to be spawned.
    pub async fn run(self, relist_every: Duration) {
        let mut reconnect = Reconnect::with("engine events", super::subscribe::RECONNECT);
        let mut opened_before = false;
        loop {
            // Subscribe before listing, so no event falls in between.
            let mut events = super::subscribe::subscribe(&**self.engine(), &mut reconnect, opened_before).await;
            if opened_before {
                tracing::info!("engine events reconnected; listing the engine again");
            }
            opened_before = true;
            let (opened, mut delivered) = (std::time::Instant::now(), false);
            if let Err(e) = self.relist().await {
                // Followed events on an unlisted cache would be no view at
                // all: start over, backing off as for a dropped stream.
                let delay = reconnect.failed(&format!("listing it failed: {e:#}"));
                tokio::time::sleep(delay).await;
                continue;
            }
            let mut relist = tokio::time::interval_at(tokio::time::Instant::now() + relist_every, relist_every);
            loop {
                tokio::select! {
                    // Cancel-safe: a stream's `next` loses nothing when the timer wins.
                    event = events.next() => {
                        let Some(Ok(event)) = event else { break };
                        if !delivered {
                            reconnect.succeeded();
                            delivered = true;
                        }
                        let mut batch = vec![event];
                        // Whatever else is ready joins the batch.
                        while batch.len() < MAX_BATCH {
                            match events.next().now_or_never() {
                                Some(Some(Ok(event))) => batch.push(event),
                                _ => break,
                            }
                        }
                        self.apply(batch).await;
                    }
                    // Cancel-safe: a missed tick is simply taken later.
                    _ = relist.tick() => {
                        if let Err(e) = self.relist().await {
                            tracing::warn!("listing the engine failed: {e:#}");
                        }
                    }
                }
            }
            if let Some(delay) = reconnect.stream_ended(delivered, opened.elapsed()) {
                tokio::time::sleep(delay).await;
            }
        }
    }

    /// Lists every kind once and replaces the cache; tells the owners whose
    /// objects changed, then `Resynced`.
    async fn relist(&self) -> super::Result<()> {
        let ours = labels::instance_labels(&self.shared.instance);
        let engine = self.engine();
        let containers = engine.list_containers(&ours).await?;
        let networks = engine.list_networks(&ours).await?;
        let volumes = engine.list_volumes(&ours).await?;
        let mut changed = self.keep_networks(networks);
        changed.extend(self.keep_volumes(volumes));
        {
            let instance = &self.shared.instance;
            let mut fresh = Cache::default();
            for info in containers {
                fresh.set_container(&info.id.clone(), Some(info), instance);
            }
            let mut cache = self.write();
            let owner = |c: &ContainerInfo| labels::owner_of(&c.labels, instance);
            changed.extend(changed_owners(&cache.containers, &fresh.containers, owner));
            cache.containers = fresh.containers;
            cache.by_owner = fresh.by_owner;
            cache.forget_images();
        }
        self.tell_changed(changed);
        self.shared.lists.send_modify(|n| *n += 1);
        self.tell(Notice::Resynced);
        Ok(())
    }

    /// Follows a batch of events: tells each, inspects each container they
    /// name once, lists networks or volumes again when one was made, and
    /// tells the owners whose objects changed.
    async fn apply(&self, batch: Vec<EngineEvent>) {
        let instance = &self.shared.instance;
        let mut inspect = BTreeSet::new();
        let (mut networks, mut volumes) = (false, false);
        let mut changed = BTreeSet::new();
        for event in batch {
            match event.subject {
                EventSubject::Container => {
                    let known = self.read().containers.contains_key(&event.id);
                    if !known && labels::owner_of(&event.labels, instance).is_none() {
                        continue;
                    }
                    inspect.insert(event.id.clone());
                    self.tell(Notice::Event(event));
                }
                // Removals come without labels: the cache knows the owner.
                EventSubject::Network if event.action == EventAction::Destroy => {
                    let gone = self.write().networks.remove(&event.id);
                    changed.extend(gone.and_then(|n| labels::owner_of(&n.labels, instance)));
                }
                EventSubject::Volume if event.action == EventAction::Destroy => {
                    let gone = self.write().volumes.remove(&event.id);
                    changed.extend(gone.and_then(|v| labels::owner_of(&v.labels, instance)));
                }
                EventSubject::Network => networks |= labels::owner_of(&event.labels, instance).is_some(),
                EventSubject::Volume => volumes |= labels::owner_of(&event.labels, instance).is_some(),
                // Which references an event changes is the engine's to
                // know (a tag moves, an untag frees a name): forget them all.
                EventSubject::Image => self.write().forget_images(),
            }
        }
        let engine = self.engine();
        let inspected: Vec<(String, super::Result<ContainerInfo>)> = futures::stream::iter(inspect)
            .map(|id| async move {
                let info = engine.inspect_container(&id).await;
                (id, info)
            })
            .buffer_unordered(INSPECT_CONCURRENCY)
            .collect()
            .await;
        {
            let mut cache = self.write();
            for (id, info) in inspected {
                match info {
                    Ok(info) => changed.extend(cache.set_container(&id, Some(info), instance)),
                    Err(e) if e.is_not_found() => changed.extend(cache.set_container(&id, None, instance)),
                    Err(e) => tracing::debug!("inspecting container {id} after its event: {e:#}"),
                }
            }
        }
        self.tell_changed(changed);
        if networks {
            if let Err(e) = self.refresh_networks().await {
                tracing::debug!("listing networks after their event: {e:#}");
            }
        }
        if volumes {
            if let Err(e) = self.refresh_volumes().await {
                tracing::debug!("listing volumes after their event: {e:#}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Kind;
    use crate::engine::fake::FakeEngine;
    use crate::engine::{ContainerConfig, ContainerState, NetworkConfig};

    fn web() -> ObjectKey {
        ObjectKey::new(Kind::Container, "default", "web")
    }

    fn config(name: &str, owner: &ObjectKey) -> ContainerConfig {
        let mut labels = labels::owner_labels("test", owner);
        labels.insert(labels::REPLICA.into(), "0".into());
        ContainerConfig { name: name.into(), image: "busybox".into(), labels, ..ContainerConfig::default() }
    }

    /// The next `Changed` notice, at most a second away.
    async fn next_change(notices: &mut broadcast::Receiver<Notice>) -> Vec<ObjectKey> {
        tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                if let Notice::Changed(owners) = notices.recv().await.expect("the reflector runs") {
                    return owners;
                }
            }
        })
        .await
        .expect("a change within a second")
    }

    #[tokio::test]
    async fn the_cache_follows_events_and_a_write_through_is_told_once() {
        let fake = Arc::new(FakeEngine::new());
        fake.preload_image("busybox");
        let foreign = ContainerConfig { name: "someone-elses".into(), image: "busybox".into(), ..Default::default() };
        fake.create_container(&foreign).await.unwrap();
        let reflector = Reflector::new(fake.clone(), "test");
        let mut notices = reflector.subscribe();
        tokio::spawn(reflector.clone().run(Duration::from_secs(3600)));
        reflector.observed().await;
        assert!(reflector.cached_containers().is_empty(), "only this instance's containers are kept");

        let id = fake.create_container(&config("berth-default-web-0", &web())).await.unwrap();
        assert_eq!(next_change(&mut notices).await, [web()]);
        assert_eq!(reflector.cached_containers_of(&web())[0].state, ContainerState::Created);

        // What a reconcile that acted does: its own list, written through
        // (the zero-latency fake does not yield: the reflector sees the
        // start's event only after this).
        fake.start_container(&id).await.unwrap();
        let seen = reflector.refresh_containers(&web()).await.unwrap();
        assert_eq!(seen[0].state, ContainerState::Running);
        let told = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                if let Notice::WrittenThrough(owner) = notices.recv().await.expect("the reflector runs") {
                    return owner;
                }
            }
        });
        assert_eq!(told.await.expect("a write-through is told"), web(), "for the endpoint set");
        let calls = fake.calls().len();
        // The start's own event finds the cache as it is: nobody is woken again.
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Ok(notice) = notices.try_recv() {
            assert!(!matches!(notice, Notice::Changed(_)), "the echo of a written-through change woke {notice:?}");
        }
        fake.remove_container("someone-elses").await.unwrap();
        fake.crash_container(&id, 1).unwrap();
        assert_eq!(next_change(&mut notices).await, [web()]);
        assert_eq!(reflector.cached_containers_of(&web())[0].state, ContainerState::Exited);
        let reads: Vec<&str> = fake.calls()[calls..].iter().map(|c| c.op).collect();
        assert!(reads.iter().all(|op| *op != "list_containers"), "events are followed by inspects only: {reads:?}");

        fake.remove_container(&id).await.unwrap();
        assert_eq!(next_change(&mut notices).await, [web()]);
        assert!(reflector.cached_containers_of(&web()).is_empty());
        assert!(reflector.owners().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_first_list_is_retried_after_a_backoff() {
        let fake = Arc::new(FakeEngine::new());
        fake.fail_next("list_containers", 2);
        let reflector = Reflector::new(fake.clone(), "test");
        tokio::spawn(reflector.clone().run(Duration::from_secs(3600)));
        let started = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), reflector.observed()).await.expect("observed after retries");
        let lists = fake.calls().iter().filter(|c| c.op == "list_containers").count();
        assert_eq!(lists, 3, "two failures, then the list that worked");
        assert!(started.elapsed() >= Duration::from_millis(800), "the retries backed off: {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_periodic_resync_lists_each_kind_once_and_inspects_nothing() {
        let fake = Arc::new(FakeEngine::new());
        fake.preload_image("busybox");
        for i in 0..3 {
            let id = fake.create_container(&config(&format!("berth-default-web-{i}"), &web())).await.unwrap();
            fake.start_container(&id).await.unwrap();
        }
        let reflector = Reflector::new(fake.clone(), "test");
        let mut notices = reflector.subscribe();
        fake.clear_calls();
        tokio::spawn(reflector.clone().run(Duration::from_millis(100)));
        let mut resyncs = 0;
        while resyncs < 3 {
            match tokio::time::timeout(Duration::from_secs(2), notices.recv()).await.expect("a resync") {
                Ok(Notice::Resynced) => resyncs += 1,
                Ok(Notice::Changed(owners)) => assert_eq!(resyncs, 0, "only the first list changes {owners:?}"),
                other => panic!("nothing else happens: {other:?}"),
            }
        }
        let calls: Vec<&str> = fake.calls().iter().map(|c| c.op).filter(|op| *op != "events").collect();
        let lists = |op| calls.iter().filter(|c| **c == op).count();
        assert!(calls.iter().all(|op| op.starts_with("list_")), "lists only, no inspect: {calls:?}");
        assert_eq!((lists("list_containers"), lists("list_networks"), lists("list_volumes")), (3, 3, 3));
        assert_eq!(reflector.cached_containers_of(&web()).len(), 3);
    }

    #[tokio::test]
    async fn an_image_is_inspected_once_until_an_image_event() {
        let fake = Arc::new(FakeEngine::new());
        fake.preload_image("busybox");
        let reflector = Reflector::new(fake.clone(), "test");
        tokio::spawn(reflector.clone().run(Duration::from_secs(3600)));
        reflector.observed().await;
        let inspects = || fake.calls().iter().filter(|c| c.op == "inspect_image").count();
        let first = reflector.image("busybox").await.unwrap().expect("present");
        assert_eq!(reflector.image("busybox").await.unwrap(), Some(first.clone()));
        assert_eq!(inspects(), 1, "the second answer came from memory");
        assert_eq!(reflector.image("alpine").await.unwrap(), None);
        assert_eq!(reflector.image("alpine").await.unwrap(), None);
        assert_eq!(inspects(), 3, "an absent image is asked for again: a pull may bring it");

        fake.remove_image("busybox").await.unwrap();
        // The removal's event reaches the reflector, which forgets the image.
        tokio::time::timeout(Duration::from_secs(1), async {
            while reflector.image("busybox").await.unwrap().is_some() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("a removed image is no longer answered from memory");
    }

    #[tokio::test]
    async fn a_network_removed_without_labels_tells_its_owner() {
        let fake = Arc::new(FakeEngine::new());
        let app = ObjectKey::new(Kind::Network, "default", "app");
        let reflector = Reflector::new(fake.clone(), "test");
        let mut notices = reflector.subscribe();
        tokio::spawn(reflector.clone().run(Duration::from_secs(3600)));
        reflector.observed().await;
        let network = NetworkConfig {
            name: "berth-default-app".into(),
            driver: "bridge".into(),
            labels: labels::owner_labels("test", &app),
            ..NetworkConfig::default()
        };
        fake.create_network(&network).await.unwrap();
        assert_eq!(next_change(&mut notices).await, std::slice::from_ref(&app));
        assert_eq!(reflector.networks_of(&app).await.unwrap().len(), 1);
        fake.remove_network("berth-default-app").await.unwrap();
        assert_eq!(next_change(&mut notices).await, std::slice::from_ref(&app));
        assert!(reflector.networks_of(&app).await.unwrap().is_empty());
    }
}
