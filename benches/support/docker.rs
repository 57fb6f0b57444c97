//! Docker for the benchmarks: the busybox image, a watch on container
//! starts, the direct-bollard baseline, and cleanup by label.
//!
//! Cleanup only ever touches objects of the benchmark's own namespace
//! (`berth.dev/namespace=<ns>`) or its own baseline label: other berths may
//! share the daemon, and their objects also carry
//! `berth.dev/managed-by=berth`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth::engine::build_context::busybox_context;
use berth::engine::docker::DockerEngine;
use berth::engine::{BuildRequest, Engine};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountType, NetworkCreateRequest, NetworkingConfig,
    RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptions, StartContainerOptions,
};
use futures::StreamExt;
use tokio::sync::oneshot;

/// The image every benchmark container runs.
pub const IMAGE: &str = "berth-bench/busybox:latest";

/// Label of the direct-bollard baseline's objects.
pub const DIRECT_LABEL: &str = "berth.bench/direct";

/// A client of the daemon at `DOCKER_HOST` or `/var/run/docker.sock`.
pub fn client() -> bollard::Docker {
    bollard::Docker::connect_with_defaults().expect("connecting to Docker")
}

/// Builds [`IMAGE`] from the host's static `/bin/busybox` through berth's
/// engine build API (no registry needed; Docker's cache makes repeats cheap).
pub async fn build_image() {
    let engine = DockerEngine::connect(None).await.expect("connecting to Docker");
    let context = busybox_context(Path::new("/bin/busybox")).expect("busybox context");
    let request = BuildRequest {
        context_tar: context.to_tar().expect("context tar"),
        dockerfile: "Dockerfile".into(),
        tag: IMAGE.into(),
        ..Default::default()
    };
    engine.build_image(&request).await.expect("building the busybox image");
}

/// `key=value` label filters as the list and event endpoints take them.
fn label_filter(labels: &[&str]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), labels.iter().map(|l| l.to_string()).collect())])
}

/// The label filter of the objects berth makes for `namespace`.
pub fn berth_labels(namespace: &str) -> Vec<String> {
    vec!["berth.dev/managed-by=berth".to_string(), format!("berth.dev/namespace={namespace}")]
}

/// Removes every container, network and volume carrying all of `labels`.
pub async fn remove_labelled(docker: &bollard::Docker, labels: &[&str]) {
    let filters = label_filter(labels);
    let options = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
    let containers = docker.list_containers(Some(options)).await.expect("listing containers");
    let removals = containers.into_iter().filter_map(|c| c.id).map(|id| {
        let docker = docker.clone();
        async move {
            let options = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
            let _ = docker.remove_container(&id, Some(options)).await;
        }
    });
    futures::future::join_all(removals).await;
    let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
    for network in docker.list_networks(Some(options)).await.expect("listing networks") {
        if let Some(id) = network.id {
            let _ = docker.remove_network(&id).await;
        }
    }
    let options = ListVolumesOptionsBuilder::new().filters(&filters).build();
    let volumes = docker.list_volumes(Some(options)).await.expect("listing volumes").volumes.unwrap_or_default();
    for volume in volumes {
        let _ = docker.remove_volume(&volume.name, None::<RemoveVolumeOptions>).await;
    }
}

/// Removes what berth made in `namespace`.
pub async fn remove_berth_namespace(docker: &bollard::Docker, namespace: &str) {
    let labels = berth_labels(namespace);
    remove_labelled(docker, &labels.iter().map(String::as_str).collect::<Vec<_>>()).await;
}

/// Waits for `count` distinct containers carrying `labels` to start, from now on.
pub struct StartWatch {
    done: oneshot::Receiver<Instant>,
    task: tokio::task::JoinHandle<()>,
}

impl StartWatch {
    /// Starts watching (the daemon replays events since this call, so
    /// nothing is missed while the request is on its way).
    pub fn new(docker: &bollard::Docker, labels: &[String], count: usize) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
        let since = format!("{}.{:09}", now.as_secs(), now.subsec_nanos());
        let mut filters = label_filter(&labels.iter().map(String::as_str).collect::<Vec<_>>());
        filters.insert("type".into(), vec!["container".into()]);
        filters.insert("event".into(), vec!["start".into()]);
        let options = EventsOptionsBuilder::new().since(&since).filters(&filters).build();
        let mut events = docker.events(Some(options));
        let (tx, done) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut started = HashSet::new();
            while let Some(Ok(event)) = events.next().await {
                if let Some(id) = event.actor.and_then(|a| a.id) {
                    started.insert(id);
                }
                if started.len() >= count {
                    let _ = tx.send(Instant::now());
                    return;
                }
            }
        });
        StartWatch { done, task }
    }

    /// When the last of the containers started; `None` after `timeout`.
    pub async fn wait(self, timeout: Duration) -> Option<Instant> {
        let at = tokio::time::timeout(timeout, self.done).await.ok().and_then(Result::ok);
        self.task.abort();
        at
    }
}

/// The baseline: the same stack made by direct bollard calls (network,
/// volume, then create + start of each container, `concurrency` at once),
/// with the fields berth sends for it. Objects carry [`DIRECT_LABEL`].
pub async fn create_direct_stack(docker: &bollard::Docker, containers: usize, concurrency: usize) {
    let labels = HashMap::from([(DIRECT_LABEL.to_string(), "1".to_string())]);
    let network = "berth-bench-direct-net";
    let volume = "berth-bench-direct-data";
    docker
        .create_network(NetworkCreateRequest {
            name: network.into(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        })
        .await
        .expect("creating the network");
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(volume.into()),
            driver: Some("local".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        })
        .await
        .expect("creating the volume");
    let work = (0..containers).map(|i| {
        let docker = docker.clone();
        let labels = labels.clone();
        async move {
            let command: Vec<String> = if i.is_multiple_of(2) {
                vec!["sleep".into(), "3600".into()]
            } else {
                ["httpd", "-f", "-p", "8080", "-h", "/data"].map(String::from).to_vec()
            };
            let body = ContainerCreateBody {
                image: Some(IMAGE.into()),
                entrypoint: Some(command),
                labels: Some(labels),
                stop_timeout: Some(1),
                host_config: Some(HostConfig {
                    mounts: Some(vec![Mount {
                        target: Some("/data".into()),
                        source: Some(volume.into()),
                        typ: Some(MountType::VOLUME),
                        read_only: Some(false),
                        ..Default::default()
                    }]),
                    network_mode: Some(network.into()),
                    restart_policy: Some(RestartPolicy {
                        name: Some(RestartPolicyNameEnum::ALWAYS),
                        maximum_retry_count: None,
                    }),
                    ..Default::default()
                }),
                networking_config: Some(NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(network.to_string(), EndpointSettings::default())])),
                }),
                ..Default::default()
            };
            let name = format!("berth-bench-direct-c{i:02}");
            let options = CreateContainerOptionsBuilder::new().name(&name).build();
            let created = docker.create_container(Some(options), body).await.expect("creating a container");
            docker.start_container(&created.id, None::<StartContainerOptions>).await.expect("starting a container");
        }
    });
    futures::stream::iter(work).buffer_unordered(concurrency.max(1)).collect::<Vec<()>>().await;
}

/// Removes the baseline's objects.
pub async fn remove_direct_stack(docker: &bollard::Docker) {
    remove_labelled(docker, &[&format!("{DIRECT_LABEL}=1")]).await;
}
