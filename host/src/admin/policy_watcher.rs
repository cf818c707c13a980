//! [`watch`] and [`PolicyWatcher`]: bundles dropped into a directory are submitted to the
//! registry, then moved to `accepted/` or to `refused/` (with a `.json` saying why).
//!
//! Only `*.wpol` files directly in the directory are read; names starting with `.` and any other
//! extension are ignored. So that a half-written file is never read, write the bundle elsewhere
//! on the same file system (or as `.name.tmp` in the directory) and rename it in. A file written
//! in place is read once it is closed after writing (or, when no close is seen, a second after
//! its last write). Files already there when watching starts are read as they are, in name
//! order.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio_util::sync::CancellationToken;

use super::{AdminError, ErrorBody};
use crate::config::ByteSize;
use crate::policy::{PolicyControl, Refusal, RefusalCode};

/// The extension of bundle files.
const EXTENSION: &str = "wpol";
/// How long a file created in place may go without writes before it is read anyway (when its
/// writer's close is not seen, e.g. a hard link).
const SETTLE: Duration = Duration::from_secs(1);
/// How often the worker checks for shutdown.
const TICK: Duration = Duration::from_millis(100);

/// A running directory watcher.
#[derive(Debug)]
pub struct PolicyWatcher {
    dir: PathBuf,
    thread: std::thread::JoinHandle<()>,
}

impl PolicyWatcher {
    /// The watched directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Blocks until the watcher has stopped (soon after `shutdown` is cancelled; a submission in
    /// progress finishes first).
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!(dir = %self.dir.display(), "the policy directory watcher panicked");
        }
    }
}

/// What the notify callback hands the worker.
#[derive(Debug)]
enum Seen {
    /// Complete: renamed in, or closed after writing.
    Ready(PathBuf),
    /// Created in place (or renamed on a platform that does not say which side): wait for the
    /// writer.
    Created(PathBuf),
    /// Written to.
    Written(PathBuf),
    /// Events were lost: look at the whole directory again.
    Rescan,
}

/// Watches `dir` (created with `accepted/` and `refused/` if missing): submits every `*.wpol`
/// already there (sorted by name), then every one renamed in or written, to `control` on a
/// worker thread, and moves each to `accepted/` or `refused/` (plus `refused/<file>.json`, an
/// [`ErrorBody`]). Files over `max_bytes` are refused `too_large` unread. Stops when
/// `shutdown` is cancelled.
///
/// # Errors
/// The directories cannot be created or watched, or the worker thread cannot start.
pub fn watch(
    dir: &Path,
    max_bytes: u64,
    control: Arc<dyn PolicyControl>,
    shutdown: CancellationToken,
) -> Result<PolicyWatcher, AdminError> {
    for sub in [dir.to_path_buf(), dir.join("accepted"), dir.join("refused")] {
        std::fs::create_dir_all(&sub)
            .map_err(|source| AdminError::WatchDir { path: sub, source })?;
    }
    let dir = dir.to_path_buf();
    let (tx, rx) = mpsc::channel();
    let callback_dir = dir.clone();
    let watch_error = |source| AdminError::Watch {
        path: dir.clone(),
        source,
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(event) => {
                for seen in classify(&callback_dir, &event) {
                    // The worker has stopped when this fails; nothing to do.
                    let _ = tx.send(seen);
                }
            }
            Err(e) => {
                tracing::warn!(dir = %callback_dir.display(), error = %e, "watching the policy directory");
            }
        }
    })
    .map_err(watch_error)?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(watch_error)?;

    let worker = Worker {
        dir: dir.clone(),
        max_bytes,
        control,
    };
    // Listed now, after watching started: a file arriving meanwhile is not missed, and one
    // created after `watch` returns is left to its events (it may still be being written).
    let present = worker.list();
    let thread = std::thread::Builder::new()
        .name("weir-policy-watch".into())
        .spawn(move || {
            let _watcher = watcher;
            worker.run(present, &rx, &shutdown);
        })
        .map_err(|source| AdminError::Thread {
            path: dir.clone(),
            source,
        })?;
    tracing::info!(dir = %dir.display(), max = %ByteSize(max_bytes), "watching for policy bundles");
    Ok(PolicyWatcher { dir, thread })
}

/// Whether `path` is a bundle the watcher reads: `*.wpol` directly in `dir`, not a dotfile.
fn is_candidate(dir: &Path, path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    path.parent() == Some(dir)
        && !name.starts_with('.')
        && Path::new(name).extension().is_some_and(|e| e == EXTENSION)
}

/// What a notify event means for the worker.
fn classify(dir: &Path, event: &notify::Event) -> Vec<Seen> {
    if event.need_rescan() {
        return vec![Seen::Rescan];
    }
    let wrap: fn(PathBuf) -> Seen = match event.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::To))
        | EventKind::Access(AccessKind::Close(AccessMode::Write)) => Seen::Ready,
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::Any)) => {
            Seen::Created
        }
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => Seen::Written,
        _ => return Vec::new(),
    };
    event
        .paths
        .iter()
        .filter(|p| is_candidate(dir, p))
        .map(|p| wrap(p.clone()))
        .collect()
}

struct Worker {
    dir: PathBuf,
    max_bytes: u64,
    control: Arc<dyn PolicyControl>,
}

impl Worker {
    fn run(&self, present: Vec<PathBuf>, rx: &Receiver<Seen>, shutdown: &CancellationToken) {
        self.submit_all(present, shutdown);
        // Files created in place, by when they were last written.
        let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
        while !shutdown.is_cancelled() {
            match rx.recv_timeout(TICK) {
                Ok(Seen::Ready(path)) => {
                    pending.remove(&path);
                    self.process(&path, true);
                }
                Ok(Seen::Created(path)) => {
                    pending.insert(path, Instant::now());
                }
                Ok(Seen::Written(path)) => {
                    if let Some(last) = pending.get_mut(&path) {
                        *last = Instant::now();
                    }
                }
                Ok(Seen::Rescan) => {
                    tracing::warn!(dir = %self.dir.display(), "file events were lost; rescanning");
                    pending.clear();
                    self.submit_all(self.list(), shutdown);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let mut settled: Vec<PathBuf> = pending
                .iter()
                .filter(|(_, last)| last.elapsed() >= SETTLE)
                .map(|(p, _)| p.clone())
                .collect();
            settled.sort();
            for path in settled {
                pending.remove(&path);
                self.process(&path, false);
            }
        }
        tracing::info!(dir = %self.dir.display(), "stopped watching for policy bundles");
    }

    /// The bundles in the directory, by name.
    fn list(&self) -> Vec<PathBuf> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "cannot list the policy directory");
                return Vec::new();
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_candidate(&self.dir, p))
            .collect();
        paths.sort();
        paths
    }

    fn submit_all(&self, paths: Vec<PathBuf>, shutdown: &CancellationToken) {
        for path in paths {
            if shutdown.is_cancelled() {
                return;
            }
            self.process(&path, true);
        }
    }

    /// Reads, submits and moves one file. `expected`: whether the file should be there (a
    /// settled creation may since have been renamed away, which is not worth a message).
    fn process(&self, path: &Path, expected: bool) {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = match self.read(path, &file_name) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                if expected {
                    tracing::info!(file = %path.display(), "policy file vanished before it was read; skipped");
                }
                return;
            }
            Err(refusal) => {
                self.control.count_refusal(refusal.code);
                self.refuse(path, &file_name, &refusal);
                return;
            }
        };
        let via = format!("watched directory {}", path.display());
        match self.control.submit(bytes, None, &via) {
            Ok(activation) => {
                let dest = self.move_to("accepted", path, &file_name, None);
                tracing::info!(
                    policy = %activation.name,
                    version = activation.version,
                    previous = ?activation.previous_version,
                    file = %path.display(),
                    moved_to = ?dest,
                    total_ms = activation.timings.total_ms,
                    "policy activated from the watched directory"
                );
            }
            Err(refusal) => self.refuse(path, &file_name, &refusal),
        }
    }

    /// The file's bytes; `None` when it is gone; a `too_large` refusal when over the cap.
    fn read(&self, path: &Path, file_name: &str) -> Result<Option<Vec<u8>>, Refusal> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Refusal::new(
                    RefusalCode::Internal,
                    file_name,
                    format!("cannot open {}: {e}", path.display()),
                ));
            }
        };
        let too_large = |size: u64| {
            Refusal::new(
                RefusalCode::TooLarge,
                file_name,
                format!(
                    "{} ({size} bytes) is over the {} upload limit",
                    ByteSize(size),
                    ByteSize(self.max_bytes)
                ),
            )
        };
        let meta = file.metadata().map_err(|e| {
            Refusal::new(
                RefusalCode::Internal,
                file_name,
                format!("cannot stat {}: {e}", path.display()),
            )
        })?;
        if !meta.is_file() {
            return Ok(None);
        }
        if meta.len() > self.max_bytes {
            return Err(too_large(meta.len()));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.take(self.max_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                Refusal::new(
                    RefusalCode::Internal,
                    file_name,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(Some(bytes))
    }

    /// Writes `refused/<file>.json`, then moves the file to `refused/`.
    fn refuse(&self, path: &Path, file_name: &str, refusal: &Refusal) {
        let dest = self.move_to("refused", path, file_name, Some(refusal));
        tracing::warn!(
            code = %refusal.code,
            subject = %refusal.subject,
            reason = %refusal.reason,
            file = %path.display(),
            moved_to = ?dest,
            "policy file refused"
        );
    }

    /// Moves `path` into `sub/` under a free name (`x.wpol`, then `x.1.wpol`, `x.2.wpol`…);
    /// with a refusal, first writes it as JSON next to the destination (`x.wpol.json`).
    /// Returns the destination.
    fn move_to(
        &self,
        sub: &str,
        path: &Path,
        file_name: &str,
        refusal: Option<&Refusal>,
    ) -> Option<PathBuf> {
        let dir = self.dir.join(sub);
        let dest = free_name(&dir, file_name, refusal.is_some());
        if let Some(refusal) = refusal {
            let json = json_path(&dest);
            if let Err(e) = write_json(&json, &ErrorBody::from(refusal)) {
                tracing::error!(file = %json.display(), error = %e, "cannot write the refusal");
            }
        }
        match std::fs::rename(path, &dest) {
            Ok(()) => Some(dest),
            Err(e) => {
                tracing::error!(
                    file = %path.display(),
                    to = %dest.display(),
                    error = %e,
                    "cannot move the policy file"
                );
                None
            }
        }
    }
}

/// Writes `body` to `path` through a temporary name, so a reader never sees half of it.
fn write_json(path: &Path, body: &ErrorBody) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(body).map_err(std::io::Error::other)?;
    text.push('\n');
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// `dir/name`, or `dir/<stem>.<n>.wpol` for the first `n` not taken; with `json`, the name's
/// `.json` companion must be free too.
fn free_name(dir: &Path, file_name: &str, json: bool) -> PathBuf {
    let stem = file_name
        .strip_suffix(&format!(".{EXTENSION}"))
        .unwrap_or(file_name);
    let taken = |p: &Path| p.exists() || (json && json_path(p).exists());
    let mut candidate = dir.join(file_name);
    let mut n = 1u32;
    while taken(&candidate) {
        candidate = dir.join(format!("{stem}.{n}.{EXTENSION}"));
        n += 1;
    }
    candidate
}

/// `refused/x.wpol` → `refused/x.wpol.json`.
fn json_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::admin::test_support::FakeControl;

    struct Fixture {
        dir: tempfile::TempDir,
        control: Arc<FakeControl>,
        shutdown: CancellationToken,
        watcher: Option<PolicyWatcher>,
    }

    impl Fixture {
        /// A fresh directory; `before` puts files in it before watching starts.
        fn start(before: impl FnOnce(&Path)) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let incoming = dir.path().join("incoming");
            std::fs::create_dir(&incoming).unwrap();
            before(&incoming);
            let control = FakeControl::accepting();
            let shutdown = CancellationToken::new();
            let watcher = watch(
                &incoming,
                1024,
                Arc::clone(&control) as Arc<dyn PolicyControl>,
                shutdown.clone(),
            )
            .unwrap();
            Self {
                dir,
                control,
                shutdown,
                watcher: Some(watcher),
            }
        }

        fn incoming(&self) -> PathBuf {
            self.dir.path().join("incoming")
        }

        /// Writes `name` elsewhere and renames it in.
        fn drop_in(&self, name: &str, bytes: &[u8]) {
            let outside = self.dir.path().join(format!("{name}.part"));
            std::fs::write(&outside, bytes).unwrap();
            std::fs::rename(&outside, self.incoming().join(name)).unwrap();
        }

        fn wait_for(&self, what: &str, done: impl Fn() -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !done() {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        fn submitted(&self) -> Vec<Vec<u8>> {
            self.control
                .submissions()
                .into_iter()
                .map(|s| s.bytes)
                .collect()
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            self.shutdown.cancel();
            if let Some(w) = self.watcher.take() {
                w.join();
            }
        }
    }

    #[test]
    fn admin_watch_takes_existing_files_in_name_order() {
        let f = Fixture::start(|dir| {
            std::fs::write(dir.join("b.wpol"), b"B").unwrap();
            std::fs::write(dir.join("a.wpol"), b"A").unwrap();
        });
        let accepted = f.incoming().join("accepted");
        f.wait_for("both accepted", || {
            accepted.join("a.wpol").exists() && accepted.join("b.wpol").exists()
        });
        assert_eq!(f.submitted(), vec![b"A".to_vec(), b"B".to_vec()]);
        let sub = &f.control.submissions()[0];
        assert_eq!(sub.expected_name, None);
        assert_eq!(
            sub.via,
            format!(
                "watched directory {}",
                f.incoming().join("a.wpol").display()
            )
        );
        assert!(!f.incoming().join("a.wpol").exists());
        assert!(f.incoming().join("refused").is_dir());
    }

    #[test]
    fn admin_watch_takes_a_renamed_in_file_and_numbers_repeats() {
        let f = Fixture::start(|_| {});
        let accepted = f.incoming().join("accepted");
        f.drop_in("clamp.wpol", b"v1");
        f.wait_for("first accepted", || accepted.join("clamp.wpol").exists());
        f.drop_in("clamp.wpol", b"v2");
        f.wait_for("second accepted", || accepted.join("clamp.1.wpol").exists());
        assert_eq!(f.submitted(), vec![b"v1".to_vec(), b"v2".to_vec()]);
        assert_eq!(std::fs::read(accepted.join("clamp.wpol")).unwrap(), b"v1");
        assert_eq!(std::fs::read(accepted.join("clamp.1.wpol")).unwrap(), b"v2");
    }

    #[test]
    fn admin_watch_renaming_a_dotfile_in_place_works() {
        let f = Fixture::start(|_| {});
        let tmp = f.incoming().join(".clamp.wpol.tmp");
        std::fs::write(&tmp, b"whole").unwrap();
        std::fs::rename(&tmp, f.incoming().join("clamp.wpol")).unwrap();
        let accepted = f.incoming().join("accepted").join("clamp.wpol");
        f.wait_for("accepted", || accepted.exists());
        assert_eq!(f.submitted(), vec![b"whole".to_vec()]);
    }

    #[test]
    fn admin_watch_reads_a_file_written_in_place_once_closed() {
        let f = Fixture::start(|_| {});
        let path = f.incoming().join("slow.wpol");
        {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&path).unwrap();
            file.write_all(b"first half, ").unwrap();
            file.flush().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            file.write_all(b"second half").unwrap();
        }
        let accepted = f.incoming().join("accepted").join("slow.wpol");
        f.wait_for("accepted", || accepted.exists());
        assert_eq!(f.submitted(), vec![b"first half, second half".to_vec()]);
    }

    #[test]
    fn admin_watch_refused_files_get_their_json() {
        let f = Fixture::start(|_| {});
        f.control.answer(Err(Refusal::new(
            RefusalCode::Downgrade,
            "clamp",
            "version 3 is not above 4",
        )));
        f.drop_in("clamp.wpol", b"old");
        let refused = f.incoming().join("refused");
        f.wait_for("refused", || refused.join("clamp.wpol").exists());
        let body: serde_json::Value =
            serde_json::from_slice(&std::fs::read(refused.join("clamp.wpol.json")).unwrap())
                .unwrap();
        assert_eq!(
            body,
            json!({"error": {
                "code": "downgrade", "reason": "version 3 is not above 4", "subject": "clamp"
            }})
        );
        // Again: numbered, with its own JSON.
        f.drop_in("clamp.wpol", b"old again");
        f.wait_for("refused again", || refused.join("clamp.1.wpol").exists());
        assert!(refused.join("clamp.1.wpol.json").exists());
        assert!(!f.incoming().join("accepted").join("clamp.wpol").exists());
        assert!(f.control.counted().is_empty());
    }

    #[test]
    fn admin_watch_refuses_a_file_over_the_cap_unread() {
        let f = Fixture::start(|_| {});
        f.drop_in("big.wpol", &[0u8; 2048]);
        let refused = f.incoming().join("refused");
        f.wait_for("refused", || refused.join("big.wpol").exists());
        let body: ErrorBody =
            serde_json::from_slice(&std::fs::read(refused.join("big.wpol.json")).unwrap()).unwrap();
        assert_eq!(body.error.code, "too_large");
        assert_eq!(body.error.subject, "big.wpol");
        assert!(f.submitted().is_empty());
        assert_eq!(f.control.counted(), vec![RefusalCode::TooLarge]);
    }

    #[test]
    fn admin_watch_ignores_dotfiles_and_other_names() {
        let f = Fixture::start(|dir| {
            std::fs::write(dir.join(".early.wpol"), b"hidden").unwrap();
        });
        f.drop_in(".hidden.wpol", b"hidden");
        f.drop_in("notes.txt", b"text");
        f.drop_in("clamp.wpol.tmp", b"partial");
        // A real bundle afterwards: once it is taken, the others have been seen and skipped.
        f.drop_in("real.wpol", b"real");
        f.wait_for("accepted", || {
            f.incoming().join("accepted").join("real.wpol").exists()
        });
        std::thread::sleep(SETTLE + Duration::from_millis(300));
        assert_eq!(f.submitted(), vec![b"real".to_vec()]);
        for name in [".early.wpol", ".hidden.wpol", "notes.txt", "clamp.wpol.tmp"] {
            assert!(f.incoming().join(name).exists(), "{name} was touched");
        }
    }

    #[test]
    fn admin_watch_stops_on_shutdown() {
        let mut f = Fixture::start(|_| {});
        f.shutdown.cancel();
        let watcher = f.watcher.take().unwrap();
        let started = Instant::now();
        watcher.join();
        assert!(started.elapsed() < Duration::from_secs(2));
        // Stopped: a new file stays where it is.
        f.drop_in("late.wpol", b"late");
        std::thread::sleep(Duration::from_millis(300));
        assert!(f.incoming().join("late.wpol").exists());
        assert!(f.submitted().is_empty());
    }

    #[test]
    fn admin_watch_free_names() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            free_name(dir.path(), "x.wpol", true),
            dir.path().join("x.wpol")
        );
        std::fs::write(dir.path().join("x.wpol.json"), b"{}").unwrap();
        assert_eq!(
            free_name(dir.path(), "x.wpol", false),
            dir.path().join("x.wpol")
        );
        assert_eq!(
            free_name(dir.path(), "x.wpol", true),
            dir.path().join("x.1.wpol")
        );
    }
}
