//! The store when the disk or the file fails: a full disk (writes refused with 503,
//! `/-/ready` 503, recovery without a restart once space returns), a first start on a full
//! disk (no file left behind), a damaged file (refused, never modified, `store check` and
//! `store repair`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// A tmpfs of a few MiB mounted on a temporary directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (the test is skipped, said on stderr) when this environment may not mount a
    /// tmpfs, unless `INCIDENTD_REQUIRE_INTEROP=1`: then the test fails.
    fn mount(size: &str) -> Option<SmallDisk> {
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

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
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
    // redb may still have room inside its file: write until a ticket is refused.
    let refused = loop {
        n += 1;
        let (status, body) = app.post("/api/v1/incidents", Some(ticket(n))).await;
        if status.is_success() {
            stored.push(body["id"].as_str().unwrap().to_owned());
            assert!(n < 5_000, "the disk is full but tickets are still stored");
            continue;
        }
        break (status, body);
    };
    assert_eq!(refused.0, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.1);
    assert_eq!(app.get("/-/ready").await.0, StatusCode::SERVICE_UNAVAILABLE);
    // Still full: still refused, at once.
    n += 1;
    let (status, _) = app.post("/api/v1/incidents", Some(ticket(n))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

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
