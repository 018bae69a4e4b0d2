//! The store when the disk or the file fails: a full disk (writes refused with 503,
//! `/-/ready` 503, recovery without a restart once space returns), a first start on a full
//! disk (no file left behind), a damaged file (refused, never modified, `store check` and
//! `store repair`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// A tmpfs of a few MiB mounted on a temporary directory, unmounted when dropped.
pub(crate) struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (the test is skipped, said on stderr) when this environment may not mount a
    /// tmpfs, unless `INCIDENTD_REQUIRE_INTEROP=1`: then the test fails.
    pub(crate) fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(SmallDisk { dir }),
            outcome => {
                let why = match outcome {
                    Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                    Err(error) => error.to_string(),
                };
                assert!(
                    !interop_required(),
                    "INCIDENTD_REQUIRE_INTEROP=1 but a tmpfs cannot be mounted here (needs root or CAP_SYS_ADMIN): {why}"
                );
                eprintln!(
                    "SKIPPED: mounting a small tmpfs is not allowed here ({why}); run as root to test a full disk"
                );
                None
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the disk is full; returns its path.
    pub(crate) fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5a_u8; 4096];
        loop {
            match file.write_all(&chunk) {
                Ok(()) => {}
                Err(error) if error.raw_os_error() == Some(28) => break, // ENOSPC
                Err(error) => panic!("filling the disk: {error}"),
            }
        }
        // The last partial write may have left a few bytes free: fill those too.
        let mut byte = [0x5a_u8; 1];
        while file.write_all(&byte).is_ok() {
            byte[0] = 0x5a;
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a failed test may still hold the store open.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn ticket(n: usize) -> Value {
    json!({
        "title": format!("disk test {n}"),
        "description": "x".repeat(2000),
        "reporter": {"name": "Ana", "contact": "ana@example.com"},
    })
}

fn store_config(store: &Path) -> String {
    format!(
        "listen: 127.0.0.1:0\nstorage: {{path: {}}}\n",
        store.display()
    )
}

#[tokio::test]
async fn a_full_disk_refuses_writes_answers_not_ready_and_recovers_without_a_restart() {
    let Some(disk) = SmallDisk::mount("8m") else {
        return;
    };
    let dir = ConfigDir::new(&store_config(&disk.path().join("incidentd.redb")), &[]);
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    let mut stored = Vec::new();
    let mut n = 0;
    for _ in 0..20 {
        n += 1;
        let (status, body) = app.post("/api/v1/incidents", Some(ticket(n))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        stored.push(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(app.get("/-/ready").await.0, StatusCode::OK);

    let filler = disk.fill();
    // redb may still have room inside its file: write until a ticket is refused and the
    // store's small proving write fails too. (After a refused ticket the proving write
    // may still fit in pages redb freed: then the store takes writes again, rightly, and
    // the next tickets use up that room.)
    loop {
        n += 1;
        assert!(n < 5_000, "the disk is full but writes still go through");
        let (status, body) = app.post("/api/v1/incidents", Some(ticket(n))).await;
        if status.is_success() {
            stored.push(body["id"].as_str().unwrap().to_owned());
            continue;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        if app.get("/-/ready").await.0 == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
    }
    // Still full: refused, or taken when the store reclaimed the pages of the refused
    // transaction when it reopened the file (then it is stored like any other).
    n += 1;
    let (status, body) = app.post("/api/v1/incidents", Some(ticket(n))).await;
    if status.is_success() {
        stored.push(body["id"].as_str().unwrap().to_owned());
    } else {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }

    std::fs::remove_file(&filler).unwrap();
    let recovered = eventually(
        "a ticket stored once space is back",
        Duration::from_secs(20),
        async || {
            n += 1;
            let (status, body) = app.post("/api/v1/incidents", Some(ticket(n))).await;
            status
                .is_success()
                .then(|| body["id"].as_str().unwrap().to_owned())
        },
    )
    .await;
    stored.push(recovered);
    assert_eq!(app.get("/-/ready").await.0, StatusCode::OK);
    for _ in 0..5 {
        n += 1;
        let (status, body) = app.post("/api/v1/incidents", Some(ticket(n))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        stored.push(body["id"].as_str().unwrap().to_owned());
    }
    app.stop().await;

    // Every ticket answered 2xx is stored.
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    for id in &stored {
        let (status, body) = app.get(&format!("/api/v1/incidents/{id}")).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{id} was answered 2xx but is not stored: {body}"
        );
    }
    app.stop().await;
}

#[test]
fn a_first_start_on_a_full_disk_leaves_no_store_behind() {
    let Some(disk) = SmallDisk::mount("2m") else {
        return;
    };
    let path = disk.path().join("incidentd.redb");
    let filler = disk.fill();
    let error = incidentd::store::Store::open(&path)
        .err()
        .expect("a store cannot be created on a full disk");
    eprintln!("as expected: {error}");
    assert!(
        !path.exists(),
        "a failed creation left a file at {}",
        path.display()
    );
    std::fs::remove_file(filler).unwrap();
    let store = incidentd::store::Store::open(&path).unwrap();
    assert_eq!(store.incident_count().unwrap(), 0);
}

fn incidentd(dir: &ConfigDir, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .current_dir(dir.path())
        .args(args)
        .args(["--config", "incidentd.yaml"])
        .output()
        .expect("running incidentd")
}

/// Overwrites four 4 KiB pages from the middle of the file with pseudo-random bytes (a
/// fixed seed: the same damage every run).
fn damage_middle_pages(path: &Path) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = file.metadata().unwrap().len();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let bytes: Vec<u8> = (0..4 * 4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    file.write_all_at(&bytes, len / 2 / 4096 * 4096).unwrap();
    file.sync_all().unwrap();
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_damaged_store_is_refused_unchanged_checked_and_repaired_on_request() {
    let dir = ConfigDir::new(
        "listen: 127.0.0.1:0\nstorage: {path: data/incidentd.redb}\n",
        &[],
    );
    let path = dir.path().join("data/incidentd.redb");
    let app = TestApp::spawn(&dir, HashMap::new()).await;
    for n in 0..300 {
        let (status, body) = app.post("/api/v1/incidents", Some(ticket(n))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    app.stop().await;
    let sound = incidentd(&dir, &["store", "check"]);
    assert_eq!(sound.status.code(), Some(0), "{}", text(&sound.stderr));
    assert_eq!(text(&sound.stdout), "data/incidentd.redb: sound\n");

    damage_middle_pages(&path);
    let damaged = std::fs::read(&path).unwrap();

    let serve = incidentd(&dir, &["serve"]);
    let stderr = text(&serve.stderr);
    assert_eq!(serve.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("the store data/incidentd.redb is damaged")
            && stderr.contains("nothing was written to it")
            && stderr.contains("incidentd store repair"),
        "{stderr}"
    );
    assert!(
        std::fs::read(&path).unwrap() == damaged,
        "serve wrote to the damaged store"
    );

    let check = incidentd(&dir, &["store", "check"]);
    let stderr = text(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("data/incidentd.redb: damaged: "),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        std::fs::read(&path).unwrap() == damaged,
        "check wrote to the store"
    );

    let repair = incidentd(&dir, &["store", "repair"]);
    let (stdout, stderr) = (text(&repair.stdout), text(&repair.stderr));
    eprintln!("store repair: {}\n{stdout}{stderr}", repair.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let backups: Vec<PathBuf> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("incidentd.redb.backup-"))
        .collect();
    assert_eq!(backups.len(), 1, "one backup: {backups:?}");
    assert!(
        std::fs::read(&backups[0]).unwrap() == damaged,
        "the backup is the damaged file as it was"
    );
    match repair.status.code() {
        Some(0) => {
            assert!(
                stdout.contains("repaired; the file as it was is in"),
                "{stdout}"
            );
            let check = incidentd(&dir, &["store", "check"]);
            assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
            let app = TestApp::spawn(&dir, HashMap::new()).await;
            assert_eq!(app.get("/-/ready").await.0, StatusCode::OK);
            app.stop().await;
        }
        Some(1) => assert!(
            stderr.contains("could not repair") || stderr.contains("still damaged"),
            "{stderr}"
        ),
        other => panic!("store repair exited with {other:?}: {stderr}"),
    }
}
