//! The protobuf envelopes of `proto/berth/ingress/v1/ingress.proto`, as
//! prost generates them. The generated file is committed, so building
//! berth needs no `protoc`; a test regenerates it (prost-build over
//! protox, both pure Rust) and fails when the committed one is out of step
//! with the `.proto`. `BERTH_REGENERATE=1 cargo test --lib proto` rewrites it.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
mod generated {
    include!("berth.ingress.v1.rs");
}

pub use generated::*;

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_committed_code_is_what_the_proto_generates() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let descriptors =
            protox::compile(["berth/ingress/v1/ingress.proto"], [root.join("proto")]).expect("the .proto compiles");
        let out = tempfile::tempdir().expect("temporary directory");
        prost_build::Config::new().out_dir(out.path()).compile_fds(descriptors).expect("prost generates the code");
        let generated = std::fs::read_to_string(out.path().join("berth.ingress.v1.rs")).expect("generated file");
        let committed_path = root.join("src/ingress/proto/berth.ingress.v1.rs");
        if std::env::var_os("BERTH_REGENERATE").is_some() {
            std::fs::write(&committed_path, &generated).expect("write the generated code");
        }
        let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
        assert!(
            committed == generated,
            "src/ingress/proto/berth.ingress.v1.rs is out of step with proto/berth/ingress/v1/ingress.proto; \
             run `BERTH_REGENERATE=1 cargo test --lib proto` and commit the result"
        );
    }
}
