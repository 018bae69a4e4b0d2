//! The command line: `serve`, `check`, `test`, `ctl` (the API client, in [`crate::ctl`])
//! and `store check|repair|copy`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::{self, Config};
use crate::domain::policy::WorkflowConfig;
use crate::rule_test_runner;
use crate::store::{Health, Repaired};

#[derive(Debug, Parser)]
#[command(
    name = "incidentd",
    version,
    about = "Probes and rules that open incidents before the outage, a service-desk workflow, TAT/SLA metrics and signed webhooks."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate the configuration and every rule file; print every error as FILE:LINE:COL.
    Check {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Run rule unit tests (like `promtool test rules`) with the workflow of a configuration
    /// (categories, priority matrix, escalation, SLA); exit 1 when any fails.
    Test {
        /// The configuration whose workflow the tests run with. Default: incidentd.yaml, or
        /// the built-in workflow when there is none in the current directory.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Rule test files (see README, "Rule unit tests").
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Talk to a running incidentd over its HTTP API: list, show, ack, escalate, note, hold,
    /// resume, resolve, close, reopen, open, update.
    Ctl(Box<crate::ctl::CtlArgs>),
    /// Verify or repair the store of a stopped incidentd (`storage.path`), or copy a store
    /// between a redb file and PostgreSQL.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Verify every page of the store without writing to it; exit 0 if it is sound, 1 if not.
    Check {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Copy the store to `<path>.backup-<timestamp>`, then let redb repair it in place;
    /// exit 0 if the store is sound afterwards, 1 if not.
    Repair {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Copy a whole store between a redb file and PostgreSQL (either way, or between two of
    /// a kind), then verify it; exit 0 when copied and verified, 1 if not.
    ///
    /// SRC and DST are each the path of a redb file, a postgres:// or postgresql:// URL, or
    /// env:VAR for the URL that the environment variable VAR holds, so that the password is
    /// on no command line (e.g. `DB_URL=postgres://incidentd:…@db:5432/incidentd incidentd
    /// store copy --from incidentd.redb --to env:DB_URL`). A database is shown by its host,
    /// port and name only: the connection string is never printed.
    ///
    /// Every table is copied as stored (keys and values unchanged), then read back from the
    /// destination and compared with the source table by table (row count and SHA-256 of
    /// its rows): one line per table, then the total.
    ///
    /// Stop every incidentd that uses either store first: a database whose lease a replica
    /// holds (it leads) is refused, and so is a file another process has open. A
    /// destination that holds data is refused unless --force. A source written by a newer
    /// incidentd is refused (one of an older layout is upgraded, as `serve` would).
    ///
    /// Nothing reaches the destination unless the whole copy verified: a file is written as
    /// DST.copying and renamed into place (a failure removes it), a database takes the copy
    /// in one transaction (a failure rolls it back); the layout version
    /// (meta.schema_version) is written last.
    Copy(CopyArgs),
}

#[derive(clap::Args)]
struct CopyArgs {
    /// The store to copy: a redb file, a postgres:// or postgresql:// URL, or env:VAR.
    #[arg(long, value_name = "SRC")]
    from: String,
    /// Where to copy it: a redb file (created), a postgres:// or postgresql:// URL, or
    /// env:VAR.
    #[arg(long, value_name = "DST")]
    to: String,
    /// Clear a destination that holds data and copy over it (in the same transaction in
    /// PostgreSQL; a file is replaced once the copy verified).
    #[arg(long)]
    force: bool,
}

/// Without the URLs, which may hold a password.
impl std::fmt::Debug for CopyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyArgs")
            .field("force", &self.force)
            .finish_non_exhaustive()
    }
}

impl Cli {
    /// The log filter when `RUST_LOG` is not set: `test` shows only warnings, so that the
    /// engine's "incident opened" lines do not bury the test results.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            // `store copy`'s progress (a line per table copied) with RUST_LOG=info.
            Command::Test { .. } | Command::Ctl(_) | Command::Store(StoreCommand::Copy(_)) => {
                "warn"
            }
            Command::Serve { .. } | Command::Check { .. } | Command::Store(_) => "info",
        }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { config } => Ok(match load(&config) {
            Some(config) => {
                println!(
                    "{}: valid ({} rule files, {} probes, {} rules, {} webhooks)",
                    config.path.display(),
                    config.rule_files.len(),
                    config.probes.len(),
                    config.rules.len(),
                    config.webhooks.len()
                );
                ExitCode::SUCCESS
            }
            None => ExitCode::FAILURE,
        }),
        Command::Serve { config } => {
            let Some(config) = load(&config) else {
                return Ok(ExitCode::FAILURE);
            };
            // Before anything opens a file: the connection limit is derived from it.
            crate::app::raise_open_files_limit();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(async {
                let app = App::build(config, Arc::new(SystemClock))
                    .await?
                    .reload_on_sighup();
                app.run_until_stopped(shutdown_signal()).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Test { config, files } => test(config.as_deref(), &files),
        Command::Ctl(args) => Ok(crate::ctl::run(*args)),
        Command::Store(StoreCommand::Check { config }) => Ok(store(&config, false)),
        Command::Store(StoreCommand::Repair { config }) => Ok(store(&config, true)),
        Command::Store(StoreCommand::Copy(args)) => Ok(store_copy(&args)),
    }
}

/// `store copy`: a line per table and the total on stdout when copied and verified, the one
/// line of the problem on stderr (exit 1) when not.
fn store_copy(args: &CopyArgs) -> ExitCode {
    use crate::store::copy::{self, CopyError, Location, Options};
    let env = |name: &str| std::env::var(name).ok();
    let parse = |flag: &'static str, text: &str| {
        Location::parse(text, &env).map_err(|message| CopyError::Argument { flag, message })
    };
    let copied = parse("from", &args.from).and_then(|from| {
        let to = parse("to", &args.to)?;
        let options = Options {
            force: args.force,
            ..Options::default()
        };
        copy::copy(&from, &to, &options)
    });
    match copied {
        Ok(copied) => {
            print!("{}", copied.render());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `store check` and `store repair`: the verdict on stdout when the store is sound, the
/// problem on stderr (exit 1) when not.
fn store(config: &Path, repair: bool) -> ExitCode {
    let Some(config) = load(config) else {
        return ExitCode::FAILURE;
    };
    if config.postgres.is_some() {
        eprintln!(
            "error: `store check` and `store repair` verify a redb file; this configuration keeps the store in PostgreSQL, whose own tools (pg_amcheck, backups) look after it"
        );
        return ExitCode::FAILURE;
    }
    let path = &config.storage_path;
    if !path.exists() {
        eprintln!("{}: no store here", path.display());
        return ExitCode::FAILURE;
    }
    let health = match crate::store::check(path) {
        Ok(health) => health,
        Err(error) => {
            eprintln!("{}: cannot be checked: {error}", path.display());
            return ExitCode::FAILURE;
        }
    };
    match (repair, health) {
        (_, Health::Sound) => {
            println!("{}: sound", path.display());
            ExitCode::SUCCESS
        }
        (false, Health::Damaged(reason)) => {
            eprintln!(
                "{}: damaged: {reason}\n`incidentd store repair` repairs it after making a backup",
                path.display()
            );
            ExitCode::FAILURE
        }
        (true, Health::Damaged(reason)) => {
            eprintln!("{}: damaged: {reason}; repairing", path.display());
            match crate::store::repair(path, chrono::Utc::now()) {
                Ok(Repaired {
                    backup,
                    health: Health::Sound,
                }) => {
                    println!(
                        "{}: repaired; the file as it was is in {} (what the repair dropped is lost from the store: compare with the backup before deleting it)",
                        path.display(),
                        backup.display()
                    );
                    ExitCode::SUCCESS
                }
                Ok(Repaired {
                    backup,
                    health: Health::Damaged(reason),
                }) => {
                    eprintln!(
                        "{}: still damaged after the repair: {reason}; the file as it was is in {}",
                        path.display(),
                        backup.display()
                    );
                    ExitCode::FAILURE
                }
                Err(error) => {
                    eprintln!("{}: {error}", path.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The configuration `serve` and `check` read when not told, and `test` when it exists.
const DEFAULT_CONFIG: &str = "incidentd.yaml";

/// Runs every test of every file: failures on stdout, promtool-style, problems in the files
/// on stderr as `FILE:LINE:COL: message`, then one summary line. Exit 1 when anything failed.
///
/// The tests run with the workflow of `config`; without one, of `incidentd.yaml` when it
/// exists, else with the built-in workflow (said on stderr). A configuration that cannot be
/// read or has problems runs no test: its problems on stderr, exit 1.
fn test(config: Option<&Path>, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let path = match config {
        Some(path) => Some(path),
        None if Path::new(DEFAULT_CONFIG).exists() => Some(Path::new(DEFAULT_CONFIG)),
        None => None,
    };
    let workflow = match path.map(config::load_workflow) {
        Some(Ok(workflow)) => workflow,
        Some(Err(errors)) => {
            for diagnostic in &errors.0 {
                eprintln!("{diagnostic}");
            }
            return Ok(ExitCode::FAILURE);
        }
        None => {
            eprintln!(
                "no {DEFAULT_CONFIG} here: testing with the built-in categories, priority matrix, escalation and SLA policies (--config FILE for a deployment's)"
            );
            WorkflowConfig::default()
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let (mut passed, mut failed, mut invalid) = (0, 0, 0);
    for file in files {
        match runtime.block_on(rule_test_runner::run_file(file, &workflow)) {
            Ok(reports) => {
                for report in &reports {
                    match rule_test_runner::render(file, report) {
                        None => passed += 1,
                        Some(failure) => {
                            print!("{failure}");
                            failed += 1;
                        }
                    }
                }
            }
            Err(errors) => {
                for diagnostic in &errors.0 {
                    eprintln!("{diagnostic}");
                }
                invalid += 1;
            }
        }
    }
    println!("{}", rule_test_runner::summary(passed, failed, invalid));
    Ok(if failed == 0 && invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Loads the configuration, printing every problem to stderr as `FILE:LINE:COL: message`.
fn load(path: &Path) -> Option<Config> {
    match config::load(path, &|name| std::env::var(name).ok()) {
        Ok(config) => Some(config),
        Err(errors) => {
            for diagnostic in &errors.0 {
                eprintln!("{diagnostic}");
            }
            None
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
