//! A PostgreSQL server of a test's own, which the test may restart or crash without
//! disturbing the tests that share the suite's server: a cluster made with `initdb` in a
//! temp dir, listening on a free loopback port (its unix socket in the temp dir), `fsync`
//! on, stopped (`pg_ctl stop -m immediate`) when dropped.
//!
//! The binaries are Debian's (`/usr/lib/postgresql/<version>/bin`, the newest) or
//! `pg_ctl` on the PATH. PostgreSQL refuses to run as root: as root (CI, containers) the
//! cluster belongs to the `postgres` user and every command runs as that user (`runuser`).
//! Without the binaries (or, as root, without a `postgres` user) [`PgServer::start`] skips
//! with a message, unless `INCIDENTD_REQUIRE_INTEROP=1`: then it fails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{find_binary, free_port, interop_required};

/// How `pg_ctl` stops the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Sessions are ended, a checkpoint written: a clean restart.
    Fast,
    /// Every process is killed at once: a crash, recovered from the WAL at the next start.
    Immediate,
}

impl Stop {
    fn mode(self) -> &'static str {
        match self {
            Stop::Fast => "fast",
            Stop::Immediate => "immediate",
        }
    }
}

pub struct PgServer {
    /// The cluster (`data/`), its socket and its log; owned by `postgres` when run as root.
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Run every command as the `postgres` user (this process is root).
    as_postgres: bool,
    pub port: u16,
}

impl PgServer {
    /// Makes a cluster and starts it; waits until it takes connections. `None` (with a
    /// message on stderr) when the binaries are missing and interop is not required.
    pub async fn start() -> Option<PgServer> {
        let Some(bin) = binaries() else {
            assert!(
                !interop_required(),
                "INCIDENTD_REQUIRE_INTEROP=1 but PostgreSQL's server binaries (initdb, pg_ctl) \
                 are not installed (apt-get install postgresql)"
            );
            eprintln!(
                "SKIPPED: PostgreSQL's server binaries (initdb, pg_ctl) are not installed \
                 (apt-get install postgresql); this test starts a server of its own"
            );
            return None;
        };
        let as_postgres = is_root();
        if as_postgres && !user_exists("postgres") {
            assert!(
                !interop_required(),
                "INCIDENTD_REQUIRE_INTEROP=1 but, running as root, there is no `postgres` user \
                 to run a PostgreSQL server as"
            );
            eprintln!(
                "SKIPPED: running as root and there is no `postgres` user to run a PostgreSQL \
                 server as (PostgreSQL refuses to run as root)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            let chown = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(chown.status.success(), "chown: {chown:?}");
        }
        let server = PgServer {
            dir,
            bin,
            as_postgres,
            port: 0,
        };
        let data = server.data();
        let init = server
            .run_blocking(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    // initdb's own files only; the server runs with fsync on.
                    "--no-sync",
                ],
            )
            .await;
        assert!(init.status.success(), "initdb failed: {}", show(&init));
        // A free port may be taken before the server binds it: try another.
        let mut server = server;
        for attempt in 1.. {
            server.port = free_port();
            let options = format!(
                "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' \
                 -c fsync=on -c max_connections=100 -c shared_buffers=16MB",
                server.port,
                server.dir.path().display()
            );
            let started = server
                .pg_ctl(&[
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    &server.log_path(),
                    "-o",
                    &options,
                ])
                .await;
            if started.status.success() {
                break;
            }
            let log = server.log();
            assert!(
                attempt < 5 && log.contains("in use"),
                "PostgreSQL did not start: {}\n{log}",
                show(&started)
            );
        }
        server.wait_accepting(Duration::from_secs(60)).await;
        Some(server)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `pg_ctl restart -m <stop>`: stops the server (every session ends) and starts it on
    /// the same port; returns once it takes connections again.
    pub async fn restart(&self, stop: Stop) {
        let restarted = self
            .pg_ctl(&[
                "restart",
                "-w",
                "-t",
                "60",
                "-m",
                stop.mode(),
                "-l",
                &self.log_path(),
            ])
            .await;
        assert!(
            restarted.status.success(),
            "pg_ctl restart -m {} failed: {}\n{}",
            stop.mode(),
            show(&restarted),
            self.log()
        );
        self.wait_accepting(Duration::from_secs(60)).await;
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn log_path(&self) -> String {
        self.dir.path().join("postgres.log").display().to_string()
    }

    /// Until a connection is answered (`pg_ctl -w` already waited; this makes sure of it
    /// over TCP, as the replicas connect).
    async fn wait_accepting(&self, deadline: Duration) {
        let started = Instant::now();
        loop {
            let mut config: tokio_postgres::Config = self.url().parse().unwrap();
            config.connect_timeout(Duration::from_secs(2));
            if let Ok((client, connection)) = config.connect(tokio_postgres::NoTls).await {
                let driver = tokio::spawn(connection);
                let ok = client.simple_query("SELECT 1").await.is_ok();
                drop(client);
                let _ = driver.await;
                if ok {
                    return;
                }
            }
            assert!(
                started.elapsed() < deadline,
                "PostgreSQL does not take connections on port {}:\n{}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn pg_ctl(&self, args: &[&str]) -> Output {
        let data = self.data();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.run_blocking("pg_ctl", &all).await
    }

    /// Runs one of the binaries (as `postgres` when root) on a blocking thread.
    async fn run_blocking(&self, binary: &str, args: &[&str]) -> Output {
        let mut command = self.command(binary);
        command.args(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    fn command(&self, binary: &str) -> Command {
        let path = self.bin.join(binary);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        // pg_ctl's server inherits these: none of them may hold the test's output open.
        command
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "stop", "-m", "immediate", "-w", "-t", "30"])
            .output();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- the last lines the private PostgreSQL logged:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// The directory of `initdb` and `pg_ctl`: Debian's newest, or the PATH's.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let pg_ctl = find_binary("pg_ctl")?;
    let bin = pg_ctl.parent()?.to_owned();
    bin.join("initdb").is_file().then_some(bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn show(output: &Output) -> String {
    format!(
        "{} {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
