//! What a manifest may take from the host: its paths, its files, its
//! privileges and its environment.
//!
//! Whoever can write a manifest (the API token, a watched directory, a git
//! branch) can otherwise mount `/`, read any file as berth through
//! `secretFile`, run a privileged container or read berth's own environment
//! (its token included) through `hostEnv`. The policy is the operator's
//! answer, set once at start from `berth serve`'s flags ([`PolicyArgs`]),
//! and the defaults refuse all four: a new install grants nothing it was
//! not told to.
//!
//! It is enforced twice. The loader checks every object it reads from the
//! server's entry points (files, git commits, `/apply`, `PUT`) and reports a
//! refusal at the field's line and column, so nothing refused is ever
//! stored. The controller checks again just before it acts (paths are
//! resolved then, symlinks included), so an object stored by an older berth
//! or a symlink changed since does not get through either (an Image's
//! context is then checked against the grants and the followed directories,
//! its manifest's directory being unknown by then). A process that never
//! set a policy (the CLI's own `validate`, `apply`, in-process tests)
//! checks nothing here: the policy is the server's.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use crate::api::container::SecurityContext;
use crate::api::{AnyObject, FieldErrors, FieldPath};

/// Capabilities that amount to the host's root (escaping the container,
/// loading kernel modules, reading any file, tracing host processes): asking
/// for one is asking for `privileged`.
const HOST_LEVEL_CAPABILITIES: [&str; 11] = [
    "ALL",
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
    "BPF",
    "PERFMON",
    "MAC_ADMIN",
    "SYS_TIME",
    "SYSLOG",
];

/// The grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPolicy {
    /// Host directories that `hostPath` mounts and build contexts outside
    /// their manifest's directory may name (resolved, symlinks included).
    /// Empty: none.
    pub host_paths: Vec<PathBuf>,
    /// The directory every `secretFile` must resolve into.
    pub secret_dir: PathBuf,
    /// Whether privileged containers and host-level capabilities are allowed.
    pub privileged: bool,
    /// Host environment variables `hostEnv` may read; `*` allows any.
    pub host_env: Vec<String>,
    /// Directories berth follows (`--manifests`, the git checkouts),
    /// resolved: a build context in one is granted wherever the manifest
    /// naming it comes from (`berth apply -f` of a followed directory sends
    /// its contexts as host paths; the controller checks stored Images
    /// against them).
    pub manifest_dirs: Vec<PathBuf>,
}

static POLICY: OnceLock<HostPolicy> = OnceLock::new();

/// The policy in force, if this process set one.
pub fn current() -> Option<&'static HostPolicy> {
    POLICY.get()
}

/// Sets the policy for the rest of the process; the first call wins.
pub fn set(policy: HostPolicy) {
    let _ = POLICY.set(policy);
}

/// The first refusal of the policy in force for a stored `object`, in
/// words (`spec.field: why`); `None` when it passes or no policy is set.
/// The controller asks before it acts.
pub fn refusal(object: &AnyObject) -> Option<String> {
    current()?.check(object, None).0.into_iter().next().map(|refused| refused.to_string())
}

/// The flags that grant what the defaults refuse.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct PolicyArgs {
    /// Host directories that hostPath mounts and build contexts may name,
    /// comma-separated (`/` allows any). Default: none.
    #[arg(long, value_name = "DIR,...", value_delimiter = ',')]
    pub allow_host_paths: Vec<PathBuf>,
    /// The directory secretFile values must resolve into (symlinks
    /// resolved). Default: `secrets` in the state directory.
    #[arg(long, value_name = "DIR")]
    pub secret_dir: Option<PathBuf>,
    /// Allow privileged containers and host-level capabilities (ALL,
    /// SYS_ADMIN, SYS_MODULE, SYS_RAWIO, SYS_PTRACE, DAC_READ_SEARCH, BPF,
    /// PERFMON, MAC_ADMIN, SYS_TIME, SYSLOG).
    #[arg(long)]
    pub allow_privileged: bool,
    /// Host environment variables hostEnv may read, comma-separated (`*`
    /// allows any). Default: none.
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub allow_host_env: Vec<String>,
}

impl PolicyArgs {
    /// The policy these flags grant, with the secret directory defaulting
    /// into `state_dir`.
    pub fn policy(&self, state_dir: &Path, manifest_dirs: &[PathBuf]) -> Result<HostPolicy, String> {
        let resolve = |flag: &str, path: &Path| {
            std::path::absolute(path)
                .map_err(|e| e.to_string())
                .and_then(|path| resolve_on_host(&path))
                .map_err(|why| format!("{flag} {}: {why}", path.display()))
        };
        let host_paths = self.allow_host_paths.iter().map(|p| resolve("--allow-host-paths", p));
        let secret_dir = self.secret_dir.clone().unwrap_or_else(|| state_dir.join("secrets"));
        Ok(HostPolicy {
            host_paths: host_paths.collect::<Result<_, _>>()?,
            secret_dir: resolve("--secret-dir", &secret_dir)?,
            privileged: self.allow_privileged,
            host_env: self.allow_host_env.clone(),
            manifest_dirs: manifest_dirs.iter().map(|d| resolve("--manifests", d)).collect::<Result<_, _>>()?,
        })
    }
}

impl HostPolicy {
    /// Every refusal for `object`, at its field; `base_dir` is the directory
    /// of the manifest it came from (a build context inside it needs no grant).
    pub fn check(&self, object: &AnyObject, base_dir: Option<&Path>) -> FieldErrors {
        let mut errors = FieldErrors::default();
        let spec = FieldPath::root().key("spec");
        match object {
            AnyObject::Container(container) => {
                let spec_of = &container.spec;
                for (i, mount) in spec_of.volume_mounts.iter().enumerate() {
                    if let Some(path) = &mount.host_path {
                        if let Err(why) = self.host_path(path) {
                            errors.push(&spec.key("volumeMounts").index(i).key("hostPath"), why);
                        }
                    }
                }
                for (i, var) in spec_of.env.iter().enumerate() {
                    let Some(from) = &var.value_from else { continue };
                    let at = spec.key("env").index(i).key("valueFrom");
                    if let Some(path) = &from.secret_file {
                        if let Err(why) = self.secret_file(path) {
                            errors.push(&at.key("secretFile"), why);
                        }
                    }
                    if let Some(name) = &from.host_env {
                        if let Err(why) = self.host_env(name) {
                            errors.push(&at.key("hostEnv"), why);
                        }
                    }
                }
                if let Some(security) = &spec_of.security_context {
                    for (field, why) in self.privileges(security) {
                        errors.push(&spec.key("securityContext").key(field), why);
                    }
                }
            }
            AnyObject::Volume(volume) => {
                // The local driver mounts `device` (`type: none, o: bind` is a
                // bind mount of a host path; nfs, cifs and the like mount
                // what they name): a host mount like any other.
                if let Some(device) = volume.spec.driver_opts.get("device") {
                    if let Err(why) = self.volume_device(device) {
                        errors.push(&spec.key("driverOpts").key("device"), why);
                    }
                }
            }
            AnyObject::Image(image) => {
                let context = image.spec.build.as_ref().and_then(|build| build.context.as_deref());
                if let Some(context) = context {
                    if let Err(why) = self.build_context(context, base_dir) {
                        errors.push(&spec.key("build").key("context"), why);
                    }
                }
            }
            _ => {}
        }
        errors
    }

    /// Whether `path` may be mounted: it must resolve into a granted directory.
    pub fn host_path(&self, path: &str) -> Result<(), String> {
        let resolved = resolve_on_host(Path::new(path)).map_err(|why| format!("hostPath `{path}` {why}"))?;
        if self.host_paths.iter().any(|granted| resolved.starts_with(granted)) {
            return Ok(());
        }
        Err(format!(
            "hostPath `{path}`{} is outside the host paths berth may mount ({}); start `berth serve` with \
             --allow-host-paths {} (or a directory above it) to allow it",
            resolved_note(path, &resolved),
            self.granted_paths(),
            resolved.display()
        ))
    }

    /// Whether a Volume may mount `device`: a host path must resolve into a
    /// granted directory; anything else (a remote file system) needs the
    /// whole host granted (`--allow-host-paths /`).
    fn volume_device(&self, device: &str) -> Result<(), String> {
        if device.starts_with('/') {
            return self.host_path(device).map_err(|why| why.replacen("hostPath", "driverOpts.device", 1));
        }
        if self.host_paths.iter().any(|granted| granted == Path::new("/")) {
            return Ok(());
        }
        Err(format!(
            "driverOpts.device `{device}` mounts a file system from outside the host; start `berth serve` with \
             --allow-host-paths / to allow volumes that mount anything"
        ))
    }

    /// The file to read for `secretFile: path`, resolved (symlinks
    /// included), if it lies inside the secret directory.
    pub fn secret_file(&self, path: &str) -> Result<PathBuf, String> {
        let resolved = resolve_on_host(Path::new(path)).map_err(|why| format!("secret file `{path}` {why}"))?;
        if resolved.starts_with(&self.secret_dir) && resolved != self.secret_dir {
            return Ok(resolved);
        }
        Err(format!(
            "secret file `{path}`{} is outside the secret directory {}; move it there or start `berth serve` \
             with --secret-dir DIR naming the directory that holds it",
            resolved_note(path, &resolved),
            self.secret_dir.display()
        ))
    }

    /// Whether `hostEnv: name` may be read.
    pub fn host_env(&self, name: &str) -> Result<(), String> {
        if self.host_env.iter().any(|granted| granted == "*" || granted == name) {
            return Ok(());
        }
        Err(format!(
            "host environment variable `{name}` may not be read (allowed: {}); start `berth serve` with \
             --allow-host-env {name} to allow it",
            if self.host_env.is_empty() { "none".to_string() } else { self.host_env.join(", ") }
        ))
    }

    /// Each privilege `security` asks for that is not granted: the field
    /// (`privileged`, `capabilities`) and why.
    pub fn privileges(&self, security: &SecurityContext) -> Vec<(&'static str, String)> {
        if self.privileged {
            return Vec::new();
        }
        let mut refused = Vec::new();
        if security.privileged {
            refused.push((
                "privileged",
                "privileged containers are refused; start `berth serve` with --allow-privileged to allow them"
                    .to_string(),
            ));
        }
        let added = security.capabilities.iter().flat_map(|c| c.add.iter());
        for capability in added {
            // The engines upper-case before they strip `CAP_`: so does this.
            let upper = capability.to_ascii_uppercase();
            let name = upper.trim_start_matches("CAP_");
            if HOST_LEVEL_CAPABILITIES.contains(&name) {
                refused.push((
                    "capabilities",
                    format!(
                        "capability {name} gives the container the host's privileges and is refused; start \
                         `berth serve` with --allow-privileged to allow it"
                    ),
                ));
            }
        }
        refused
    }

    /// Whether an Image may be built from `context`: inside its manifest's
    /// directory, or inside a granted host path.
    fn build_context(&self, context: &str, base_dir: Option<&Path>) -> Result<(), String> {
        let given = Path::new(context);
        let joined = match base_dir {
            Some(base) if !given.is_absolute() => base.join(given),
            _ => given.to_path_buf(),
        };
        let resolved = resolve_on_host(&joined).map_err(|why| format!("build context `{context}` {why}"))?;
        let inside_manifests =
            base_dir.and_then(|base| std::fs::canonicalize(base).ok()).is_some_and(|base| resolved.starts_with(base));
        let granted = self.host_paths.iter().chain(&self.manifest_dirs).any(|granted| resolved.starts_with(granted));
        if inside_manifests || granted {
            return Ok(());
        }
        let (outside, fix) = match base_dir {
            Some(_) => ("the manifest's directory and ", "move the context next to the manifest or "),
            // A request's context (`berth apply` sends it absolute) is a
            // directory of the server's host like any other.
            None => ("", ""),
        };
        Err(format!(
            "build context `{context}`{} is outside {outside}the host paths berth may read ({}); {fix}start \
             `berth serve` with --allow-host-paths {} (or a directory above it) to allow it",
            resolved_note(context, &resolved),
            self.granted_paths(),
            resolved.display()
        ))
    }

    fn granted_paths(&self) -> String {
        if self.host_paths.is_empty() {
            return "none".to_string();
        }
        self.host_paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}

/// ` (resolves to X)` when symlinks made `given` another path.
fn resolved_note(given: &str, resolved: &Path) -> String {
    if Path::new(given) == resolved {
        String::new()
    } else {
        format!(" (resolves to {})", resolved.display())
    }
}

/// `path` as the host will see it: absolute, without `..`, its longest
/// existing part with symlinks resolved and the rest appended.
pub fn resolve_on_host(path: &Path) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err("must be an absolute path".to_string());
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err("must not contain `..`; write the path it means".to_string());
    }
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match std::fs::canonicalize(&existing) {
            Ok(resolved) => {
                return Ok(rest.iter().rev().fold(resolved, |path: PathBuf, part| path.join(part)));
            }
            Err(_) => match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    existing = parent.to_path_buf();
                }
                _ => return Ok(path.to_path_buf()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl HostPolicy {
        /// Grants everything (berth before the policy existed).
        fn unrestricted() -> HostPolicy {
            HostPolicy {
                host_paths: vec![PathBuf::from("/")],
                secret_dir: PathBuf::from("/"),
                privileged: true,
                host_env: vec!["*".to_string()],
                manifest_dirs: Vec::new(),
            }
        }
    }

    fn policy(dir: &Path) -> HostPolicy {
        HostPolicy {
            host_paths: vec![resolve_on_host(&dir.join("data")).unwrap()],
            secret_dir: resolve_on_host(&dir.join("secrets")).unwrap(),
            privileged: false,
            host_env: vec!["TZ".to_string()],
            manifest_dirs: Vec::new(),
        }
    }

    #[test]
    fn host_paths_must_resolve_into_a_granted_directory_even_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data/app")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("data/escape")).unwrap();
        let policy = policy(dir.path());
        let data = dir.path().join("data");
        assert!(policy.host_path(&data.join("app").display().to_string()).is_ok());
        assert!(policy.host_path(&data.join("not-yet/made").display().to_string()).is_ok());
        let escape = policy.host_path(&data.join("escape/shadow").display().to_string()).unwrap_err();
        assert!(escape.contains("resolves to /etc/shadow") && escape.contains("--allow-host-paths"), "{escape}");
        let dotdot = policy.host_path(&format!("{}/../../etc", data.display())).unwrap_err();
        assert!(dotdot.contains("`..`"), "{dotdot}");
        assert!(policy.host_path("/").unwrap_err().contains("--allow-host-paths /"));
        assert!(HostPolicy::unrestricted().host_path("/etc").is_ok());
    }

    #[test]
    fn a_volume_device_is_a_host_mount() {
        let dir = tempfile::tempdir().unwrap();
        let policy = policy(dir.path());
        assert!(policy.volume_device(&dir.path().join("data/x").display().to_string()).is_ok());
        let root = policy.volume_device("/").unwrap_err();
        assert!(root.starts_with("driverOpts.device `/`") && root.contains("--allow-host-paths"), "{root}");
        assert!(policy.volume_device(":/export").unwrap_err().contains("--allow-host-paths /"));
        assert!(HostPolicy::unrestricted().volume_device("server:/export").is_ok());
    }

    #[test]
    fn secret_files_must_resolve_into_the_secret_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        std::fs::write(dir.path().join("secrets/db"), "pw").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("secrets/passwd")).unwrap();
        let policy = policy(dir.path());
        let db = dir.path().join("secrets/db").display().to_string();
        assert!(policy.secret_file(&db).unwrap().ends_with("secrets/db"));
        let link = policy.secret_file(&dir.path().join("secrets/passwd").display().to_string()).unwrap_err();
        assert!(link.contains("resolves to /etc/passwd") && link.contains("--secret-dir"), "{link}");
        assert!(policy.secret_file("/etc/shadow").is_err());
    }

    #[test]
    fn host_env_and_privileges_need_their_grants() {
        let dir = tempfile::tempdir().unwrap();
        let policy = policy(dir.path());
        assert!(policy.host_env("TZ").is_ok());
        assert!(policy.host_env("BERTH_TOKEN").unwrap_err().contains("--allow-host-env BERTH_TOKEN"));
        let security: SecurityContext = serde_json::from_value(serde_json::json!({
            "privileged": true, "capabilities": {"add": ["NET_ADMIN", "cap_sys_admin"]}
        }))
        .unwrap();
        let refused: Vec<&str> = policy.privileges(&security).iter().map(|(field, _)| *field).collect();
        assert_eq!(refused, ["privileged", "capabilities"]);
        assert!(HostPolicy { privileged: true, ..policy }.privileges(&security).is_empty());
    }
}
