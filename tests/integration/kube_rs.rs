//! kube-rs, the Rust Kubernetes client, against `berth serve --engine fake`
//! over TLS with the kubeconfig `berth kubeconfig` prints: discovery finds
//! the kind, then `Api::<DynamicObject>` creates, lists by label, watches a
//! merge patch land, server-side applies into a conflict and then forces
//! it, and deletes until the object is gone, as a Rust operator would.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Discovery, ResourceExt};
use serde_json::json;

use crate::support::api::ServedFake;

fn container(name: &str, replicas: u32) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "Container",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": { "image": "busybox", "replicas": replicas },
    }))
    .unwrap()
}

fn replicas(object: &DynamicObject) -> Option<u64> {
    object.data["spec"]["replicas"].as_u64()
}

#[tokio::test]
async fn kube_rs_drives_berth_objects_as_dynamic_objects() {
    let server = ServedFake::start();
    let kubeconfig = server.kubeconfig();
    let config =
        Config::from_custom_kubeconfig(Kubeconfig::from_yaml(&kubeconfig).unwrap(), &KubeConfigOptions::default())
            .await
            .unwrap();
    let client = Client::try_from(config).unwrap();
    let discovery = Discovery::new(client.clone()).filter(&["berth.dev"]).run().await.unwrap();
    let (resource, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("berth.dev", "v1alpha1", "Container"))
        .unwrap_or_else(|| panic!("kube-rs did not discover Container:\n{}", server.log()));
    assert_eq!(resource.plural, "containers");
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource);

    let created = api.create(&PostParams::default(), &container("rs", 1)).await.unwrap();
    let version = created.resource_version().expect("a resourceVersion");
    let taken = api.create(&PostParams::default(), &container("rs", 1)).await.unwrap_err();
    assert!(matches!(&taken, kube::Error::Api(status) if status.is_already_exists()), "{taken:?}");
    api.create(&PostParams::default(), &container("other", 1)).await.unwrap();
    let listed = api.list(&ListParams::default().labels("app=rs")).await.unwrap();
    assert_eq!(listed.items.iter().map(|o| o.name_any()).collect::<Vec<_>>(), ["rs"]);

    // A watch from the created version sees the merge patch.
    let mut events = api.watch(&WatchParams::default().timeout(20), &version).await.unwrap().boxed();
    api.patch("rs", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "replicas": 2 } }))).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = events.try_next().await.unwrap() {
            if let WatchEvent::Modified(object) = event {
                if replicas(&object) == Some(2) {
                    return object;
                }
            }
        }
        panic!("the watch ended without the change");
    })
    .await
    .expect("the change within 20 s");
    assert_eq!(seen.name_any(), "rs");

    // The merge patch's writer owns replicas: an apply of another value
    // conflicts, until forced.
    let apply = |replicas: u32| Patch::Apply(serde_json::to_value(container("rs", replicas)).unwrap());
    let conflict = api.patch("rs", &PatchParams::apply("rust-operator"), &apply(3)).await.unwrap_err();
    match &conflict {
        kube::Error::Api(status) => {
            assert!(status.is_conflict() && status.message.contains(".spec.replicas"), "{status:?}")
        }
        other => panic!("not a conflict: {other:?}"),
    }
    let forced = api.patch("rs", &PatchParams::apply("rust-operator").force(), &apply(3)).await.unwrap();
    assert_eq!(replicas(&forced), Some(3));

    let deleted = api.delete("rs", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_left(), "DELETE answers the object: {deleted:?}");
    let started = Instant::now();
    while api.get_opt("rs").await.unwrap().is_some() {
        assert!(started.elapsed() < Duration::from_secs(30), "rs was not gone within 30 s:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
