//! How much a manifest may cost to read: the bounds the positioned parse
//! enforces before anything is expanded (see [`super::yaml_tree`]).
//!
//! One set per process, set once at start from the command line
//! ([`LimitArgs`], on `berth serve` and `berth validate`), read by every
//! entry point: files, git commits, `/apply`, `PUT`.

use std::sync::OnceLock;

/// The bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Size a text may expand to with its aliases expanded (scalars' bytes
    /// plus one per value).
    pub expanded_bytes: u64,
    /// Documents in one file or request.
    pub documents: usize,
    /// Nesting depth.
    pub depth: usize,
    /// Bytes of one scalar value.
    pub value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { expanded_bytes: 8 << 20, documents: 1000, depth: 128, value_bytes: 1 << 20 }
    }
}

static LIMITS: OnceLock<Limits> = OnceLock::new();

/// The limits in force (the defaults unless [`set`] was called).
pub fn current() -> Limits {
    LIMITS.get().copied().unwrap_or_default()
}

/// Sets the limits for the rest of the process; the first call wins.
pub fn set(limits: Limits) {
    let _ = LIMITS.set(limits);
}

/// The flags that raise (or lower) the limits.
#[derive(clap::Args, Clone, Debug)]
pub struct LimitArgs {
    /// Largest size, in bytes, a manifest may expand to once YAML aliases are expanded.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().expanded_bytes)]
    pub max_manifest_expanded: u64,
    /// Most YAML documents in one manifest file or request.
    #[arg(long, value_name = "N", default_value_t = Limits::default().documents)]
    pub max_manifest_documents: usize,
    /// Deepest nesting of a manifest.
    #[arg(long, value_name = "N", default_value_t = Limits::default().depth)]
    pub max_manifest_depth: usize,
    /// Longest single value of a manifest, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().value_bytes)]
    pub max_manifest_value: usize,
}

impl From<&LimitArgs> for Limits {
    fn from(args: &LimitArgs) -> Self {
        Limits {
            expanded_bytes: args.max_manifest_expanded,
            documents: args.max_manifest_documents,
            depth: args.max_manifest_depth,
            value_bytes: args.max_manifest_value,
        }
    }
}
