//! Model-based test of the directory source: random sequences of ordinary
//! file operations on a real directory (real files, real notify), checked
//! against a model once the directory settles.
//!
//! The operations are what editors, `mv` and people do: create, edit in
//! place, truncate then write (a slow writer), write a temporary file and
//! rename it over the original, `mv`, split one file into two, merge two
//! into one, move an object between files (either file saved first),
//! delete, an invalid edit and its fix, with random small delays between
//! and inside them. The model is the union of what the valid files declare,
//! an invalid file keeping its last good objects.
//!
//! After each sequence settles: the store holds exactly the model's objects
//! at the model's versions, every object is owned by a file that declares
//! it, no source record names a file that is gone or carries an error the
//! files do not explain; and on the fake engine, with a controller running,
//! each declared Container has one container and a Container whose spec
//! did not change kept the very container it had (no engine removal).
//!
//! `BERTH_DIR_MODEL_SEQUENCES` sets how many sequences run (300 by
//! default), `BERTH_DIR_MODEL_SEED` runs the one sequence a failure printed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth::api::{AnyObject, Kind};
use berth::controller::runtime::Shutdown;
use berth::engine::fake::FakeEngine;
use berth::engine::labels;
use berth::source::dir::DirSource;
use berth::store::Store;
use futures::StreamExt;
use tokio::sync::watch;

use crate::support::controller::{poll_until, Running};

/// How long a file must be left alone before a deletion is believed, in
/// these tests; every pause inside an operation is far shorter.
const STABLE_FOR: Duration = Duration::from_millis(400);
/// Longest a sequence may take to settle after its last operation.
const SETTLE: Duration = Duration::from_secs(20);
/// Sequences run at once.
const PARALLEL: usize = 6;
/// Names objects are drawn from.
const NAMES: [&str; 8] = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"];

/// What a file on disk says, as the model sees it.
#[derive(Clone, Debug, Default)]
struct FileModel {
    /// Its objects (name, version) when valid.
    objects: Vec<(String, u32)>,
    /// Whether its content is valid.
    valid: bool,
    /// The objects of its last valid content: what it keeps while invalid.
    last_good: Vec<(String, u32)>,
}

#[derive(Debug, Default)]
struct Model {
    files: BTreeMap<String, FileModel>,
    next_file: usize,
}

impl Model {
    /// What the directory declares: name → version.
    fn declared(&self) -> BTreeMap<String, u32> {
        let mut declared = BTreeMap::new();
        for file in self.files.values() {
            let objects = if file.valid { &file.objects } else { &file.last_good };
            declared.extend(objects.iter().cloned());
        }
        declared
    }

    fn valid_files(&self) -> Vec<String> {
        self.files.iter().filter(|(_, f)| f.valid).map(|(n, _)| n.clone()).collect()
    }

    fn free_names(&self) -> Vec<&'static str> {
        let declared = self.declared();
        let written: BTreeSet<&str> =
            self.files.values().flat_map(|f| f.objects.iter().map(|(n, _)| n.as_str())).collect();
        NAMES.iter().copied().filter(|n| !declared.contains_key(*n) && !written.contains(n)).collect()
    }

    fn new_file_name(&mut self, rng: &mut fastrand::Rng) -> String {
        self.next_file += 1;
        let ext = if rng.bool() { "yaml" } else { "yml" };
        let sub = if rng.u8(0..4) == 0 { "sub/" } else { "" };
        format!("{sub}f{}.{ext}", self.next_file)
    }
}

fn container(name: &str, version: u32) -> String {
    format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata:\n  name: {name}\nspec:\n  image: busybox\n  command: [sleep, '3600']\n  stopGracePeriod: 1s\n  env:\n    - name: VERSION\n      value: 'v{version}'\n"
    )
}

fn render(objects: &[(String, u32)]) -> String {
    objects.iter().map(|(n, v)| container(n, *v)).collect::<Vec<_>>().join("---\n")
}

fn invalid_text(rng: &mut fastrand::Rng, objects: &[(String, u32)]) -> String {
    let good = render(objects);
    let glue = if good.is_empty() { "" } else { "---\n" };
    match rng.u8(0..3) {
        // A syntax error.
        0 => "apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {name: [unclosed\n".to_string(),
        // A field berth does not know, after the good documents.
        1 => format!("{good}{glue}apiVersion: berth.dev/v1alpha1\nkind: Container\nmetadata: {{name: bad}}\nspec: {{image: busybox, colour: red}}\n"),
        // One object declared twice.
        _ => format!("{good}{glue}{}---\n{}", container("twice", 1), container("twice", 2)),
    }
}

/// The file operations, each on the real directory.
struct Disk<'a> {
    dir: &'a Path,
    rng: &'a mut fastrand::Rng,
}

impl Disk<'_> {
    async fn pause(&mut self) {
        let ms = self.rng.u64(0..=25);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `text` to `name` the way one of the editors would.
    async fn write(&mut self, name: &str, text: &str) {
        let path = self.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match self.rng.u8(0..3) {
            0 => std::fs::write(&path, text).unwrap(),
            1 => {
                // Truncate, then write in two parts: a slow writer.
                let mut file = std::fs::File::create(&path).unwrap();
                self.pause().await;
                let (first, rest) = text.split_at(text.len() / 2);
                file.write_all(first.as_bytes()).unwrap();
                file.flush().unwrap();
                self.pause().await;
                file.write_all(rest.as_bytes()).unwrap();
            }
            // vim/emacs style: a temporary file renamed over the original.
            _ => self.write_atomically(name, text).await,
        }
    }

    /// Writes `text` to a temporary file renamed over `name`.
    async fn write_atomically(&mut self, name: &str, text: &str) {
        let path = self.path(name);
        let temp = path.with_file_name(format!(".{}.tmp", path.file_name().unwrap().to_string_lossy()));
        std::fs::write(&temp, text).unwrap();
        self.pause().await;
        std::fs::rename(&temp, &path).unwrap();
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.path(name)).unwrap();
    }

    fn rename(&self, from: &str, to: &str) {
        std::fs::create_dir_all(self.path(to).parent().unwrap()).unwrap();
        std::fs::rename(self.path(from), self.path(to)).unwrap();
    }
}

/// Operation 9 is the invalid edit: the runner settles the directory
/// before it, because its model (the last good version kept) depends on
/// what the source has read.
const BREAK: u8 = 9;
/// Operations are drawn from `0..OPS`.
const OPS: u8 = 11;

/// Operation `op`, applied to the disk and to the model. Returns a
/// description for the failure report, or `None` when it did not apply.
async fn step(model: &mut Model, disk: &mut Disk<'_>, op: u8) -> Option<String> {
    let valid = model.valid_files();
    let pick = |rng: &mut fastrand::Rng, files: &[String]| files[rng.usize(0..files.len())].clone();
    match op {
        0 | 1 => {
            let free = model.free_names();
            if free.is_empty() {
                return None;
            }
            let count = disk.rng.usize(1..=free.len().min(2));
            let objects: Vec<(String, u32)> = free[..count].iter().map(|n| (n.to_string(), 1)).collect();
            let name = model.new_file_name(disk.rng);
            disk.write(&name, &render(&objects)).await;
            model.files.insert(name.clone(), FileModel { objects: objects.clone(), valid: true, last_good: objects });
            Some(format!("create {name}"))
        }
        2 | 3 => {
            if valid.is_empty() {
                return None;
            }
            let name = pick(disk.rng, &valid);
            let mut file = model.files[&name].clone();
            if file.objects.is_empty() {
                return None;
            }
            let index = disk.rng.usize(0..file.objects.len());
            file.objects[index].1 += 1;
            file.last_good = file.objects.clone();
            disk.write(&name, &render(&file.objects)).await;
            let edited = file.objects[index].0.clone();
            model.files.insert(name.clone(), file);
            Some(format!("edit {edited} in {name}"))
        }
        4 => {
            if valid.is_empty() {
                return None;
            }
            let from = pick(disk.rng, &valid);
            let to = model.new_file_name(disk.rng);
            disk.rename(&from, &to);
            let file = model.files.remove(&from).unwrap();
            model.files.insert(to.clone(), file);
            Some(format!("mv {from} {to}"))
        }
        5 => {
            let splittable: Vec<String> =
                valid.iter().filter(|n| model.files[*n].objects.len() >= 2).cloned().collect();
            if splittable.is_empty() {
                return None;
            }
            let name = pick(disk.rng, &splittable);
            let mut file = model.files[&name].clone();
            let moved = file.objects.split_off(1);
            file.last_good = file.objects.clone();
            let new = model.new_file_name(disk.rng);
            let first_new = disk.rng.bool();
            if first_new {
                disk.write(&new, &render(&moved)).await;
                disk.pause().await;
                disk.write(&name, &render(&file.objects)).await;
            } else {
                disk.write(&name, &render(&file.objects)).await;
                disk.pause().await;
                disk.write(&new, &render(&moved)).await;
            }
            model.files.insert(name.clone(), file);
            model.files.insert(new.clone(), FileModel { objects: moved.clone(), valid: true, last_good: moved });
            Some(format!("split {name} into {new} (new first: {first_new})"))
        }
        6 => {
            if valid.len() < 2 {
                return None;
            }
            let into = pick(disk.rng, &valid);
            let others: Vec<String> = valid.iter().filter(|n| **n != into).cloned().collect();
            let from = pick(disk.rng, &others);
            let mut merged = model.files[&into].clone();
            merged.objects.extend(model.files[&from].objects.clone());
            merged.last_good = merged.objects.clone();
            if disk.rng.bool() {
                disk.write(&into, &render(&merged.objects)).await;
                disk.pause().await;
                disk.remove(&from);
            } else {
                disk.remove(&from);
                disk.pause().await;
                disk.write(&into, &render(&merged.objects)).await;
            }
            model.files.remove(&from);
            model.files.insert(into.clone(), merged);
            Some(format!("merge {from} into {into}"))
        }
        7 => {
            if valid.len() < 2 {
                return None;
            }
            let from = pick(disk.rng, &valid);
            if model.files[&from].objects.is_empty() {
                return None;
            }
            let others: Vec<String> = valid.iter().filter(|n| **n != from).cloned().collect();
            let to = pick(disk.rng, &others);
            let mut source = model.files[&from].clone();
            let mut target = model.files[&to].clone();
            let index = disk.rng.usize(0..source.objects.len());
            let object = source.objects.remove(index);
            target.objects.push(object.clone());
            source.last_good = source.objects.clone();
            target.last_good = target.objects.clone();
            let paste_first = disk.rng.bool();
            if paste_first {
                disk.write(&to, &render(&target.objects)).await;
                disk.pause().await;
                disk.write(&from, &render(&source.objects)).await;
            } else {
                disk.write(&from, &render(&source.objects)).await;
                disk.pause().await;
                disk.write(&to, &render(&target.objects)).await;
            }
            model.files.insert(from.clone(), source);
            model.files.insert(to.clone(), target);
            Some(format!("move {} from {from} to {to} (paste first: {paste_first})", object.0))
        }
        8 => {
            if model.files.is_empty() || disk.rng.u8(0..2) == 0 {
                return None;
            }
            let names: Vec<String> = model.files.keys().cloned().collect();
            let name = pick(disk.rng, &names);
            disk.remove(&name);
            model.files.remove(&name);
            Some(format!("rm {name}"))
        }
        BREAK => {
            if valid.is_empty() {
                return None;
            }
            let name = pick(disk.rng, &valid);
            let mut file = model.files[&name].clone();
            let text = invalid_text(disk.rng, &file.objects);
            // Atomically: a slow writer's valid prefix would be applied
            // (additions are not delayed), and the model could not say
            // which version is the last good one.
            disk.write_atomically(&name, &text).await;
            file.valid = false;
            model.files.insert(name.clone(), file);
            Some(format!("break {name}"))
        }
        _ => {
            let broken: Vec<String> = model.files.iter().filter(|(_, f)| !f.valid).map(|(n, _)| n.clone()).collect();
            if broken.is_empty() {
                return None;
            }
            let name = pick(disk.rng, &broken);
            let mut file = model.files[&name].clone();
            file.objects = file.last_good.clone();
            for object in &mut file.objects {
                object.1 += u32::from(disk.rng.bool());
            }
            file.last_good = file.objects.clone();
            file.valid = true;
            disk.write(&name, &render(&file.objects)).await;
            model.files.insert(name.clone(), file);
            Some(format!("fix {name}"))
        }
    }
}

/// Everything one sequence runs on.
struct Bench {
    dir: tempfile::TempDir,
    store: Store,
    fake: FakeEngine,
    shutdown: watch::Sender<Shutdown>,
    source: tokio::task::JoinHandle<berth::start_error::Result<()>>,
    controller: Running,
    _state: tempfile::TempDir,
}

impl Bench {
    fn start() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let store = Store::open(state.path()).unwrap();
        let fake = FakeEngine::new();
        fake.preload_image("busybox");
        let controller = Running::start(&store, Arc::new(fake.clone()));
        let source = DirSource::new(store.clone(), &[dir.path().to_path_buf()]).unwrap().with_stable_for(STABLE_FOR);
        let (shutdown, receiver) = watch::channel(Shutdown::Running);
        let source = tokio::spawn(source.run(receiver));
        Bench { dir, store, fake, shutdown, source, controller, _state: state }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(Shutdown::Drain);
        let _ = self.source.await;
        self.controller.crash().await;
    }

    /// Why the store and the engine do not match the model yet, if they don't.
    fn mismatch(&self, model: &Model) -> Option<String> {
        let declared = model.declared();
        let root = self.dir.path().canonicalize().unwrap();
        let mut stored = BTreeMap::new();
        for object in self.store.list(Some(Kind::Container), None).unwrap() {
            let meta = object.metadata();
            if meta.deletion_timestamp.is_some() {
                continue;
            }
            let version = version_of(&object);
            let owner = meta.source.as_ref().and_then(|s| s.path.clone()).unwrap_or_default();
            let file = Path::new(&owner).strip_prefix(&root).map(|p| p.display().to_string()).unwrap_or(owner);
            let declares = model.files.get(&file).is_some_and(|f| {
                let objects = if f.valid { &f.objects } else { &f.last_good };
                objects.iter().any(|(n, _)| *n == meta.name)
            });
            if !declares {
                return Some(format!("{} is owned by {file}, which does not declare it", meta.name));
            }
            stored.insert(meta.name.clone(), version);
        }
        if stored != declared {
            return Some(format!("store {stored:?} != model {declared:?}"));
        }
        for record in self.store.sources().unwrap() {
            let path = PathBuf::from(record.source.path.clone().unwrap_or_default());
            if !path.exists() {
                return Some(format!("a source record names {}, which is gone", path.display()));
            }
            let file = path.strip_prefix(&root).unwrap().display().to_string();
            let invalid = model.files.get(&file).is_some_and(|f| !f.valid);
            if record.errors.is_empty() == invalid {
                return Some(format!("{file}: errors {:?} but the file is valid: {}", record.errors, !invalid));
            }
        }
        // The engine: one running container per declared Container, at its
        // generation.
        let mut running: BTreeMap<String, usize> = BTreeMap::new();
        for container in self.fake.containers() {
            if let Some(name) = container.labels.get(labels::NAME) {
                *running.entry(name.clone()).or_default() += 1;
            }
        }
        let expected: BTreeMap<String, usize> = declared.keys().map(|n| (n.clone(), 1)).collect();
        if running != expected {
            return Some(format!("engine containers {running:?} != {expected:?}"));
        }
        for object in self.store.list(Some(Kind::Container), None).unwrap() {
            let observed = object.status_common().map(|s| s.observed_generation);
            if observed != object.metadata().generation {
                return Some(format!("{} not reconciled yet", object.metadata().name));
            }
        }
        None
    }

    /// Container ids by Container name.
    fn container_ids(&self) -> BTreeMap<String, String> {
        self.fake
            .containers()
            .into_iter()
            .filter_map(|c| c.labels.get(labels::NAME).cloned().map(|n| (n, c.id.clone())))
            .collect()
    }

    /// Waits until the store and engine match the model; the container ids then.
    async fn settle(&self, model: &Model) -> Result<BTreeMap<String, String>, String> {
        let settled = poll_until(SETTLE, || async { self.mismatch(model).is_none().then_some(()) }).await;
        match settled {
            Some(()) => Ok(self.container_ids()),
            None => Err(self.mismatch(model).unwrap_or_else(|| "settled only at the deadline".into())),
        }
    }
}

fn version_of(object: &AnyObject) -> u32 {
    let json = object.to_json();
    let value = json["spec"]["env"][0]["value"].as_str().unwrap_or("v0");
    value.trim_start_matches('v').parse().unwrap_or(0)
}

/// Runs sequence `seed`; the error says what went wrong after which steps.
async fn sequence(seed: u64) -> Result<(), String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let bench = Bench::start();
    let mut model = Model::default();
    let mut log: Vec<String> = Vec::new();
    let mut ids = bench.settle(&model).await?;
    // Names whose declaration (and version) has not changed since the last
    // settled point: their containers must be the same ones.
    let mut unchanged: BTreeMap<String, u32> = model.declared();
    let steps = rng.usize(4..=10);
    let result = async {
        for _ in 0..steps {
            let op = rng.u8(0..OPS);
            if op == BREAK {
                let now = bench.settle(&model).await.map_err(|e| format!("before a break: {e}"))?;
                check_same_containers(&ids, &now, &unchanged)?;
                ids = now;
                unchanged = model.declared();
            }
            let mut disk = Disk { dir: bench.dir.path(), rng: &mut rng };
            if let Some(described) = step(&mut model, &mut disk, op).await {
                log.push(described);
            }
            let declared = model.declared();
            unchanged.retain(|name, version| declared.get(name) == Some(version));
            tokio::time::sleep(Duration::from_millis(rng.u64(0..=40))).await;
        }
        let now = bench.settle(&model).await?;
        check_same_containers(&ids, &now, &unchanged)
    }
    .await;
    bench.stop().await;
    result.map_err(|e| format!("seed {seed}: {e}\n  after: {}", log.join("; ")))
}

/// Each name in `unchanged` runs the same container in `before` and `now`.
fn check_same_containers(
    before: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
    unchanged: &BTreeMap<String, u32>,
) -> Result<(), String> {
    for name in unchanged.keys() {
        if before.get(name) != now.get(name) {
            return Err(format!(
                "{name} did not change, yet its container went from {:?} to {:?}",
                before.get(name),
                now.get(name)
            ));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_file_operations_converge_to_the_model_without_replacing_unchanged_containers() {
    let seeds: Vec<u64> = match std::env::var("BERTH_DIR_MODEL_SEED") {
        Ok(seed) => vec![seed.parse().expect("BERTH_DIR_MODEL_SEED is a number")],
        Err(_) => {
            let count = std::env::var("BERTH_DIR_MODEL_SEQUENCES").map_or(300, |n| n.parse().expect("a number"));
            (0..count).map(|i| 0x5eed_0000 + i).collect()
        }
    };
    let total = seeds.len();
    let failures: Vec<String> = futures::stream::iter(seeds)
        .map(sequence)
        .buffer_unordered(PARALLEL)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of {total} sequences failed (rerun one with BERTH_DIR_MODEL_SEED=N):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
