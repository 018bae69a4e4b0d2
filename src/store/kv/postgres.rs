//! The tables in a PostgreSQL database, shared by several replicas: every table's rows are
//! rows of one SQL table, `incidentd_kv (tbl, k, v)`, keyed by the table's name and the
//! encoded key (`bytea` compares as bytes, so a range of keys is a range of `k`).
//!
//! [`Postgres`] is the [`Backend`]: a pool of connections driven by a small tokio runtime of
//! its own, so that its synchronous methods can be called from the store's blocking threads
//! (`spawn_blocking`, tests) and never from an async task. Read transactions are
//! `REPEATABLE READ READ ONLY` snapshots. Write transactions buffer `put` and `delete` and
//! send them in one statement before the next read that could see them and at commit, so an
//! engine batch of a few hundred writes costs a handful of round trips.
//!
//! Every write transaction first locks the lease row (`incidentd_lease`): it checks that the
//! epoch this replica was elected with is still the current one ([`StoreError::Fenced`]
//! if another replica took over) and counts the commit (`commit_seq`, announced on the
//! `incidentd_commit` channel when the transaction commits). Holding that row lock, write
//! transactions run one at a time, a read in one sees every earlier commit, and a takeover's
//! epoch bump waits for a commit in flight: once a takeover commits, a deposed leader cannot.
//!
//! [`Lease`] holds the primitives of the leader election on a connection of its own (a
//! session advisory lock lives and dies with its connection); [`listen_commits`] hands out
//! the commit announcements.
//!
//! The connection string may hold a password: it is never logged nor put in an error.
//! Connections are plain TCP (no TLS yet: `sslmode=require` is refused). The server must be
//! PostgreSQL 14 or later (`pg_terminate_backend` with a timeout).
//!
//! One write transaction runs at a time (they queue on the lease row): a thread that opens
//! a second while holding one waits for its own first, until the statement timeout.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod,
};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::{Backend, RawRead, RawTable, RawTableMut, RawWrite, Rows};
use crate::store::StoreError;

/// The schema, one migration a step: the version of a database is the number of migrations
/// applied to it (`incidentd_schema`), migration `i` bringing it to version `i + 1`.
/// Append only; never change one that shipped.
const MIGRATIONS: &[&str] = &[
    // 1: the tables, the lease and the replicas.
    "CREATE TABLE incidentd_kv (tbl text NOT NULL, k bytea NOT NULL, v bytea NOT NULL,
                                PRIMARY KEY (tbl, k));
     CREATE TABLE incidentd_lease (id int PRIMARY KEY CHECK (id = 1), epoch bigint NOT NULL,
         holder text, holder_pid int, expires_at timestamptz, commit_seq bigint NOT NULL DEFAULT 0);
     INSERT INTO incidentd_lease (id, epoch) VALUES (1, 0);
     CREATE TABLE incidentd_replicas (id text PRIMARY KEY, url text NOT NULL,
         started_at timestamptz NOT NULL, seen_at timestamptz NOT NULL);",
];

/// The schema version this incidentd writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The advisory lock (transaction-scoped) under which migrations run.
const MIGRATION_LOCK: i64 = 0x696E_6369_6465_6E01; // "inciden" 1
/// The advisory lock (session-scoped) of the leader.
const LEADER_LOCK: i64 = 0x696E_6369_6465_6E02; // "inciden" 2

/// The channel on which each write transaction announces its `commit_seq`.
pub const COMMIT_CHANNEL: &str = "incidentd_commit";

/// Buffered writes past this many are sent at once, not at the next read or the commit,
/// so a long copy holds a bounded buffer.
const MAX_BUFFERED: usize = 4096;

/// How to reach the database.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/db?...` or `host=... user=...`. May hold a
    /// password: never logged.
    pub url: String,
    /// Connections in the pool (at least 1). A read or write transaction holds one.
    pub pool_size: usize,
    /// Set on every connection (`statement_timeout`); zero leaves the server's.
    pub statement_timeout: Duration,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redacted(&self.url))
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

impl PgConfig {
    /// The connection settings: the URL's, with the statement timeout added to its
    /// `options`, an application name and a connect timeout unless it sets them.
    ///
    /// A transaction idle for as long as the statement timeout ends its session too: a
    /// leader cut off from the database by a network that drops packets (no reset) may
    /// leave a write transaction open holding the lease row, and a standby's takeover
    /// waits for that lock; the server would otherwise keep it until TCP keepalive gives
    /// up, hours later, and no replica could lead meanwhile.
    fn client_config(&self) -> Result<tokio_postgres::Config, StoreError> {
        let mut config: tokio_postgres::Config = self.url.parse().map_err(|error| {
            // The parser's messages name an option, never its value.
            StoreError::Postgres(format!("the PostgreSQL connection string: {error}"))
        })?;
        if !self.statement_timeout.is_zero() {
            let millis = self.statement_timeout.as_millis().max(1);
            let setting = format!(
                "-c statement_timeout={millis} -c idle_in_transaction_session_timeout={millis}"
            );
            let options = match config.get_options() {
                Some(given) if !given.trim().is_empty() => format!("{given} {setting}"),
                _ => setting,
            };
            config.options(options);
        }
        if config.get_application_name().is_none() {
            config.application_name("incidentd");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        Ok(config)
    }
}

/// `host:port/db` of a connection string, for messages: no user, no password.
pub fn redacted(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => {
            let host = match config.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
                Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
                None => "localhost".to_owned(),
            };
            let port = config.get_ports().first().copied().unwrap_or(5432);
            let db = config.get_dbname().unwrap_or("");
            format!("{host}:{port}/{db}")
        }
        Err(_) => "(an unparsable connection string)".to_owned(),
    }
}

/// Whether write transactions are fenced by the leader's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fencing {
    /// A write transaction commits only while the epoch set with [`Postgres::set_epoch`]
    /// is the lease's; with none set, none starts. What a replica runs with.
    Lease,
    /// Write transactions are not fenced: for tests, never beside a running leader.
    Unfenced,
    /// A write transaction starts only while no replica holds an unexpired lease, and
    /// holds the lease row until it ends, so none can take the lease meanwhile: what
    /// `store copy` writes with.
    NoLeader,
}

/// The PostgreSQL backend: a pool of connections on a runtime of its own.
pub struct Postgres {
    pool: Pool,
    handle: Handle,
    /// `None` only while dropping.
    runtime: Option<Runtime>,
    fencing: Fencing,
    /// The leader's epoch; 0 for none.
    epoch: Arc<AtomicU64>,
    /// The longest a call waits for the server's answer ([`Postgres::call`]); `None` with no
    /// statement timeout.
    deadline: Option<Duration>,
}

impl Postgres {
    /// Connects, fenced by the lease ([`Fencing::Lease`]), and brings the schema up to date.
    pub fn connect(config: &PgConfig) -> Result<Postgres, StoreError> {
        Postgres::connect_with(config, Fencing::Lease)
    }

    /// Connects with no fencing ([`Fencing::Unfenced`]): tests (`store copy` writes with [`Fencing::NoLeader`]).
    pub fn unfenced(config: &PgConfig) -> Result<Postgres, StoreError> {
        Postgres::connect_with(config, Fencing::Unfenced)
    }

    /// Builds the runtime and the pool and applies the migrations this database lacks (one
    /// transaction under an advisory lock: replicas starting together apply them once). A
    /// database of a newer schema is refused and left as it is.
    pub fn connect_with(config: &PgConfig, fencing: Fencing) -> Result<Postgres, StoreError> {
        let postgres = Postgres::build(config, fencing)?;
        postgres.block_on(async {
            let client = postgres.pool.get().await.map_err(pool_err)?;
            migrate(&client).await
        })?;
        Ok(postgres)
    }

    /// [`Postgres::connect_with`] a database that already holds incidentd's schema: `None`,
    /// with nothing created, when it holds none (`store copy`'s source: a mistyped
    /// database is not made a store).
    pub fn connect_existing(
        config: &PgConfig,
        fencing: Fencing,
    ) -> Result<Option<Postgres>, StoreError> {
        let postgres = Postgres::build(config, fencing)?;
        let found = postgres.block_on(async {
            let client = postgres.pool.get().await.map_err(pool_err)?;
            let found: bool = client
                .query_one("SELECT to_regclass('incidentd_schema') IS NOT NULL", &[])
                .await
                .map_err(pg_err)?
                .get(0);
            if found {
                migrate(&client).await?;
            }
            Ok::<_, StoreError>(found)
        })?;
        Ok(found.then_some(postgres))
    }

    /// The runtime and the pool, not connected yet.
    fn build(config: &PgConfig, fencing: Fencing) -> Result<Postgres, StoreError> {
        let client_config = config.client_config()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("incidentd-pg")
            .build()
            .map_err(|error| StoreError::Postgres(format!("starting its runtime: {error}")))?;
        let handle = runtime.handle().clone();
        let manager = Manager::from_config(
            client_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let wait = (!config.statement_timeout.is_zero()).then(|| config.statement_timeout * 4);
        let pool = {
            let _entered = runtime.enter();
            Pool::builder(manager)
                .max_size(config.pool_size.max(1))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(wait)
                .create_timeout(Some(Duration::from_secs(15)))
                .build()
                .map_err(|error| StoreError::Postgres(format!("the connection pool: {error}")))?
        };
        Ok(Postgres {
            pool,
            handle,
            runtime: Some(runtime),
            fencing,
            epoch: Arc::new(AtomicU64::new(0)),
            // The server answers a statement that runs too long itself; this much longer,
            // only a server gone silent (a network that drops packets and resets nothing).
            deadline: (!config.statement_timeout.is_zero()).then(|| config.statement_timeout * 2),
        })
    }

    /// The epoch this replica leads with (`None`: it does not lead, and a fenced backend
    /// starts no write transaction). Checked when each write transaction begins.
    pub fn set_epoch(&self, epoch: Option<u64>) {
        self.epoch.store(epoch.unwrap_or(0), Ordering::SeqCst);
    }

    pub fn epoch(&self) -> Option<u64> {
        match self.epoch.load(Ordering::SeqCst) {
            0 => None,
            epoch => Some(epoch),
        }
    }

    pub fn fencing(&self) -> Fencing {
        self.fencing
    }

    /// Who leads, as the lease row tells (`None`: nobody ever did), on a connection of
    /// the pool.
    pub fn leader(&self) -> Result<Option<Leader>, StoreError> {
        self.block_on(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            leader(&client).await
        })
    }

    /// Waits for `future` from a synchronous caller, whatever thread it is on: a blocking
    /// thread (`spawn_blocking`), or a task of a runtime — the engine's reads the store as it
    /// reads redb, blocking its thread meanwhile, and `Handle::block_on` would panic there.
    /// The future is polled on the caller's thread, in the backend runtime's context (its
    /// timers, its spawned connection tasks), and the caller's thread sleeps until woken.
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _entered = self.handle.enter();
        park_on(future)
    }

    /// [`Postgres::block_on`] for statements on a session's connection, failing once the
    /// server has not answered for the deadline: a silent server (a network partition
    /// without resets) would block the caller for good — the engine, and with it the
    /// process of a leader that lost its lease and must stop. The session is then dropped,
    /// and its connection discarded.
    fn call<T>(
        &self,
        future: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let Some(deadline) = self.deadline else {
            return self.block_on(future);
        };
        self.block_on(async {
            tokio::time::timeout(deadline, future)
                .await
                .unwrap_or_else(|_| Err(silent(deadline)))
        })
    }

    async fn session(&self) -> Result<Session, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        Ok(Session {
            client: Some(client),
            handle: self.handle.clone(),
            deadline: self.deadline,
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.pool.close();
        if let Some(runtime) = self.runtime.take() {
            // Does not block: dropping the backend from an async task is fine.
            runtime.shutdown_background();
        }
    }
}

/// Applies the migrations `client`'s database lacks; answers its version.
async fn migrate(client: &Client) -> Result<i32, StoreError> {
    client.batch_execute("BEGIN").await.map_err(pg_err)?;
    let result = async {
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_err)?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS incidentd_schema (version int PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await
            .map_err(pg_err)?;
        let found: i32 = client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM incidentd_schema",
                &[],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        if found > SCHEMA_VERSION {
            return Err(StoreError::Postgres(format!(
                "the database has schema version {found}, newer than this incidentd supports \
                 ({SCHEMA_VERSION}); upgrade incidentd"
            )));
        }
        for version in found + 1..=SCHEMA_VERSION {
            let sql = MIGRATIONS[(version - 1) as usize];
            client.batch_execute(sql).await.map_err(|error| {
                StoreError::Postgres(format!("migration {version}: {}", describe(&error)))
            })?;
            client
                .execute(
                    "INSERT INTO incidentd_schema (version) VALUES ($1)",
                    &[&version],
                )
                .await
                .map_err(pg_err)?;
        }
        client.batch_execute("COMMIT").await.map_err(pg_err)?;
        if found < SCHEMA_VERSION {
            tracing::info!(
                from = found,
                to = SCHEMA_VERSION,
                "PostgreSQL schema migrated"
            );
        }
        Ok(SCHEMA_VERSION)
    }
    .await;
    if result.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

/// A pooled connection inside a transaction: dropped, it is rolled back before the
/// connection goes back to the pool (or the connection is discarded if that fails).
struct Session {
    client: Option<Object>,
    handle: Handle,
    /// How long the rollback may take before the connection is discarded.
    deadline: Option<Duration>,
}

impl Session {
    fn client(&self) -> &ClientWrapper {
        self.client.as_ref().expect("a session's connection")
    }

    /// The transaction ended (committed): the connection goes back as it is.
    fn finish(mut self) {
        self.client.take();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let deadline = self.deadline.unwrap_or(Duration::MAX);
            // Not awaited: a caller dropping a transaction does not wait for the server.
            self.handle.spawn(async move {
                let rollback = tokio::time::timeout(deadline, client.batch_execute("ROLLBACK"));
                if !matches!(rollback.await, Ok(Ok(()))) {
                    // Not known to be clean: never handed out again.
                    drop(Object::take(client));
                }
            });
        }
    }
}

impl Backend for Postgres {
    fn read(&self) -> Result<Box<dyn RawRead + '_>, StoreError> {
        let session = self.block_on(self.session())?;
        // The snapshot is taken by the first statement, not by BEGIN: `SELECT 1` takes it
        // now, so the transaction sees what was committed when it was opened.
        self.call(async {
            session
                .client()
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1")
                .await
                .map_err(pg_err)
        })?;
        Ok(Box::new(Read { pg: self, session }))
    }

    fn write(&self) -> Result<Box<dyn RawWrite + '_>, StoreError> {
        // The fencing check and the commit's number, announced when (if) it commits.
        let (sql, epoch) = match self.fencing {
            Fencing::Lease => match self.epoch() {
                Some(epoch) => (FENCE, Some(to_i64(epoch))),
                None => return Err(StoreError::Fenced),
            },
            Fencing::Unfenced => (COUNT_COMMIT, None),
            Fencing::NoLeader => (COUNT_COMMIT_NO_LEADER, None),
        };
        let session = self.block_on(self.session())?;
        let fenced = self.call(async {
            let client = session.client();
            let fence = client.prepare_cached(sql).await.map_err(pg_err)?;
            let params: Vec<&(dyn ToSql + Sync)> = match &epoch {
                Some(epoch) => vec![epoch],
                None => Vec::new(),
            };
            // Pipelined: BEGIN and the check in one round trip.
            let (begun, fenced) = tokio::join!(
                client.batch_execute("BEGIN"),
                client.query_opt(&fence, &params)
            );
            begun.map_err(pg_err)?;
            fenced.map_err(pg_err)
        })?;
        match fenced {
            Some(_) => Ok(Box::new(Write {
                pg: self,
                session,
                buffer: RefCell::new(Buffer::default()),
                failed: Cell::new(false),
            })),
            // The session rolls back.
            None if self.fencing == Fencing::NoLeader => Err(StoreError::Postgres(
                "a replica holds the leader's lease (it has not expired): stop the replicas first"
                    .to_owned(),
            )),
            None => Err(StoreError::Fenced),
        }
    }
}

/// Fences a write transaction: the lease row still has this epoch. Counts the commit and
/// announces it (NOTIFY is delivered at commit, and not at all on rollback).
const FENCE: &str = "WITH up AS (UPDATE incidentd_lease SET commit_seq = commit_seq + 1
                                 WHERE id = 1 AND epoch = $1 RETURNING commit_seq)
                     SELECT commit_seq, pg_notify('incidentd_commit', commit_seq::text) FROM up";
/// The same for an unfenced backend.
const COUNT_COMMIT: &str = "WITH up AS (UPDATE incidentd_lease SET commit_seq = commit_seq + 1
                                        WHERE id = 1 RETURNING commit_seq)
                            SELECT commit_seq, pg_notify('incidentd_commit', commit_seq::text)
                            FROM up";

/// The same, only while no replica holds an unexpired lease. A takeover waiting for the
/// row sees it after this transaction ends.
const COUNT_COMMIT_NO_LEADER: &str = "WITH up AS (
        UPDATE incidentd_lease SET commit_seq = commit_seq + 1
        WHERE id = 1 AND (expires_at IS NULL OR expires_at <= now()) RETURNING commit_seq)
    SELECT commit_seq, pg_notify('incidentd_commit', commit_seq::text) FROM up";
/// The tables with rows, one index probe each (a loose index scan: `DISTINCT` would read
/// every row).
const TABLES: &str = "WITH RECURSIVE t(tbl) AS (
        (SELECT tbl FROM incidentd_kv ORDER BY tbl LIMIT 1)
        UNION ALL
        SELECT (SELECT n.tbl FROM incidentd_kv AS n WHERE n.tbl > t.tbl ORDER BY n.tbl LIMIT 1)
        FROM t WHERE t.tbl IS NOT NULL)
    SELECT tbl FROM t WHERE tbl IS NOT NULL";

const GET: &str = "SELECT v FROM incidentd_kv WHERE tbl = $1 AND k = $2";
const LEN: &str = "SELECT count(*) FROM incidentd_kv WHERE tbl = $1";
const UPSERT: &str = "INSERT INTO incidentd_kv (tbl, k, v)
                      SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[])
                      ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v";
const DELETE: &str =
    "DELETE FROM incidentd_kv AS d USING unnest($1::text[], $2::bytea[]) AS x(tbl, k)
                      WHERE d.tbl = x.tbl AND d.k = x.k";
const UPSERT_AND_DELETE: &str = "WITH gone AS (
        DELETE FROM incidentd_kv AS d USING unnest($4::text[], $5::bytea[]) AS x(tbl, k)
        WHERE d.tbl = x.tbl AND d.k = x.k)
    INSERT INTO incidentd_kv (tbl, k, v)
    SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[])
    ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v";

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The condition on `k` of a range, with the parameters after `$1` (the table).
fn range_condition<'a>(
    low: Bound<&'a [u8]>,
    high: Bound<&'a [u8]>,
    params: &mut Vec<&'a [u8]>,
) -> String {
    let mut sql = String::from("tbl = $1");
    for (bound, included, excluded) in [(low, ">=", ">"), (high, "<=", "<")] {
        let (op, key) = match bound {
            Bound::Included(key) => (included, key),
            Bound::Excluded(key) => (excluded, key),
            Bound::Unbounded => continue,
        };
        params.push(key);
        sql.push_str(&format!(" AND k {op} ${}", params.len() + 1));
    }
    sql
}

async fn get(
    client: &ClientWrapper,
    table: &str,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    let statement = client.prepare_cached(GET).await.map_err(pg_err)?;
    let row = client
        .query_opt(&statement, &[&table, &key])
        .await
        .map_err(pg_err)?;
    Ok(row.map(|row| row.get(0)))
}

async fn range(
    client: &ClientWrapper,
    table: &str,
    low: Bound<&[u8]>,
    high: Bound<&[u8]>,
    reverse: bool,
    limit: usize,
    flush: Option<Flush>,
) -> Result<Rows, StoreError> {
    let mut keys = Vec::new();
    let condition = range_condition(low, high, &mut keys);
    let sql = format!(
        "SELECT k, v FROM incidentd_kv WHERE {condition} ORDER BY k {} LIMIT ${}",
        if reverse { "DESC" } else { "ASC" },
        keys.len() + 2
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&table];
    params.extend(keys.iter().map(|key| key as &(dyn ToSql + Sync)));
    params.push(&limit);
    let statement = client.prepare_cached(&sql).await.map_err(pg_err)?;
    let rows = match flush {
        Some(flush) => {
            let flush = flush.prepare(client).await?;
            let (flushed, rows) =
                tokio::join!(flush.run(client), client.query(&statement, &params));
            flushed?;
            rows
        }
        None => client.query(&statement, &params).await,
    };
    Ok(rows
        .map_err(pg_err)?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

async fn tables(client: &ClientWrapper) -> Result<Vec<String>, StoreError> {
    let statement = client.prepare_cached(TABLES).await.map_err(pg_err)?;
    let rows = client.query(&statement, &[]).await.map_err(pg_err)?;
    let mut names: Vec<String> = rows.into_iter().map(|row| row.get(0)).collect();
    // In byte order, as a redb file lists them (the index sorts by the collation).
    names.sort();
    Ok(names)
}

async fn len(client: &ClientWrapper, table: &str) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(LEN).await.map_err(pg_err)?;
    let count: i64 = client
        .query_one(&statement, &[&table])
        .await
        .map_err(pg_err)?
        .get(0);
    Ok(count.max(0) as u64)
}

/// A read transaction.
struct Read<'p> {
    pg: &'p Postgres,
    session: Session,
}

struct ReadTable<'a> {
    txn: &'a Read<'a>,
    name: &'static str,
}

impl RawRead for Read<'_> {
    fn table<'a>(&'a self, name: &'static str) -> Result<Box<dyn RawTable + 'a>, StoreError> {
        Ok(Box::new(ReadTable { txn: self, name }))
    }

    fn tables(&self) -> Result<Vec<String>, StoreError> {
        self.pg.block_on(tables(self.session.client()))
    }
}

impl RawTable for ReadTable<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.txn.session.client();
        self.txn.pg.call(get(client, self.name, key))
    }

    fn range(
        &self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Rows, StoreError> {
        let client = self.txn.session.client();
        self.txn
            .pg
            .call(range(client, self.name, low, high, reverse, limit, None))
    }

    fn len(&self) -> Result<u64, StoreError> {
        let client = self.txn.session.client();
        self.txn.pg.call(len(client, self.name))
    }
}

/// Writes not sent yet: per table, per key, the value put (`None`: deleted). One entry a
/// key, the last write to it, so the order of the buffered writes is kept.
#[derive(Default)]
struct Buffer {
    tables: BTreeMap<&'static str, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    entries: usize,
}

impl Buffer {
    fn lookup(&self, table: &str, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.tables.get(table)?.get(key).cloned()
    }

    fn set(&mut self, table: &'static str, key: &[u8], value: Option<&[u8]>) {
        let rows = self.tables.entry(table).or_default();
        if rows
            .insert(key.to_vec(), value.map(<[u8]>::to_vec))
            .is_none()
        {
            self.entries += 1;
        }
    }

    /// What to send: every table's writes, or one table's (what a read of it must see).
    fn take(&mut self, table: Option<&'static str>) -> Option<Flush> {
        let tables = match table {
            None => std::mem::take(&mut self.tables),
            Some(table) => {
                let rows = self.tables.remove(table)?;
                BTreeMap::from([(table, rows)])
            }
        };
        let mut flush = Flush::default();
        for (table, rows) in tables {
            self.entries -= rows.len();
            for (key, value) in rows {
                match value {
                    Some(value) => {
                        flush.put_tables.push(table);
                        flush.put_keys.push(key);
                        flush.put_values.push(value);
                    }
                    None => {
                        flush.delete_tables.push(table);
                        flush.delete_keys.push(key);
                    }
                }
            }
        }
        (!flush.put_keys.is_empty() || !flush.delete_keys.is_empty()).then_some(flush)
    }
}

/// Buffered writes on their way: one statement for all of them.
#[derive(Default)]
struct Flush {
    put_tables: Vec<&'static str>,
    put_keys: Vec<Vec<u8>>,
    put_values: Vec<Vec<u8>>,
    delete_tables: Vec<&'static str>,
    delete_keys: Vec<Vec<u8>>,
}

struct PreparedFlush {
    flush: Flush,
    statement: tokio_postgres::Statement,
}

impl Flush {
    /// Prepares its statement first, so that running it can be pipelined with what follows
    /// (a request is sent when its future is first polled; a prepare would send later).
    async fn prepare(self, client: &ClientWrapper) -> Result<PreparedFlush, StoreError> {
        let sql = match (self.put_keys.is_empty(), self.delete_keys.is_empty()) {
            (false, true) => UPSERT,
            (true, false) => DELETE,
            _ => UPSERT_AND_DELETE,
        };
        let statement = client.prepare_cached(sql).await.map_err(pg_err)?;
        Ok(PreparedFlush {
            flush: self,
            statement,
        })
    }
}

impl PreparedFlush {
    async fn run(&self, client: &ClientWrapper) -> Result<(), StoreError> {
        let flush = &self.flush;
        let params: Vec<&(dyn ToSql + Sync)> =
            match (flush.put_keys.is_empty(), flush.delete_keys.is_empty()) {
                (false, true) => vec![&flush.put_tables, &flush.put_keys, &flush.put_values],
                (true, false) => vec![&flush.delete_tables, &flush.delete_keys],
                _ => vec![
                    &flush.put_tables,
                    &flush.put_keys,
                    &flush.put_values,
                    &flush.delete_tables,
                    &flush.delete_keys,
                ],
            };
        client
            .execute(&self.statement, &params)
            .await
            .map(drop)
            .map_err(pg_err)
    }
}

/// A write transaction.
struct Write<'p> {
    pg: &'p Postgres,
    session: Session,
    buffer: RefCell<Buffer>,
    /// A statement failed: the server aborted the transaction, and commit must not report
    /// success.
    failed: Cell<bool>,
}

impl Write<'_> {
    /// Runs a statement of this transaction; a failure marks it failed.
    fn run<T>(
        &self,
        body: impl AsyncFnOnce(&ClientWrapper) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.failed.get() {
            return Err(aborted());
        }
        let result = self.pg.call(body(self.session.client()));
        if result.is_err() {
            self.failed.set(true);
        }
        result
    }

    fn lookup(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(buffered) = self.buffer.borrow().lookup(table, key) {
            return Ok(buffered);
        }
        // Buffered writes to other keys do not change this one: no flush needed.
        self.run(async |client| get(client, table, key).await)
    }

    fn buffer(
        &self,
        table: &'static str,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        if self.failed.get() {
            return Err(aborted());
        }
        let mut buffer = self.buffer.borrow_mut();
        buffer.set(table, key, value);
        if buffer.entries >= MAX_BUFFERED {
            let flush = buffer.take(None);
            drop(buffer);
            if let Some(flush) = flush {
                self.run(async |client| flush.prepare(client).await?.run(client).await)?;
            }
        }
        Ok(())
    }

    /// Sends `table`'s buffered writes (all tables' with `None`).
    fn flush(&self, table: Option<&'static str>) -> Result<(), StoreError> {
        let flush = self.buffer.borrow_mut().take(table);
        match flush {
            Some(flush) => self.run(async |client| flush.prepare(client).await?.run(client).await),
            None => Ok(()),
        }
    }
}

fn aborted() -> StoreError {
    StoreError::Postgres(
        "an earlier statement of this write transaction failed; nothing of it will be written"
            .to_owned(),
    )
}

struct WriteTable<'a> {
    txn: &'a Write<'a>,
    name: &'static str,
}

impl RawWrite for Write<'_> {
    fn table<'a>(&'a self, name: &'static str) -> Result<Box<dyn RawTableMut + 'a>, StoreError> {
        Ok(Box::new(WriteTable { txn: self, name }))
    }

    fn tables(&self) -> Result<Vec<String>, StoreError> {
        // What is buffered may add a table (or, deleted, empty one).
        self.flush(None)?;
        self.run(async |client| tables(client).await)
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        if self.failed.get() {
            return Err(aborted()); // dropped: rolled back
        }
        let flush = self.buffer.borrow_mut().take(None);
        let client = self.session.client();
        let committed = self.pg.call(async {
            let flush = match flush {
                Some(flush) => Some(flush.prepare(client).await?),
                None => None,
            };
            let flushed = async {
                match &flush {
                    Some(flush) => flush.run(client).await,
                    None => Ok(()),
                }
            };
            // Pipelined: the writes and COMMIT in one round trip. If the writes fail, the
            // server takes the COMMIT of the aborted transaction as a ROLLBACK.
            let (flushed, committed) = tokio::join!(flushed, client.batch_execute("COMMIT"));
            flushed?;
            committed.map_err(pg_err)
        });
        let this = *self;
        if committed.is_ok() {
            this.session.finish();
        }
        committed
    }
}

impl RawTable for WriteTable<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.txn.lookup(self.name, key)
    }

    fn range(
        &self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Rows, StoreError> {
        let name = self.name;
        let flush = self.txn.buffer.borrow_mut().take(Some(name));
        self.txn
            .run(async |client| range(client, name, low, high, reverse, limit, flush).await)
    }

    fn len(&self) -> Result<u64, StoreError> {
        self.txn.flush(Some(self.name))?;
        let name = self.name;
        self.txn.run(async |client| len(client, name).await)
    }
}

impl RawTableMut for WriteTable<'_> {
    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.txn.lookup(self.name, key)?;
        self.txn.buffer(self.name, key, Some(value))?;
        Ok(old)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.txn.buffer(self.name, key, Some(value))
    }

    fn remove(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.txn.lookup(self.name, key)?;
        if old.is_some() {
            self.txn.buffer(self.name, key, None)?;
        }
        Ok(old)
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.txn.buffer(self.name, key, None)
    }

    fn delete_range(&mut self, low: Bound<&[u8]>, high: Bound<&[u8]>) -> Result<(), StoreError> {
        let name = self.name;
        // What is buffered for this table is written first: the range deletes it too.
        self.txn.flush(Some(name))?;
        self.txn.run(async |client| {
            let mut keys = Vec::new();
            let condition = range_condition(low, high, &mut keys);
            let sql = format!("DELETE FROM incidentd_kv WHERE {condition}");
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&name];
            params.extend(keys.iter().map(|key| key as &(dyn ToSql + Sync)));
            let statement = client.prepare_cached(&sql).await.map_err(pg_err)?;
            client
                .execute(&statement, &params)
                .await
                .map(drop)
                .map_err(pg_err)
        })
    }
}

/// An error of the server or of the connection, without the connection string: the
/// server's message and SQLSTATE, or the client's description (which names no URL).
fn pg_err(error: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres(describe(&error))
}

fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut message = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                message.push_str(": ");
                message.push_str(detail);
            }
            message
        }
        None => {
            // The client's own message and its causes (an I/O error, a timeout).
            let mut message = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !message.contains(&cause_text) {
                    message.push_str(": ");
                    message.push_str(&cause_text);
                }
                source = cause.source();
            }
            message
        }
    }
}

/// A call the server did not answer in time.
fn silent(deadline: Duration) -> StoreError {
    StoreError::Postgres(format!(
        "the server did not answer within {deadline:?} (twice the statement timeout): \
         the connection is given up"
    ))
}

fn pool_err(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => pg_err(error),
        PoolError::Timeout(_) => StoreError::Postgres(
            "no connection of the pool came free in time (all busy, or the server unreachable)"
                .to_owned(),
        ),
        PoolError::Closed => StoreError::Postgres("the connection pool is closed".to_owned()),
        other => StoreError::Postgres(other.to_string()),
    }
}

/// Polls `future` on this thread until it is ready, sleeping while it waits.
///
/// Outside tokio's cooperative budget: called from a runtime's task (the engine), the
/// future would share that task's budget, and once it ran out every tokio resource it
/// polls (the pool's semaphore, a timer) answers `Pending` and defers its wake-up until the
/// task yields — which it never does while this thread sleeps here: the engine hung for
/// good (a standby, reading the store again after each of the leader's commits, ran its
/// budget out this way and never led when it took the lease).
fn park_on<F: Future>(future: F) -> F::Output {
    let future = tokio::task::unconstrained(future);
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

/// The leader election's primitives, on a connection of their own: the leader holds the
/// session advisory lock [`LEADER_LOCK`] on it, and the lease row names it with an epoch
/// and an expiry. Its methods are async: call them from a task of the caller's runtime
/// (the connection is driven by a task spawned there).
pub struct Lease {
    client: Client,
    replica_id: String,
    /// This connection holds the leader's advisory lock.
    holding: AtomicBool,
}

/// Who leads, as the lease row tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    pub holder: String,
    pub epoch: u64,
    /// Its lease ran out (it stopped renewing, or released it).
    pub expired: bool,
}

/// A replica that registered, and when it was last heard of.
#[derive(Clone, Debug, PartialEq)]
pub struct Replica {
    pub id: String,
    pub url: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub seen_at: chrono::DateTime<chrono::Utc>,
    /// How long ago, by the database's clock (no clock skew between replicas).
    pub seen_ago: Duration,
}

/// Why an attempt at the lease failed.
enum Attempt {
    Acquired(u64),
    /// Another session holds the advisory lock.
    Locked,
    /// The lock was free but the lease is another's and has not expired.
    Refused,
}

impl Lease {
    /// Connects (its own connection, not the pool's) and brings the schema up to date.
    pub async fn connect(config: &PgConfig, replica_id: &str) -> Result<Lease, StoreError> {
        let client = connect(config).await?;
        migrate(&client).await?;
        Ok(Lease {
            client,
            replica_id: replica_id.to_owned(),
            holding: AtomicBool::new(false),
        })
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// Whether the connection is gone (a terminated session, a network failure): make a
    /// new `Lease`; whatever epoch this one held is lost.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Takes the lease when no live session holds it: answers the new epoch (one above
    /// every earlier one), `None` when another replica leads. A holder whose lease expired
    /// while its session stays open (partitioned away from its replica) has that session
    /// terminated, and the lease is tried once more.
    pub async fn try_acquire(&self, ttl: Duration) -> Result<Option<u64>, StoreError> {
        match self.attempt(ttl).await? {
            Attempt::Acquired(epoch) => return Ok(Some(epoch)),
            Attempt::Refused => return Ok(None),
            Attempt::Locked => {}
        }
        if !self.terminate_expired_holder().await? {
            return Ok(None);
        }
        match self.attempt(ttl).await? {
            Attempt::Acquired(epoch) => Ok(Some(epoch)),
            Attempt::Locked | Attempt::Refused => Ok(None),
        }
    }

    async fn attempt(&self, ttl: Duration) -> Result<Attempt, StoreError> {
        if !self.holding.load(Ordering::SeqCst) {
            let locked: bool = self
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
                .await
                .map_err(pg_err)?
                .get(0);
            if !locked {
                return Ok(Attempt::Locked);
            }
            self.holding.store(true, Ordering::SeqCst);
        }
        // Holding the lock, no other session does: the lease is free when it expired, is
        // this replica's (a restart), or names a session that has ended (its replica died)
        // — unless the server started after the lease was last renewed (its expiry less
        // the ttl): a database restart ended that session, and the leader, alive,
        // reconnects and renews (taking the lock back); it has until the lease expires.
        let row = self
            .client
            .query_opt(
                "UPDATE incidentd_lease SET epoch = epoch + 1, holder = $1,
                        holder_pid = pg_backend_pid(),
                        expires_at = now() + make_interval(secs => $2)
                 WHERE id = 1 AND (expires_at IS NULL OR expires_at < now() OR holder = $1
                       OR (NOT EXISTS (SELECT 1 FROM pg_stat_activity AS a
                                       WHERE a.pid = incidentd_lease.holder_pid)
                           AND pg_postmaster_start_time()
                               < expires_at - make_interval(secs => $2)))
                 RETURNING epoch",
                &[&self.replica_id, &ttl.as_secs_f64()],
            )
            .await
            .map_err(pg_err)?;
        match row {
            Some(row) => Ok(Attempt::Acquired(row.get::<_, i64>(0) as u64)),
            None => {
                self.unlock().await?;
                Ok(Attempt::Refused)
            }
        }
    }

    /// Terminates the session holding the advisory lock if it is the lease's holder and the
    /// lease expired (the same role may end its own sessions). Answers whether it did.
    async fn terminate_expired_holder(&self) -> Result<bool, StoreError> {
        let (classid, objid) = ((LEADER_LOCK >> 32) as u32, LEADER_LOCK as u32);
        let row = self
            .client
            .query_opt(
                "SELECT pg_terminate_backend(l.holder_pid, 5000) FROM incidentd_lease AS l
                 WHERE l.id = 1 AND l.expires_at < now()
                   AND l.holder_pid IS DISTINCT FROM pg_backend_pid()
                   AND EXISTS (SELECT 1 FROM pg_locks AS p
                               WHERE p.locktype = 'advisory' AND p.granted
                                 AND p.pid = l.holder_pid AND p.classid = $1
                                 AND p.objid = $2 AND p.objsubid = 1
                                 AND p.database = (SELECT oid FROM pg_database
                                                   WHERE datname = current_database()))",
                &[&classid, &objid],
            )
            .await
            .map_err(pg_err)?;
        let terminated = row.is_some_and(|row| row.get::<_, bool>(0));
        if terminated {
            tracing::warn!(
                "took the lease from a leader whose lease expired with its session still open"
            );
        }
        Ok(terminated)
    }

    /// Extends the lease of `epoch`: `false` when another replica took over (deposed).
    ///
    /// The lease then names this session: on a connection made again (the old one broke:
    /// a database restart ends every session) the lease would otherwise name a session
    /// that is gone, and a standby would take over at its next attempt however soon the
    /// leader reconnected. The advisory lock is taken back too, if free; if a standby
    /// holds it at that moment, its attempt finds the lease renewed by a live session and
    /// lets the lock go, and the next renewal takes it.
    pub async fn renew(&self, epoch: u64, ttl: Duration) -> Result<bool, StoreError> {
        let mut locked_now = false;
        if !self.holding.load(Ordering::SeqCst) {
            locked_now = self
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
                .await
                .map_err(pg_err)?
                .get(0);
            self.holding.store(locked_now, Ordering::SeqCst);
        }
        let updated = self
            .client
            .execute(
                "UPDATE incidentd_lease SET expires_at = now() + make_interval(secs => $2),
                        holder_pid = pg_backend_pid()
                 WHERE id = 1 AND epoch = $1",
                &[&to_i64(epoch), &ttl.as_secs_f64()],
            )
            .await
            .map_err(pg_err)?;
        if updated != 1 && locked_now {
            // Deposed: the lock is the new leader's to take.
            self.unlock().await?;
        }
        Ok(updated == 1)
    }

    /// Gives the lease up: it expires now (if still `epoch`'s) and the lock is released, so
    /// another replica takes over at once.
    pub async fn release(&self, epoch: u64) -> Result<(), StoreError> {
        self.client
            .execute(
                "UPDATE incidentd_lease SET expires_at = now() WHERE id = 1 AND epoch = $1",
                &[&to_i64(epoch)],
            )
            .await
            .map_err(pg_err)?;
        self.unlock().await
    }

    async fn unlock(&self) -> Result<(), StoreError> {
        if self.holding.swap(false, Ordering::SeqCst) {
            self.client
                .execute("SELECT pg_advisory_unlock($1)", &[&LEADER_LOCK])
                .await
                .map_err(pg_err)?;
        }
        Ok(())
    }

    /// Who leads (`None`: nobody ever did).
    pub async fn leader(&self) -> Result<Option<Leader>, StoreError> {
        leader(&self.client).await
    }

    /// How many write transactions have begun (the committed ones announce theirs).
    pub async fn commit_seq(&self) -> Result<u64, StoreError> {
        let row = self
            .client
            .query_one("SELECT commit_seq FROM incidentd_lease WHERE id = 1", &[])
            .await
            .map_err(pg_err)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Registers a replica (again: a restart) with the URL its peers reach it at.
    pub async fn register_replica(&self, id: &str, url: &str) -> Result<(), StoreError> {
        self.client
            .execute(
                "INSERT INTO incidentd_replicas (id, url, started_at, seen_at)
                 VALUES ($1, $2, now(), now())
                 ON CONFLICT (id) DO UPDATE
                 SET url = EXCLUDED.url, started_at = now(), seen_at = now()",
                &[&id, &url],
            )
            .await
            .map(drop)
            .map_err(pg_err)
    }

    /// The replica is alive; `false` when it is not registered.
    pub async fn heartbeat(&self, id: &str) -> Result<bool, StoreError> {
        let updated = self
            .client
            .execute(
                "UPDATE incidentd_replicas SET seen_at = now() WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(pg_err)?;
        Ok(updated == 1)
    }

    /// Every registered replica, by id.
    pub async fn replicas(&self) -> Result<Vec<Replica>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT id, url, (extract(epoch FROM started_at) * 1000000)::int8,
                        (extract(epoch FROM seen_at) * 1000000)::int8,
                        greatest((extract(epoch FROM now() - seen_at) * 1000000)::int8, 0)
                 FROM incidentd_replicas ORDER BY id",
                &[],
            )
            .await
            .map_err(pg_err)?;
        let time =
            |micros: i64| chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
        Ok(rows
            .into_iter()
            .map(|row| Replica {
                id: row.get(0),
                url: row.get(1),
                started_at: time(row.get(2)),
                seen_at: time(row.get(3)),
                seen_ago: Duration::from_micros(row.get::<_, i64>(4) as u64),
            })
            .collect())
    }
}

/// Who leads, as the lease row tells (`None`: nobody ever did).
async fn leader(client: &Client) -> Result<Option<Leader>, StoreError> {
    let row = client
        .query_one(
            "SELECT holder, epoch, expires_at IS NULL OR expires_at <= now()
             FROM incidentd_lease WHERE id = 1",
            &[],
        )
        .await
        .map_err(pg_err)?;
    let holder: Option<String> = row.get(0);
    Ok(holder.map(|holder| Leader {
        holder,
        epoch: row.get::<_, i64>(1) as u64,
        expired: row.get(2),
    }))
}

/// A connection of its own, driven by a task on the caller's runtime.
async fn connect(config: &PgConfig) -> Result<Client, StoreError> {
    let (client, connection) = config
        .client_config()?
        .connect(NoTls)
        .await
        .map_err(pg_err)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(error = %describe(&error), "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// The `commit_seq` of every write transaction that commits from now on, in order, as
/// the leader's commits are announced (`LISTEN incidentd_commit`, on a connection of its
/// own driven by a task of the caller's runtime). The channel closes when the connection
/// does: listen again, and read what was missed. Dropping the receiver closes the
/// connection.
pub async fn listen_commits(config: &PgConfig) -> Result<mpsc::Receiver<u64>, StoreError> {
    let (client, mut connection) = config
        .client_config()?
        .connect(NoTls)
        .await
        .map_err(pg_err)?;
    let (sender, receiver) = mpsc::channel(256);
    let (ready, listening) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut messages = std::pin::pin!(futures_util::stream::poll_fn(
            move |cx| connection.poll_message(cx)
        ));
        let forward = async |message: Option<Result<AsyncMessage, tokio_postgres::Error>>| {
            match message {
                Some(Ok(AsyncMessage::Notification(note))) if note.channel() == COMMIT_CHANNEL => {
                    match note.payload().parse::<u64>() {
                        Ok(seq) => sender.send(seq).await.is_ok(),
                        Err(_) => true,
                    }
                }
                Some(Ok(_)) => true,
                Some(Err(error)) => {
                    tracing::warn!(error = %describe(&error), "PostgreSQL LISTEN connection closed");
                    false
                }
                None => false,
            }
        };
        // The LISTEN needs the connection driven: both at once until it is answered.
        let mut listen = std::pin::pin!(client.batch_execute("LISTEN incidentd_commit"));
        let mut ready = Some(ready);
        loop {
            tokio::select! {
                done = &mut listen, if ready.is_some() => {
                    let ok = done.is_ok();
                    let _ = ready.take().expect("once").send(done.map_err(pg_err));
                    if !ok {
                        return;
                    }
                }
                message = futures_util::StreamExt::next(&mut messages) => {
                    if !forward(message).await {
                        return;
                    }
                }
                () = sender.closed() => return,
            }
        }
    });
    listening
        .await
        .map_err(|_| StoreError::Postgres("the LISTEN connection closed".to_owned()))??;
    Ok(receiver)
}

/// Test databases: each test gets a database of its own on the server named by
/// `INCIDENTD_TEST_POSTGRES`, dropped when the test ends.
pub mod testing {
    use std::time::Duration;

    use super::{PgConfig, redacted};

    const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    /// A database made for one test; dropped (best effort) with this.
    pub struct TestDatabase {
        pub url: String,
        pub name: String,
        admin: String,
    }

    impl TestDatabase {
        pub fn config(&self) -> PgConfig {
            PgConfig {
                url: self.url.clone(),
                pool_size: 4,
                statement_timeout: Duration::from_secs(30),
            }
        }
    }

    /// A new, empty database `incidentd_test_<random hex>` on the test server. `None`
    /// (with a note on stderr) when the server cannot be reached, unless
    /// `INCIDENTD_REQUIRE_INTEROP=1`: then it panics. Callable from any thread, async or
    /// not.
    pub fn fresh_database() -> Option<TestDatabase> {
        let admin = std::env::var("INCIDENTD_TEST_POSTGRES")
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        let name = format!("incidentd_test_{:016x}", rand::random::<u64>());
        let sql = format!("CREATE DATABASE {name}");
        match admin_run(&admin, &sql) {
            Ok(()) => Some(TestDatabase {
                url: with_dbname(&admin, &name),
                name,
                admin,
            }),
            Err(error) => {
                let server = redacted(&admin);
                if std::env::var("INCIDENTD_REQUIRE_INTEROP").as_deref() == Ok("1") {
                    panic!(
                        "no PostgreSQL at {server} ({error}), and INCIDENTD_REQUIRE_INTEROP=1 \
                         requires one: start it or set INCIDENTD_TEST_POSTGRES"
                    );
                }
                eprintln!("skipped: no PostgreSQL at {server} ({error})");
                None
            }
        }
    }

    impl Drop for TestDatabase {
        fn drop(&mut self) {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if let Err(error) = admin_run(&self.admin, &sql) {
                eprintln!("could not drop the test database {}: {error}", self.name);
            }
        }
    }

    /// Runs one statement on the admin database, on a thread and runtime of its own.
    fn admin_run(admin: &str, sql: &str) -> Result<(), String> {
        let admin = admin.to_owned();
        let sql = sql.to_owned();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async {
                let mut config: tokio_postgres::Config =
                    admin.parse().map_err(|error| format!("{error}"))?;
                config.connect_timeout(Duration::from_secs(3));
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|error| super::describe(&error))?;
                let driver = tokio::spawn(connection);
                let result = client
                    .batch_execute(&sql)
                    .await
                    .map_err(|error| super::describe(&error));
                drop(client);
                let _ = driver.await;
                result
            })
        })
        .join()
        .map_err(|_| "the admin thread panicked".to_owned())?
    }

    /// The connection string with another database.
    pub fn with_dbname(url: &str, dbname: &str) -> String {
        for scheme in ["postgres://", "postgresql://"] {
            if let Some(rest) = url.strip_prefix(scheme) {
                let (before_query, query) = match rest.find('?') {
                    Some(at) => rest.split_at(at),
                    None => (rest, ""),
                };
                let authority = before_query.split('/').next().unwrap_or("");
                return format!("{scheme}{authority}/{dbname}{query}");
            }
        }
        format!("{url} dbname={dbname}")
    }
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
