//! Live reload (`SIGHUP`, `POST /-/reload`): re-read `incidentd.yaml` and every rule file;
//! if anything is invalid nothing changes (every problem is reported); if all is valid,
//! apply it part by part — the engine (rules, workflow policies, consumers), the probes
//! (unchanged ones keep their schedule, history and detector state), the webhook workers,
//! and the tokens and status-page services the API reads. Keys that need a restart
//! (`listen`, `storage`) are reported and otherwise ignored. Reloads run one at a time.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::{ReloadError, ReloadReport, ReloadRequest, Tokens};
use crate::clock::Clock;
use crate::config::{Config, ConfigErrors};
use crate::engine::EngineHandle;
use crate::metrics::Metrics;
use crate::notify::Workers;
use crate::probe::ProbeSet;

/// Reads the configuration at a path (with the process's environment for secrets).
pub type Loader = Arc<dyn Fn(&std::path::Path) -> Result<Config, ConfigErrors> + Send + Sync>;

/// Everything a reload changes, owned by the one task that reloads.
pub(super) struct Reloader {
    pub path: PathBuf,
    pub loader: Loader,
    /// The values in force of the keys that need a restart.
    pub running: Config,
    pub engine: EngineHandle,
    pub probes: ProbeSet,
    pub webhooks: Workers,
    pub tokens: Arc<RwLock<Arc<Tokens>>>,
    pub site: Arc<crate::api::Site>,
    pub status: crate::web::status::StatusPages,
    /// The bound address: the status page's links without `external_url`.
    pub listen: std::net::SocketAddr,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
}

impl Reloader {
    /// Serves reload requests (and `SIGHUP` when `sighup`) until `stop`.
    pub async fn run(
        mut self,
        mut requests: mpsc::Receiver<ReloadRequest>,
        sighup: bool,
        stop: CancellationToken,
    ) {
        let mut hangups = sighup.then(hangup_signals).flatten();
        loop {
            let reply = tokio::select! {
                () = stop.cancelled() => return,
                request = requests.recv() => match request {
                    Some(reply) => Some(reply),
                    None => return,
                },
                Some(()) = next_hangup(&mut hangups) => None,
            };
            let outcome = self.reload().await;
            match (&outcome, reply.is_some()) {
                (Ok(report), _) => {
                    tracing::info!(?report, "configuration reloaded");
                }
                (Err(ReloadError::Invalid(errors)), false) => {
                    // SIGHUP has nobody to answer: the log says what is wrong.
                    for diagnostic in &errors.0 {
                        tracing::error!("{diagnostic}");
                    }
                    tracing::error!("configuration reload failed; nothing changed");
                }
                (Err(error), _) => tracing::warn!(?error, "configuration reload failed"),
            }
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
        }
    }

    async fn reload(&mut self) -> Result<ReloadReport, ReloadError> {
        let path = self.path.clone();
        let loader = self.loader.clone();
        let loaded = tokio::task::spawn_blocking(move || loader(&path))
            .await
            .map_err(|join| ReloadError::Unavailable(join.to_string()))?;
        let config = match loaded {
            Ok(config) => config,
            Err(errors) => {
                self.metrics.config_last_reload_successful.set(0);
                return Err(ReloadError::Invalid(errors));
            }
        };
        let restart_required = self.running.restart_required(&config);
        for key in &restart_required {
            tracing::warn!(
                key,
                "changed in the configuration; takes effect after a restart"
            );
        }
        let wakers = self.webhooks.apply(&config.webhooks);
        let rules = self
            .engine
            .reconfigure(config.clone(), wakers)
            .await
            .map_err(|error| {
                self.metrics.config_last_reload_successful.set(0);
                ReloadError::Unavailable(error.to_string())
            })?;
        let probes = self.probes.apply(&config.probes);
        *self
            .tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Arc::new(Tokens(config.auth.tokens.clone()));
        self.site.set_external_url(config.external_url.as_deref());
        self.status
            .set_settings(super::page_settings(&config, self.listen));
        self.metrics.config_last_reload_successful.set(1);
        self.metrics
            .config_last_reload_success_timestamp_seconds
            .set(self.clock.now().timestamp_millis() as f64 / 1000.0);
        Ok(ReloadReport {
            restart_required: restart_required.iter().map(|k| (*k).to_owned()).collect(),
            rules_added: rules.rules_added,
            rules_changed: rules.rules_changed,
            rules_removed: rules.rules_removed,
            probes_started: probes.started,
            probes_restarted: probes.restarted,
            probes_stopped: probes.stopped,
            probes_unchanged: probes.unchanged,
        })
    }
}

type Hangups = tokio::signal::unix::Signal;

fn hangup_signals() -> Option<Hangups> {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(signals) => Some(signals),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload with POST /-/reload");
            None
        }
    }
}

/// The next `SIGHUP`; never, without a listener.
async fn next_hangup(hangups: &mut Option<Hangups>) -> Option<()> {
    match hangups {
        Some(signals) => signals.recv().await,
        None => std::future::pending().await,
    }
}
