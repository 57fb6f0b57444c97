//! A catalogue of bad manifests: each must be rejected with a message that
//! says what is wrong, at the `line:column` where it is.

use std::path::Path;

use berth::manifest::{self, ManifestError};

/// One bad manifest and the error it must produce.
struct Case {
    name: &'static str,
    yaml: &'static str,
    /// `line:column` of the error.
    at: &'static str,
    /// A fragment of the message.
    message: &'static str,
}

const HEADER_ERRORS: &[Case] = &[
    Case {
        name: "syntax error: unclosed flow sequence",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: [data\nspec: {}\n",
        at: "5:5",
        message: "YAML syntax error: illegal placement of ':' indicator",
    },
    Case {
        name: "syntax error: tab indentation",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n\tname: data\n",
        at: "4:2",
        message: "YAML syntax error: tabs disallowed within this context",
    },
    Case {
        name: "document is a sequence",
        yaml: "- apiVersion: berth.dev/v1alpha1\n- kind: Volume\n",
        at: "1:1",
        message: "document is a sequence; each document must be a mapping with apiVersion, kind, metadata and spec",
    },
    Case { name: "document is a scalar", yaml: "---\njust some text\n", at: "2:1", message: "document is a scalar" },
    Case {
        name: "missing apiVersion",
        yaml: "kind: Volume\nmetadata:\n  name: data\nspec: {}\n",
        at: "1:1",
        message: "missing `apiVersion`; set it to berth.dev/v1alpha1",
    },
    Case {
        name: "foreign apiVersion",
        yaml: "apiVersion: v1\nkind: Volume\nmetadata:\n  name: data\nspec: {}\n",
        at: "1:13",
        message: "unknown apiVersion `v1`; berth knows berth.dev/v1alpha1",
    },
    Case {
        name: "missing kind",
        yaml: "apiVersion: berth.dev/v1alpha1\nmetadata:\n  name: data\nspec: {}\n",
        at: "1:1",
        message: "missing `kind`; use one of Network, Volume, Image, Container, DnsRecord, Route",
    },
    Case {
        name: "unknown kind lists the known ones",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Pod\nmetadata:\n  name: web\nspec: {}\n",
        at: "2:7",
        message: "unknown kind `Pod`; known kinds are Network, Volume, Image, Container, DnsRecord, Route",
    },
    Case {
        name: "kind in the wrong case gets a suggestion",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: volume\nmetadata:\n  name: data\nspec: {}\n",
        at: "2:7",
        message: "unknown kind `volume` (did you mean `Volume`?)",
    },
];

const METADATA_ERRORS: &[Case] = &[
    Case {
        name: "missing name",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  labels: {a: b}\nspec: {}\n",
        at: "4:3",
        message: "missing field `name`",
    },
    Case {
        name: "name not a DNS-1123 label",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: Data_1\nspec: {}\n",
        at: "4:9",
        message: "name `Data_1` is invalid: use only lowercase letters, digits and `-`",
    },
    Case {
        name: "name too long",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nspec: {}\n",
        at: "4:9",
        message: "it must be at most 63 characters",
    },
    Case {
        name: "namespace not a DNS-1123 label",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: data\n  namespace: Prod\nspec: {}\n",
        at: "5:14",
        message: "namespace `Prod` is invalid",
    },
    Case {
        name: "misspelt metadata field",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: data\n  lables: {a: b}\nspec: {}\n",
        at: "5:3",
        message: "unknown field `lables`, expected one of `name`, `namespace`, `labels`",
    },
    Case {
        name: "invalid label key",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: data\n  labels:\n    bad key: x\nspec: {}\n",
        at: "6:14",
        message: "label key `bad key` is invalid",
    },
];

const CONTAINER_ERRORS: &[Case] = &[
    Case {
        name: "unknown spec field lists the known ones",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  replica: 2\n",
        at: "7:3",
        message: "unknown field `replica`, expected one of `image`, `imageRef`",
    },
    Case {
        name: "wrong type",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  replicas: three\n",
        at: "7:13",
        message: "invalid type: string \"three\", expected an integer",
    },
    Case {
        name: "replicas out of range",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  replicas: 5000\n",
        at: "7:13",
        message: "replicas 5000 is out of range; use 0-1000",
    },
    Case {
        name: "container port out of range",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  ports:\n    - containerPort: 70000\n",
        at: "8:22",
        message: "port 70000 is out of range; use 1-65535",
    },
    Case {
        name: "host port neither a number nor auto",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  ports:\n    - containerPort: 80\n      hostPort: any\n",
        at: "9:17",
        message: "expected a port number (1-65535) or `auto`",
    },
    Case {
        name: "host port published twice",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  ports:\n    - {containerPort: 80, hostPort: 8080}\n    - {containerPort: 81, hostPort: 8080}\n",
        at: "9:37",
        message: "host port 8080 is published twice",
    },
    Case {
        name: "duration without unit",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  stopGracePeriod: 10\n",
        at: "7:20",
        message: "`10` has no unit; write e.g. 10s or 10ms",
    },
    Case {
        name: "duration that is not one",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  healthCheck:\n    tcpSocket: {port: 80}\n    interval: fast\n",
        at: "9:15",
        message: "`fast` is not a duration",
    },
    Case {
        name: "memory with an unknown unit",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  resources:\n    memory: 12MB\n",
        at: "8:13",
        message: "`12MB` has an unknown unit `MB`; use Ki, Mi, Gi, Ti, k, M, G, T or none",
    },
    Case {
        name: "cpus that are not a number",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  resources:\n    cpus: lots\n",
        at: "8:11",
        message: "`lots` is not a CPU count",
    },
    Case {
        name: "both image and imageRef",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  imageRef: busybox\n",
        at: "6:3",
        message: "only one of `image`, `imageRef` may be set, found image and imageRef",
    },
    Case {
        name: "neither image nor imageRef",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  command: [sh]\n",
        at: "6:3",
        message: "one of `image`, `imageRef` is required",
    },
    Case {
        name: "health check with two probes",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  healthCheck:\n    exec: {command: [true]}\n    tcpSocket: {port: 80}\n",
        at: "8:5",
        message: "only one of `exec`, `httpGet`, `tcpSocket` may be set, found exec and tcpSocket",
    },
    Case {
        name: "relative mount path",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  volumeMounts:\n    - mountPath: data\n      volume: data\n",
        at: "8:18",
        message: "mountPath `data` must be an absolute path",
    },
    Case {
        name: "mount with two sources",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  volumeMounts:\n    - mountPath: /data\n      volume: data\n      hostPath: /srv/data\n",
        at: "8:7",
        message: "only one of `volume`, `hostPath`, `tmpfs` may be set, found volume and hostPath",
    },
    Case {
        name: "reference of the wrong shape",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  networks:\n    - name: Front_End\n",
        at: "8:13",
        message: "Network name `Front_End` is invalid",
    },
    Case {
        name: "env variable without a value",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  env:\n    - name: MODE\n",
        at: "8:7",
        message: "one of `value`, `valueFrom` is required",
    },
    Case {
        name: "env variable set twice",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  env:\n    - {name: MODE, value: a}\n    - {name: MODE, value: b}\n",
        at: "9:14",
        message: "variable `MODE` is set twice",
    },
    Case {
        name: "unknown restart policy lists the allowed ones",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  restartPolicy: Sometimes\n",
        at: "7:18",
        message: "unknown variant `Sometimes`, expected one of `Always`, `OnFailure`, `Never`",
    },
    Case {
        name: "reserved engine label",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  labels:\n    berth.dev/name: other\n",
        at: "8:21",
        message: "label `berth.dev/name` is reserved",
    },
    Case {
        name: "host IP that is not an address",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  ports:\n    - containerPort: 80\n      hostIP: localhost\n",
        at: "9:15",
        message: "`localhost` is not an IP address",
    },
    Case {
        name: "depends on itself",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: web\nspec:\n  image: busybox\n  dependsOn:\n    - container: web\n",
        at: "8:18",
        message: "depends on itself; remove it from dependsOn",
    },
];

const OTHER_KIND_ERRORS: &[Case] = &[
    Case {
        name: "unknown reclaim policy",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: data\nspec:\n  reclaimPolicy: Keep\n",
        at: "6:18",
        message: "unknown variant `Keep`, expected `Retain` or `Delete`",
    },
    Case {
        name: "subnet prefix too long",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata:\n  name: app\nspec:\n  subnet: 10.0.0.0/33\n",
        at: "6:11",
        message: "`10.0.0.0/33` has prefix /33, longer than /32",
    },
    Case {
        name: "gateway outside the subnet",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Network\nmetadata:\n  name: app\nspec:\n  subnet: 10.0.0.0/24\n  gateway: 10.0.1.1\n",
        at: "7:12",
        message: "gateway 10.0.1.1 is outside subnet 10.0.0.0/24",
    },
    Case {
        name: "image with build and pull",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Image\nmetadata:\n  name: app\nspec:\n  build: {dockerfileInline: 'FROM scratch'}\n  pull: {ref: busybox}\n",
        at: "6:3",
        message: "only one of `build`, `pull` may be set, found build and pull",
    },
    Case {
        name: "build context that does not exist",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Image\nmetadata:\n  name: app\nspec:\n  build:\n    context: ./no-such-dir\n",
        at: "7:14",
        message: "build context `./no-such-dir` cannot be used",
    },
    Case {
        name: "dockerfile escaping the context",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Image\nmetadata:\n  name: app\nspec:\n  build:\n    dockerfileInline: FROM scratch\n    files:\n      ../etc/passwd: x\n",
        at: "9:22",
        message: "file `../etc/passwd` must be a relative path inside the build context",
    },
    Case {
        name: "A record target that is not IPv4",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: DnsRecord\nmetadata:\n  name: www\nspec:\n  type: A\n  targets: [\"fd00::1\"]\n",
        at: "7:13",
        message: "`fd00::1` is not an IPv4 address",
    },
    Case {
        name: "CNAME with two targets",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: DnsRecord\nmetadata:\n  name: www\nspec:\n  type: CNAME\n  targets: [a.example., b.example.]\n",
        at: "7:12",
        message: "a CNAME has exactly one target, found 2",
    },
    Case {
        name: "DNS record with targets and selector",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: DnsRecord\nmetadata:\n  name: www\nspec:\n  type: A\n  targets: [10.0.0.1]\n  selector: {matchLabels: {app: web}}\n",
        at: "6:3",
        message: "only one of `targets`, `selector` may be set",
    },
    Case {
        name: "empty selector",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: DnsRecord\nmetadata:\n  name: www\nspec:\n  type: A\n  selector:\n    matchLabels: {}\n",
        at: "8:18",
        message: "selector is empty and would match every Container",
    },
    Case {
        name: "selector for a TXT record",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: DnsRecord\nmetadata:\n  name: www\nspec:\n  type: TXT\n  selector:\n    matchLabels: {app: web}\n",
        at: "8:5",
        message: "a selector cannot produce TXT records",
    },
    Case {
        name: "malformed SRV target",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: DnsRecord\nmetadata:\n  name: svc\nspec:\n  type: SRV\n  targets:\n    - web.example.:8080\n",
        at: "8:7",
        message: "must be `priority weight port target`",
    },
    Case {
        name: "route without hostnames",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Route\nmetadata:\n  name: app\nspec:\n  hostnames: []\n  rules:\n    - backends: [{selector: {matchLabels: {app: web}}, port: 80}]\n",
        at: "6:14",
        message: "list at least one hostname",
    },
    Case {
        name: "route path without leading slash",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Route\nmetadata:\n  name: app\nspec:\n  hostnames: [app.test]\n  rules:\n    - matches: [{value: api}]\n      backends: [{selector: {matchLabels: {app: web}}, port: 80}]\n",
        at: "8:25",
        message: "path `api` must start with /",
    },
    Case {
        name: "route backend weight out of range",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Route\nmetadata:\n  name: app\nspec:\n  hostnames: [app.test]\n  rules:\n    - backends:\n        - selector: {matchLabels: {app: web}}\n          port: 80\n          weight: 5000\n",
        at: "11:19",
        message: "weight 5000 is out of range; use 0-1000",
    },
    Case {
        name: "wildcard in the middle of a hostname",
        yaml: "apiVersion: berth.dev/v1alpha1\nkind: Route\nmetadata:\n  name: app\nspec:\n  hostnames: [\"app.*.test\"]\n  rules:\n    - backends: [{selector: {matchLabels: {app: web}}, port: 80}]\n",
        at: "6:15",
        message: "hostname `app.*.test` is not a valid DNS name",
    },
];

fn load_one(dir: &Path, yaml: &str) -> Vec<ManifestError> {
    let path = dir.join("case.yaml");
    std::fs::write(&path, yaml).expect("write case");
    match manifest::load_paths(&[&path]) {
        Ok(set) => panic!("accepted {} objects", set.objects.len()),
        Err(errors) => errors.0,
    }
}

fn check(cases: &[Case]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for case in cases {
        let errors = std::panic::catch_unwind(|| load_one(dir.path(), case.yaml));
        let Ok(errors) = errors else {
            failures.push(format!("{}: was accepted or panicked", case.name));
            continue;
        };
        let matching = errors.iter().find(|e| {
            format!("{}:{}", e.position.line, e.position.column) == case.at && e.message.contains(case.message)
        });
        match matching {
            Some(error) => {
                let shown = error.to_string();
                assert!(shown.contains(&format!("case.yaml:{}: ", case.at)), "{}: display `{shown}`", case.name);
            }
            None => {
                let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                failures.push(format!(
                    "{}: wanted {} `{}`, got:\n    {}",
                    case.name,
                    case.at,
                    case.message,
                    got.join("\n    ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn header_errors() {
    check(HEADER_ERRORS);
}

#[test]
fn metadata_errors() {
    check(METADATA_ERRORS);
}

#[test]
fn container_errors() {
    check(CONTAINER_ERRORS);
}

#[test]
fn errors_of_other_kinds() {
    check(OTHER_KIND_ERRORS);
}

#[test]
fn the_catalogue_is_large_and_distinct() {
    let all: Vec<&Case> =
        [HEADER_ERRORS, METADATA_ERRORS, CONTAINER_ERRORS, OTHER_KIND_ERRORS].into_iter().flatten().collect();
    assert!(all.len() >= 30, "only {} cases", all.len());
    let names: std::collections::BTreeSet<&str> = all.iter().map(|c| c.name).collect();
    let bodies: std::collections::BTreeSet<&str> = all.iter().map(|c| c.yaml).collect();
    assert_eq!(names.len(), all.len(), "duplicate case names");
    assert_eq!(bodies.len(), all.len(), "duplicate case bodies");
}

#[test]
fn file_that_is_not_utf8_is_rejected_at_the_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.yaml");
    std::fs::write(&path, b"apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: caf\xe9\n").unwrap();
    let errors = manifest::load_paths(&[&path]).unwrap_err().0;
    assert_eq!((errors[0].position.line, errors[0].position.column), (4, 12));
    assert!(errors[0].message.contains("not valid UTF-8"), "{}", errors[0]);
}

#[test]
fn the_same_object_twice_is_reported_at_both_places() {
    let dir = tempfile::tempdir().unwrap();
    let volume = "apiVersion: berth.dev/v1alpha1\nkind: Volume\nmetadata:\n  name: data\nspec: {}\n";
    std::fs::write(dir.path().join("a.yaml"), volume).unwrap();
    std::fs::write(dir.path().join("b.yaml"), format!("# another copy\n{volume}")).unwrap();
    let errors = manifest::load_paths(&[dir.path()]).unwrap_err().0;
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{shown:#?}");
    assert!(shown[0].contains("b.yaml:5:9: Volume/default/data: declared twice: also at"), "{shown:#?}");
    assert!(shown[0].ends_with("a.yaml:4; names must be unique per kind and namespace"), "{shown:#?}");
    assert!(shown[1].contains("a.yaml:4:9: Volume/default/data: declared twice: also at"), "{shown:#?}");
    assert!(shown[1].contains("b.yaml:5;"), "{shown:#?}");
}

#[test]
fn a_dependency_cycle_is_reported_once() {
    let text = "\
apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: a}
spec: {image: busybox, dependsOn: [{container: b}]}
---
apiVersion: berth.dev/v1alpha1
kind: Container
metadata: {name: b}
spec: {image: busybox, dependsOn: [{container: a}]}
";
    let errors = manifest::load_text(text, "<api>", None).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].to_string(), "<api>:4:48: Container/default/a: spec.dependsOn[0].container: dependency cycle a → b → a; remove one of these dependsOn entries");
}

#[test]
fn every_error_of_a_set_is_reported_not_only_the_first() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one.yaml"), CONTAINER_ERRORS[3].yaml).unwrap();
    std::fs::write(
        dir.path().join("two.yaml"),
        format!("{}---\n{}", OTHER_KIND_ERRORS[0].yaml, OTHER_KIND_ERRORS[1].yaml),
    )
    .unwrap();
    let many = "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: Bad_Name\nspec:\n  image: busybox\n  replicas: -1\n  stopGracePeriod: soon\n  ports: [{containerPort: 0}]\n";
    std::fs::write(dir.path().join("three.yaml"), many).unwrap();
    let errors = manifest::load_paths(&[dir.path()]).unwrap_err().0;
    let files: Vec<&str> = errors.iter().map(|e| e.file.rsplit('/').next().unwrap()).collect();
    assert_eq!(
        files,
        ["one.yaml", "three.yaml", "three.yaml", "three.yaml", "three.yaml", "two.yaml", "two.yaml"],
        "{errors:#?}"
    );
}
