//! The `storage` section: a redb file (the default) or PostgreSQL, for several replicas.
//!
//! ```yaml
//! storage: {path: data/incidentd.redb}
//! # or
//! storage:
//!   postgres:
//!     url_env: INCIDENTD_DATABASE_URL   # postgres://user:pass@host:5432/incidentd
//!     pool_size: 8                      # connections per replica
//!     statement_timeout: 5s
//!     lease_ttl: 10s                    # a standby takes over this long after the leader went silent
//!     write_wait: 15s                   # a write waits this long for a leader, then 503
//!     advertise_url: http://10.0.0.5:9750   # where the other replicas reach this one
//! ```
//!
//! The connection string holds the database's credentials, so it is read from the
//! environment variable named here, at load; no message ever quotes its value.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use super::document::{Check, Secrets};
use super::locate::Segment::Key;

pub const DEFAULT_STORAGE_PATH: &str = "data/incidentd.redb";
const DEFAULT_POOL_SIZE: usize = 8;
const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// The shortest lease: renewals go every third of it, and a database round trip must fit.
const MIN_LEASE_TTL: Duration = Duration::from_secs(1);
const MAX_LEASE_TTL: Duration = Duration::from_secs(300);
const MAX_POOL_SIZE: usize = 256;

/// Where the store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A redb file, resolved against the config file's directory.
    File(PathBuf),
    Postgres(PostgresConfig),
}

/// `storage.postgres`, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// The connection string (credentials inside: never logged).
    pub url: String,
    pub pool_size: usize,
    pub statement_timeout: Duration,
    pub lease_ttl: Duration,
    /// How long a write waits for a leader before it is answered 503.
    pub write_wait: Duration,
    /// Where the other replicas forward writes to this one when it leads; `None`: the
    /// address it listens on.
    pub advertise_url: Option<String>,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("lease_ttl", &self.lease_ttl)
            .field("write_wait", &self.write_wait)
            .field("advertise_url", &self.advertise_url)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "storage settings (a mapping with `path` or `postgres`)"
)]
struct StorageOutline {
    path: Option<Value>,
    postgres: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "PostgreSQL settings (a mapping with `url_env`, `pool_size`, `statement_timeout`, `lease_ttl`, `write_wait`, `advertise_url`)"
)]
struct PostgresOutline {
    url_env: Option<Value>,
    pool_size: Option<Value>,
    statement_timeout: Option<Value>,
    lease_ttl: Option<Value>,
    write_wait: Option<Value>,
    advertise_url: Option<Value>,
}

/// `storage`, validated; the default file when absent or wrong (wrong has a diagnostic).
pub(super) fn storage(
    check: &mut Check<'_>,
    config_dir: &Path,
    value: Option<Value>,
    env: Secrets<'_>,
) -> Storage {
    let default = || Storage::File(config_dir.join(DEFAULT_STORAGE_PATH));
    let Some(outline) =
        value.and_then(|value| check.strict::<StorageOutline>(value, &[Key("storage")]))
    else {
        return default();
    };
    if outline.path.is_some() && outline.postgres.is_some() {
        check.at(
            &[Key("storage"), Key("postgres")],
            "storage takes `path` (a redb file) or `postgres`, not both".to_owned(),
        );
        return default();
    }
    if let Some(postgres) = outline.postgres {
        return match self::postgres(check, postgres, env) {
            Some(config) => Storage::Postgres(config),
            None => default(),
        };
    }
    let at = [Key("storage"), Key("path")];
    match outline
        .path
        .and_then(|path| check.field::<String>(&at, "path", Some(path)))
    {
        Some(path) if path.is_empty() => {
            check.at(&at, "storage path must not be empty".to_owned());
            Storage::File(PathBuf::new())
        }
        Some(path) => Storage::File(config_dir.join(path)),
        None => default(),
    }
}

fn postgres(check: &mut Check<'_>, value: Value, env: Secrets<'_>) -> Option<PostgresConfig> {
    let at = [Key("storage"), Key("postgres")];
    let outline = check.strict::<PostgresOutline>(value, &at)?;
    let var: Option<String> = check.required(&at, "url_env", outline.url_env);
    let url_at = [Key("storage"), Key("postgres"), Key("url_env")];
    let url = var.and_then(|var| {
        let url = check.secret(&url_at, &var, "storage.postgres.url_env", env)?;
        match check_postgres_url(&url) {
            Ok(()) => Some(url),
            Err(reason) => {
                check.at(
                    &url_at,
                    format!("environment variable {var} (storage.postgres.url_env) {reason}"),
                );
                None
            }
        }
    });
    let pool_at = [Key("storage"), Key("postgres"), Key("pool_size")];
    let pool_size = match check.field::<usize>(&pool_at, "pool_size", outline.pool_size) {
        None => Some(DEFAULT_POOL_SIZE),
        Some(n) if (1..=MAX_POOL_SIZE).contains(&n) => Some(n),
        Some(n) => {
            check.at(
                &pool_at,
                format!("pool_size {n} is out of range; expected 1 to {MAX_POOL_SIZE}"),
            );
            None
        }
    };
    let mut duration = |key: &'static str, value: Option<Value>, default: Duration| {
        let at = [Key("storage"), Key("postgres"), Key(key)];
        let text: Option<String> = check.field(&at, key, value);
        check.duration(&at, text.as_deref(), default)
    };
    let statement_timeout = duration(
        "statement_timeout",
        outline.statement_timeout,
        DEFAULT_STATEMENT_TIMEOUT,
    );
    let lease_ttl = duration("lease_ttl", outline.lease_ttl, DEFAULT_LEASE_TTL);
    let write_wait_given = outline.write_wait.is_some();
    let write_wait = duration("write_wait", outline.write_wait, Duration::ZERO);
    let lease_at = [Key("storage"), Key("postgres"), Key("lease_ttl")];
    let lease_ttl = lease_ttl.filter(|ttl| {
        let fits = (MIN_LEASE_TTL..=MAX_LEASE_TTL).contains(ttl);
        if !fits {
            check.at(
                &lease_at,
                format!("lease_ttl must be between {MIN_LEASE_TTL:?} and {MAX_LEASE_TTL:?}"),
            );
        }
        fits
    });
    let advertise_at = [Key("storage"), Key("postgres"), Key("advertise_url")];
    let advertise_url: Option<String> =
        check.field(&advertise_at, "advertise_url", outline.advertise_url);
    let advertise_url = match advertise_url {
        Some(url) => match reqwest::Url::parse(&url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
                Some(Some(url.trim_end_matches('/').to_owned()))
            }
            _ => {
                check.at(
                    &advertise_at,
                    format!("advertise_url `{url}` must be an http or https URL"),
                );
                None
            }
        },
        None => Some(None),
    };
    let lease_ttl = lease_ttl?;
    Some(PostgresConfig {
        url: url?,
        pool_size: pool_size?,
        statement_timeout: statement_timeout?,
        lease_ttl,
        // By default a write waits out one failover: a lease running out, and a little more.
        write_wait: if write_wait_given {
            write_wait?
        } else {
            lease_ttl + Duration::from_secs(5)
        },
        advertise_url: advertise_url?,
    })
}

/// Whether `url` is a PostgreSQL connection URL. The reason when not, without quoting the
/// value (it may hold a password).
pub fn check_postgres_url(url: &str) -> Result<(), &'static str> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must start with postgres:// or postgresql://");
    }
    Ok(())
}
