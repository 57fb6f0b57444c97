//! The loader never panics, whatever it is fed: arbitrary bytes, arbitrary
//! YAML built from a grammar, and mutations of valid manifests.

use proptest::prelude::*;

use berth::manifest;

/// Arbitrary YAML-ish text: a tree of mappings, sequences and scalars drawn
/// from keys berth knows, so that the fuzzer reaches deep into the types.
fn yaml_value() -> impl Strategy<Value = String> {
    let keys = prop_oneof![
        Just("apiVersion"),
        Just("kind"),
        Just("metadata"),
        Just("name"),
        Just("spec"),
        Just("image"),
        Just("ports"),
        Just("containerPort"),
        Just("hostPort"),
        Just("replicas"),
        Just("env"),
        Just("value"),
        Just("valueFrom"),
        Just("volumeMounts"),
        Just("healthCheck"),
        Just("exec"),
        Just("selector"),
        Just("matchLabels"),
        Just("targets"),
        Just("type"),
        Just("rules"),
        Just("build"),
        Just("context"),
        Just("x"),
    ];
    let scalar = prop_oneof![
        Just("berth.dev/v1alpha1".to_string()),
        Just("Container".to_string()),
        Just("Route".to_string()),
        Just("DnsRecord".to_string()),
        Just("Image".to_string()),
        Just("auto".to_string()),
        Just("~".to_string()),
        Just("*anchor".to_string()),
        Just("&anchor x".to_string()),
        Just("!!binary aGk=".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-z0-9./:-]{0,12}",
        "\"[^\"\\\\]{0,8}\"",
    ];
    scalar.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec((keys.clone(), inner.clone()), 0..6).prop_map(|entries| {
                let body: Vec<String> = entries.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", body.join(", "))
            }),
            prop::collection::vec(inner, 0..5).prop_map(|items| format!("[{}]", items.join(", "))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = manifest::load_text(&text, "<fuzz>", None);
    }

    #[test]
    fn arbitrary_yaml_never_panics(docs in prop::collection::vec(yaml_value(), 1..4)) {
        let text = docs.join("\n---\n");
        let _ = manifest::load_text(&text, "<fuzz>", None);
    }

    #[test]
    fn mutated_examples_never_panic(cut in 0usize..4000, insert in "[ :\\-\\[\\]{}#&*!|>'\"\\n\\t]{1,4}") {
        let text = std::fs::read_to_string(crate::support::repo_path("examples/03-api.yaml")).unwrap();
        let at = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count()).unwrap_or(0);
        let mutated = format!("{}{}{}", &text[..at], insert, &text[at..]);
        let _ = manifest::load_text(&mutated, "<fuzz>", None);
    }
}

#[test]
fn hostile_documents_are_refused_not_obeyed() {
    // Billion laughs: aliases must not be expanded into gigabytes.
    let mut laughs = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    let mut previous = 'a';
    for name in 'b'..='j' {
        laughs.push_str(&format!("{name}: &{name} [*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous}]\n"));
        previous = name;
    }
    assert!(manifest::load_text(&laughs, "<fuzz>", None).is_err());
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(manifest::load_text(&deep, "<fuzz>", None).is_err());
    let huge = "#".repeat(manifest::MAX_FILE_BYTES + 1);
    let errors = manifest::load_text(&huge, "<fuzz>", None).unwrap_err();
    assert!(errors.to_string().contains("over the 8388608-byte limit"), "{errors}");
}
