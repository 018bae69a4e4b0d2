//! `incidentd store copy` between a redb file and a real PostgreSQL (a database of its own per
//! test, from `INCIDENTD_TEST_POSTGRES`; skipped with a line when there is none, unless
//! `INCIDENTD_REQUIRE_INTEROP=1`): a store the real app filled goes to PostgreSQL, reads
//! the same there, and comes back byte for byte; the refusals; the real binary.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use incidentd::domain::incident::IncidentId;
use incidentd::store::copy::{self, CopyError, Location, Options};
use incidentd::store::kv::postgres::testing::{TestDatabase, fresh_database};
use incidentd::store::kv::postgres::{Fencing, Postgres};
use incidentd::store::kv::{Backend, KeyArg};
use incidentd::store::{Batch, SCHEMA_VERSION, Session, Store};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

/// Every table of a redb file with its rows, as stored, read with redb itself (not through
/// incidentd): a table without rows is left out, as it reads the same as none.
type Tables = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

fn raw_tables(path: &Path) -> Tables {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let mut tables = BTreeMap::new();
    for handle in txn.list_tables().unwrap() {
        let definition: TableDefinition<&[u8], &[u8]> = TableDefinition::new(handle.name());
        let table = txn.open_table(definition).unwrap();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = (table.iter().unwrap())
            .map(|row| {
                let (key, value) = row.unwrap();
                (key.value().to_vec(), value.value().to_vec())
            })
            .collect();
        if !rows.is_empty() {
            tables.insert(handle.name().to_owned(), rows);
        }
    }
    tables
}

/// Every row of the database's store, in order, as one checksum with the count (what a
/// failed copy must leave unchanged).
async fn pg_fingerprint(db: &TestDatabase) -> (i64, String) {
    let row = pg_client(db)
        .await
        .query_one(
            "SELECT count(*), coalesce(md5(string_agg(tbl || ':' || encode(k, 'hex') || '='
                 || encode(v, 'hex'), ',' ORDER BY tbl, k)), '')
             FROM incidentd_kv",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn pg_client(db: &TestDatabase) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn pg_run(db: &TestDatabase, sql: &str) {
    pg_client(db).await.batch_execute(sql).await.unwrap();
}

/// A store filled by the real app: tickets with timelines (a public note, an
/// acknowledgement), a silence, a maintenance, a webhook consumer that fails (its outbox
/// entries wait, its attempts are logged), a probe's daily uptime; then, through the
/// store's own commit, what a console sign-in and a reporter's link would write.
async fn fill(path: &Path) {
    let target = Target::start(200).await;
    let hook = Receiver::start(503).await;
    let config = format!(
        "listen: 127.0.0.1:0\nstorage: {{path: {}}}\nwebhooks:\n  - {{name: desk, url: '{}', secret_env: {SECRET_ENV}, retry_schedule: [1h], max_age: 2h, timeout: 2s}}\n",
        path.display(),
        hook.url()
    );
    let probes = format!(
        "probes:\n  - name: web\n    interval: 100ms\n    timeout: 100ms\n    http: {{url: \"{}\"}}\n",
        target.url()
    );
    let dir = ConfigDir::new(&config, &[("web.yaml", &probes)]);
    let env = HashMap::from([(SECRET_ENV.to_owned(), secret_value())]);
    let app = TestApp::spawn(&dir, env).await;
    for n in 1..=3 {
        let (status, body) = app
            .post(
                "/api/v1/incidents",
                Some(json!({
                    "title": format!("checkout slow {n}"),
                    "description": "p99 above 2s",
                    "reporter": {"name": "Ana", "contact": "ana@example.com"},
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let verbs = [
        (
            "INC-1/notes",
            Some(json!({"text": "rolling back", "public": true})),
        ),
        ("INC-2/acknowledge", None),
    ];
    for (verb, body) in verbs {
        let (status, body) = app.post(&format!("/api/v1/incidents/{verb}"), body).await;
        assert_eq!(status, StatusCode::OK, "{verb}: {body}");
    }
    let (status, body) = app
        .post(
            "/api/v1/silences",
            Some(json!({"matchers": {"service": "web"}, "ends_at": "2026-03-02T10:00:00Z", "comment": "deploy"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post(
            "/api/v1/maintenances",
            Some(json!({
                "title": "Database upgrade",
                "message": "Checkout may be slow.",
                "services": ["checkout"],
                "starts_at": "2026-03-02T10:00:00Z",
                "ends_at": "2026-03-02T11:00:00Z",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    eventually("the probe's uptime", Duration::from_secs(30), async || {
        let (_, body) = app.get("/api/v1/probes").await;
        body["probes"][0]["uptime"]["7d"].as_f64()
    })
    .await;
    eventually("a webhook attempt", Duration::from_secs(30), async || {
        (!hook.requests().is_empty()).then_some(())
    })
    .await;
    app.stop().await;

    let store = Store::open(path).unwrap();
    let mut batch = Batch::default();
    batch.put_session(
        [7; 32],
        &Session {
            token_name: "oncall".to_owned(),
            token_mac: "ab".repeat(32),
            csrf: "c".repeat(43),
            created_at: start_time(),
            expires_at: start_time() + chrono::Duration::hours(8),
        },
    );
    batch.issue_reporter_link(IncidentId(3), [9; 32], start_time());
    store.commit(&batch).unwrap();
}

/// What a store reads as: start-up's state, an incident with its timeline, the sessions,
/// a reporter's link, the subscriptions, the outbox (all in their `Debug` form).
fn reads(store: &Store) -> Vec<String> {
    let mut reads = vec![
        format!("{:?}", store.load().unwrap()),
        format!("{:?}", store.load_sessions().unwrap()),
        format!("{:?}", store.reporter_link(&[9; 32]).unwrap()),
        format!("{:?}", store.load_subscriptions().unwrap()),
        format!("{:?}", store.outbox_counts().unwrap()),
        format!("{:?}", store.incident_count().unwrap()),
    ];
    for id in 1..=3 {
        let incident = store.get_incident_with_timeline(IncidentId(id)).unwrap();
        reads.push(format!("{incident:?}"));
    }
    reads
}

fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(work).join().unwrap()
}

fn file(path: &Path) -> Location {
    Location::File(path.to_owned())
}

fn postgres(db: &TestDatabase) -> Location {
    Location::parse(&db.url, &|_| None).unwrap()
}

#[tokio::test]
async fn a_redb_store_goes_to_postgres_reads_the_same_and_comes_back_byte_for_byte() {
    let Some(db) = fresh_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.redb");
    fill(&original).await;
    let before = raw_tables(&original);
    for table in [
        "meta",
        "incidents.v1",
        "incidents_active.v1",
        "timeline.v1",
        "silences.v1",
        "maintenances.v1",
        "outbox.v1",
        "deliveries.v1",
        "uptime_daily.v1",
        "sessions.v1",
        "reporter_links.v1",
        "reporter_link_hashes.v1",
    ] {
        assert!(
            before.contains_key(&format!("kv/{table}")),
            "{table} filled"
        );
    }

    let (from, to) = (file(&original), postgres(&db));
    let copied = blocking(move || copy::copy(&from, &to, &Options::default()).unwrap());
    let stored: usize = before.values().map(Vec::len).sum();
    assert_eq!(copied.rows(), u64::try_from(stored).unwrap());
    let incidents = copied.tables.iter().find(|t| t.name == "incidents.v1");
    assert_eq!(incidents.unwrap().rows, 3);
    assert!(
        copied
            .render()
            .lines()
            .any(|line| line
                .split_whitespace()
                .eq(["incidents.v1", "3", "rows", "ok"]))
    );

    // The store's reads answer the same from PostgreSQL.
    let config = db.config();
    let (in_pg, in_file) = blocking(move || {
        let pg = Store::open_postgres_unfenced(&config).unwrap();
        (reads(&pg), reads(&Store::open(&original).unwrap()))
    });
    assert_eq!(in_pg, in_file);
    assert!(in_pg[0].contains("checkout slow 1"), "{}", in_pg[0]);
    assert!(in_pg[6].contains("rolling back"), "{}", in_pg[6]);

    // And back into a new file: the same tables, row for row, byte for byte.
    let back = dir.path().join("back/incidentd.redb");
    let (from, to) = (postgres(&db), file(&back));
    let again = blocking(move || copy::copy(&from, &to, &Options::default()).unwrap());
    assert_eq!(again.rows(), copied.rows());
    let original = dir.path().join("original.redb");
    assert_eq!(raw_tables(&back), raw_tables(&original));
    assert_eq!(raw_tables(&original), before, "the source is unchanged");
}

#[tokio::test]
async fn a_copy_is_refused_over_data_beside_a_leader_from_nowhere_and_rolled_back_on_failure() {
    let Some(db) = fresh_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.redb");
    fill(&original).await;
    let copy_to_pg = |force: bool| {
        let (from, to) = (file(&original), postgres(&db));
        blocking(move || {
            let options = Options {
                force,
                ..Options::default()
            };
            copy::copy(&from, &to, &options)
        })
    };
    copy_to_pg(false).unwrap();
    let copied = pg_fingerprint(&db).await;

    // A destination with data.
    let error = copy_to_pg(false).unwrap_err();
    assert!(matches!(error, CopyError::NotEmpty { .. }), "{error}");
    let at = format!(
        "PostgreSQL {}",
        incidentd::store::kv::postgres::redacted(&db.url)
    );
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("the destination {at} already holds data (")),
        "{text}"
    );
    assert!(
        text.ends_with("--force clears it and copies over it"),
        "{text}"
    );
    assert_eq!(pg_fingerprint(&db).await, copied);
    copy_to_pg(true).unwrap();
    assert_eq!(
        pg_fingerprint(&db).await,
        copied,
        "cleared, then the same copy"
    );

    // A replica leads: refused as a destination and as a source.
    pg_run(
        &db,
        "UPDATE incidentd_lease SET holder = 'x', expires_at = now() + interval '1 minute'",
    )
    .await;
    let error = copy_to_pg(true).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the destination {at} is in use: replica x leads it right now (its lease has not expired); stop the replicas first"
        )
    );
    // Also when it took the lease after the checks: the copy's write transaction starts
    // only while nobody leads.
    let no_leader = Postgres::connect_with(&db.config(), Fencing::NoLeader).unwrap();
    let refused = no_leader.write().err().expect("refused");
    assert_eq!(
        refused.to_string(),
        "PostgreSQL: a replica holds the leader's lease (it has not expired): stop the replicas first"
    );
    drop(no_leader);
    let out = dir.path().join("out.redb");
    let (from, to) = (postgres(&db), file(&out));
    let error = blocking(move || copy::copy(&from, &to, &Options::default()).unwrap_err());
    assert!(
        error
            .to_string()
            .starts_with(&format!("the source {at} is in use: replica x leads it")),
        "{error}"
    );
    assert!(!out.exists());
    assert_eq!(pg_fingerprint(&db).await, copied);
    // Its lease ran out: it no longer leads.
    pg_run(
        &db,
        "UPDATE incidentd_lease SET expires_at = now() - interval '1 second'",
    )
    .await;
    copy_to_pg(true).unwrap();

    // The server fails in the middle of the copy (here, a trigger): the transaction, the
    // clearing included, is rolled back.
    pg_run(
        &db,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'no space left (test)'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON incidentd_kv FOR EACH ROW
             WHEN (NEW.tbl = 'timeline.v1') EXECUTE FUNCTION refuse();",
    )
    .await;
    let error = copy_to_pg(true).unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "copying to {at} failed: PostgreSQL: no space left (test)"
        )),
        "{text}"
    );
    assert!(
        text.ends_with(&format!(
            "the transaction was rolled back: {at} is as it was"
        )),
        "{text}"
    );
    assert_eq!(pg_fingerprint(&db).await, copied);

    pg_run(&db, "DROP TRIGGER refuse ON incidentd_kv").await;

    // A source of a newer layout than this build.
    {
        let raw = Postgres::unfenced(&db.config()).unwrap();
        let txn = raw.write().unwrap();
        let key = KeyArg::<String>::to_bytes(&"schema_version");
        let newer = SCHEMA_VERSION + 1;
        txn.table("meta")
            .unwrap()
            .put(&key, &newer.to_be_bytes())
            .unwrap();
        txn.commit().unwrap();
    }
    let newer = dir.path().join("newer.redb");
    let (from, to) = (postgres(&db), file(&newer));
    let error = blocking(move || copy::copy(&from, &to, &Options::default()).unwrap_err());
    assert_eq!(
        error.to_string(),
        format!(
            "the source {at}: the store has schema version {}, newer than this incidentd supports ({SCHEMA_VERSION}); upgrade incidentd",
            SCHEMA_VERSION + 1
        )
    );
    assert!(!newer.exists());

    // No source file.
    let nowhere = dir.path().join("nowhere.redb");
    let (from, to) = (file(&nowhere), postgres(&db));
    let error = blocking(move || copy::copy(&from, &to, &Options::default()).unwrap_err());
    assert_eq!(
        error.to_string(),
        format!("the source {} does not exist", nowhere.display())
    );
    assert!(!nowhere.exists());

    // A database that cannot be reached, and a URL that does not parse: said without the
    // password.
    let unreachable = "postgres://incidentd:s3cr3t-pw@127.0.0.1:1/incidentd";
    let to = Location::parse(unreachable, &|_| None).unwrap();
    let from = file(&original);
    let error = blocking(move || copy::copy(&from, &to, &Options::default()).unwrap_err());
    let text = error.to_string();
    assert!(
        text.starts_with("the destination PostgreSQL 127.0.0.1:1/incidentd: PostgreSQL: "),
        "{text}"
    );
    assert!(
        !text.contains("s3cr3t") && !text.contains("incidentd@"),
        "{text}"
    );
    let bad = Location::parse("postgres://incidentd:s3cr3t-pw@db:port/incidentd", &|_| {
        None
    })
    .unwrap_err();
    assert!(!bad.contains("s3cr3t"), "{bad}");
}

fn incidentd(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_incidentd"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_binary_copies_with_the_url_from_the_environment_and_refuses_in_one_line() {
    let Some(db) = fresh_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.redb");
    fill(&original).await;
    let source = original.to_str().unwrap();
    let env = [("IT_COPY_DB_URL", db.url.as_str())];
    let at = format!(
        "PostgreSQL {}",
        incidentd::store::kv::postgres::redacted(&db.url)
    );

    let run = |args: Vec<&str>| incidentd(&args, &env);

    let copied = run(vec![
        "store",
        "copy",
        "--from",
        source,
        "--to",
        "env:IT_COPY_DB_URL",
    ]);
    let (stdout, stderr) = (text(&copied.stdout), text(&copied.stderr));
    assert_eq!(copied.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stderr, "");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.iter().any(|line| line
            .split_whitespace()
            .eq(["incidents.v1", "3", "rows", "ok"])),
        "{stdout}"
    );
    let total = lines.last().unwrap();
    assert!(
        total.starts_with("total: ")
            && total.ends_with(&format!(
                "rows copied from {source} to {at} and verified (row counts and SHA-256 of every table)"
            )),
        "{total}"
    );
    for (table, rows) in raw_tables(&original) {
        let name = table.strip_prefix("kv/").unwrap();
        let count = rows.len().to_string();
        assert!(
            (lines.iter()).any(|line| line.split_whitespace().eq([name, &count, "rows", "ok"])),
            "{name} in {stdout}"
        );
    }
    assert!(!stdout.contains(&db.url));

    // Again: the destination now holds data.
    let refused = run(vec![
        "store",
        "copy",
        "--from",
        source,
        "--to",
        "env:IT_COPY_DB_URL",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(text(&refused.stdout), "");
    let stderr = text(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: the destination {at} already holds data (")),
        "{stderr}"
    );

    // A password on the command line is never shown.
    let refused = run(vec![
        "store",
        "copy",
        "--from",
        source,
        "--to",
        "postgresql://incidentd:s3cr3t-pw@127.0.0.1:1/incidentd",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: the destination PostgreSQL 127.0.0.1:1/incidentd: "),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t"), "{stderr}");

    // No such source; an unset variable.
    let missing = dir.path().join("missing.redb");
    let refused = run(vec![
        "store",
        "copy",
        "--from",
        missing.to_str().unwrap(),
        "--to",
        "env:IT_COPY_DB_URL",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stderr),
        format!("error: the source {} does not exist\n", missing.display())
    );
    let refused = run(vec![
        "store",
        "copy",
        "--from",
        source,
        "--to",
        "env:IT_NOPE",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stderr),
        "error: --to: environment variable IT_NOPE is not set\n"
    );

    // `--help` says how to keep the password off the command line.
    let help = run(vec!["store", "copy", "--help"]);
    let help = text(&help.stdout);
    assert!(help.contains("env:VAR"), "{help}");
    assert!(help.contains("--force"), "{help}");
}
