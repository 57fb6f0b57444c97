//! Manifests that load: the examples, directory walking, multi-document
//! files, defaulting and build-context resolution.

use berth::api::{AnyObject, Kind};
use berth::manifest;

use crate::support::repo_path;

#[test]
fn every_example_validates() {
    let set = manifest::load_paths(&[repo_path("examples")]).unwrap_or_else(|e| panic!("examples are invalid:\n{e}"));
    let kinds: std::collections::BTreeSet<Kind> = set.objects.iter().map(|o| o.object.kind()).collect();
    assert_eq!(kinds.len(), 6, "the examples should show every kind, found {kinds:?}");
    assert_eq!(set.objects.len(), 8);
    let web = set.objects.iter().find(|o| o.object.key().to_string() == "Container/default/web").expect("web");
    let AnyObject::Container(web) = &web.object else { unreachable!() };
    assert_eq!(web.spec.replicas, Some(2));
}

#[test]
fn each_example_file_validates_on_its_own() {
    for file in manifest::manifest_files(&repo_path("examples")).unwrap() {
        manifest::load_paths(&[&file]).unwrap_or_else(|e| panic!("{} is invalid:\n{e}", file.display()));
    }
}

#[test]
fn directories_are_walked_recursively_skipping_hidden_and_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let volume =
        |name: &str| format!("apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: {name}\nspec: {{}}\n");
    std::fs::create_dir_all(dir.path().join("nested/deeper")).unwrap();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join("a.yaml"), volume("a")).unwrap();
    std::fs::write(dir.path().join("nested/deeper/b.yml"), volume("b")).unwrap();
    std::fs::write(dir.path().join(".git/c.yaml"), volume("c")).unwrap();
    std::fs::write(dir.path().join(".a.yaml.swp"), "garbage").unwrap();
    std::fs::write(dir.path().join("a.yaml~"), "garbage").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "garbage").unwrap();
    let set = manifest::load_paths(&[dir.path()]).unwrap();
    let names: Vec<String> = set.objects.iter().map(|o| o.object.metadata().name.clone()).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn multi_document_files_keep_document_numbers_and_skip_empty_documents() {
    let text = "---\n# nothing here\n---\napiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata: {name: front}\nspec: {}\n---\n---\napiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata: {name: back, namespace: infra}\nspec: {internal: true}\n...\n";
    let objects = manifest::load_text(text, "<stdin>", None).unwrap();
    let found: Vec<(usize, String)> = objects.iter().map(|o| (o.document, o.object.key().to_string())).collect();
    assert_eq!(found, [(2, "Network/default/front".to_string()), (4, "Network/infra/back".to_string())]);
}

#[test]
fn objects_are_stored_defaulted_and_without_server_fields_but_their_version() {
    let text = "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\n  uid: forged\n  resourceVersion: 99\nspec:\n  image: busybox\n  ports: [{containerPort: 80, hostPort: auto}]\nstatus:\n  readyReplicas: 5\n";
    let objects = manifest::load_text(text, "<api>", None).unwrap();
    let AnyObject::Container(web) = &objects[0].object else { unreachable!() };
    assert_eq!(web.metadata.uid, None);
    // Kept: an API write makes it its precondition; directory sources ignore it.
    assert_eq!(web.metadata.resource_version, Some(99));
    assert!(web.status.is_none());
    assert_eq!(web.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(web.spec.replicas, Some(1));
    assert_eq!(web.spec.ports[0].host_port, Some(berth::api::HostPort::Auto));
    assert_eq!(web.spec.restart_policy, Some(berth::api::container::RestartPolicy::Always));
}

#[test]
fn build_contexts_resolve_against_the_manifest_directory() {
    let set = manifest::load_paths(&[repo_path("examples/02-image.yaml")]).unwrap();
    let AnyObject::Image(image) = &set.objects[0].object else { unreachable!() };
    let context = image.spec.build.as_ref().unwrap().context.as_deref().unwrap();
    assert_eq!(std::path::Path::new(context), std::fs::canonicalize(repo_path("examples/busybox")).unwrap());
}

#[test]
fn a_relative_context_without_a_file_is_an_error() {
    let text = "apiVersion: berth.dev/v1alpha1\nkind: Image\nmetadata: {name: app}\nspec:\n  build: {context: ./app}\n";
    let errors = manifest::load_text(text, "<api>", None).unwrap_err();
    assert!(
        errors.to_string().contains(
            "<api>:5:20: Image/default/app: spec.build.context: relative build context `./app` needs a manifest file"
        ),
        "{errors}"
    );
}
