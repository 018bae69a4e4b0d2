//! The command line: `serve`, `check`, `test` and `ctl` (the API client, in [`crate::ctl`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::{self, Config};
use crate::rule_test_runner;

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
        #[arg(long, default_value = "incidentd.yaml")]
        config: PathBuf,
    },
    /// Validate the configuration and every rule file; print every error as FILE:LINE:COL.
    Check {
        #[arg(long, default_value = "incidentd.yaml")]
        config: PathBuf,
    },
    /// Run rule unit tests (like `promtool test rules`); exit 1 when any fails.
    Test {
        /// Rule test files (see README, "Rule unit tests").
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Talk to a running incidentd over its HTTP API: list, show, ack, escalate, note, hold,
    /// resume, resolve, close, reopen, open, update.
    Ctl(Box<crate::ctl::CtlArgs>),
}

impl Cli {
    /// The log filter when `RUST_LOG` is not set: `test` shows only warnings, so that the
    /// engine's "incident opened" lines do not bury the test results.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Test { .. } | Command::Ctl(_) => "warn",
            Command::Serve { .. } | Command::Check { .. } => "info",
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
        Command::Test { files } => test(&files),
        Command::Ctl(args) => Ok(crate::ctl::run(*args)),
    }
}

/// Runs every test of every file: failures on stdout, promtool-style, problems in the files
/// on stderr as `FILE:LINE:COL: message`, then one summary line. Exit 1 when anything failed.
fn test(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let (mut passed, mut failed, mut invalid) = (0, 0, 0);
    for file in files {
        match runtime.block_on(rule_test_runner::run_file(file)) {
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
