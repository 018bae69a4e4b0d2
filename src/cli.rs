//! The command line: `serve` and `check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::{self, Config};

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
                let app = App::build(config, Arc::new(SystemClock)).await?;
                app.run_until_stopped(shutdown_signal()).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
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
