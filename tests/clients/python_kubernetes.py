"""The Python `kubernetes` client against berth, as a user would drive it:
create, read, list by label, merge-patch, watch a change, server-side apply
with a conflict, and delete, through `CustomObjectsApi` and `DynamicClient`.

Run by tests/integration/clients.rs with the kubeconfig `berth kubeconfig`
printed; prints `ok` at the end, and fails with a traceback otherwise.
"""

import sys
import threading
import time

from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL, NS = "berth.dev", "v1alpha1", "containers", "default"


def container(name, replicas):
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Container",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"image": "busybox", "replicas": replicas},
    }


def expect_error(status, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ApiException as error:
        assert error.status == status, (error.status, error.body)
        return error
    raise AssertionError(f"expected HTTP {status}")


def main(kubeconfig):
    config.load_kube_config(config_file=kubeconfig)
    api = client.CustomObjectsApi()

    created = api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, container("py", 1))
    assert created["metadata"]["name"] == "py"
    assert isinstance(created["metadata"]["resourceVersion"], str), created["metadata"]
    taken = expect_error(409, api.create_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, container("py", 1))
    assert "AlreadyExists" in taken.body, taken.body

    got = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py")
    assert got["spec"]["replicas"] == 1, got
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, container("other", 1))
    listed = api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, label_selector="app=py")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["py"], listed
    missing = expect_error(404, api.get_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, "nosuch")
    assert "NotFound" in missing.body, missing.body

    patched = api.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py", {"spec": {"replicas": 2}})
    assert patched["spec"]["replicas"] == 2, patched

    # A watch from the patched version sees the next change.
    def change():
        time.sleep(1)
        api.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py", {"spec": {"replicas": 3}})

    threading.Thread(target=change).start()
    seen = None
    stream = watch.Watch()
    for event in stream.stream(
        api.list_namespaced_custom_object,
        GROUP,
        VERSION,
        NS,
        PLURAL,
        resource_version=patched["metadata"]["resourceVersion"],
        timeout_seconds=20,
    ):
        if event["type"] == "MODIFIED" and event["object"]["spec"]["replicas"] == 3:
            seen = event
            stream.stop()
    assert seen is not None, "the watch saw no change within 20 s"

    # The dynamic client, discovering the kind, with server-side apply.
    dyn = dynamic.DynamicClient(client.ApiClient())
    containers = dyn.resources.get(api_version=f"{GROUP}/{VERSION}", kind="Container")
    assert containers.get(name="py", namespace=NS).spec.replicas == 3
    applied = dyn.server_side_apply(
        containers, body=container("ssa", 2), name="ssa", namespace=NS, field_manager="python"
    )
    assert applied.spec.replicas == 2
    conflict = None
    try:
        dyn.server_side_apply(containers, body=container("ssa", 5), name="ssa", namespace=NS, field_manager="rival")
    except dynamic.exceptions.ConflictError as error:
        conflict = error
    assert conflict is not None and 'conflict with \\"python\\"' in str(conflict.body), conflict
    names = sorted(item.metadata.name for item in containers.get(namespace=NS).items)
    assert names == ["other", "py", "ssa"], names

    deleted = api.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py")
    assert deleted["metadata"]["name"] == "py", deleted
    deadline = time.monotonic() + 30
    while True:
        try:
            api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py")
        except ApiException as error:
            assert error.status == 404
            break
        assert time.monotonic() < deadline, "py was not gone within 30 s"
        time.sleep(0.2)
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
