//! Start-up and shutdown, shared by `incidentd serve` and the tests: [`App::build`] opens
//! the store, loads the engine's state and binds the listener (port 0 allowed);
//! [`App::run_until_stopped`] runs probes, webhook workers and the HTTP server until the
//! shutdown future completes, then stops them in order: probes and the HTTP server first,
//! then webhook delivery of what is pending (within a grace period), then the engine (which
//! commits what is queued), and finally the store is closed. Meanwhile [`reload`] applies
//! configuration reloads (`SIGHUP`, `POST /-/reload`).

mod http;
mod reload;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, Api, ApiState, Tokens};
use crate::clock::Clock;
use crate::config::Config;
use crate::engine::{Engine, EngineHandle, ReadModel, Wakers};
use crate::metrics::Metrics;
use crate::notify::{Notifier, Stopping, Workers};
use crate::probe::{ProbeBoard, Scheduler};
use crate::web::status::{PageSettings, StatusPages};

use crate::store::Store;
pub use http::raise_open_files_limit;
pub use reload::Loader;

/// How long pending webhooks may still be delivered at shutdown.
const DELIVERY_GRACE: Duration = Duration::from_secs(5);
/// How long in-flight HTTP requests may take to finish at shutdown.
const HTTP_GRACE: Duration = Duration::from_secs(10);

pub struct App {
    config: Config,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
    store: Store,
    metrics: Metrics,
    engine: EngineHandle,
    read: ReadModel,
    engine_task: tokio::task::JoinHandle<()>,
    engine_stop: CancellationToken,
    wakers: Wakers,
    /// This replica in the cluster (PostgreSQL store).
    cluster: Option<crate::cluster::Cluster>,
    /// How a reload reads the configuration again.
    loader: Loader,
    /// Whether `SIGHUP` reloads (the binary; not tests, which share one process).
    sighup: bool,
}

impl App {
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        if config.auth.tokens.is_empty() && !config.listen.ip().is_loopback() {
            bail!(
                "refusing to listen on {} without auth tokens: configure `auth.tokens`, or listen on a loopback address",
                config.listen
            );
        }
        let store = match &config.postgres {
            None => {
                let path = config.storage_path.clone();
                tokio::task::spawn_blocking(move || Store::open(&path))
                    .await?
                    .with_context(|| {
                        format!("opening the store {}", config.storage_path.display())
                    })?
            }
            Some(postgres) => {
                let pg = crate::cluster::pg_config(postgres);
                let at = crate::store::kv::postgres::redacted(&pg.url);
                tokio::task::spawn_blocking(move || Store::open_postgres(&pg))
                    .await?
                    .with_context(|| format!("opening the store in PostgreSQL at {at}"))?
            }
        };
        let metrics = Metrics::with_options(&config.workflow.sla, config.probe_duration_histogram);
        let wakers: Wakers = Arc::new(
            config
                .webhooks
                .iter()
                .map(|w| (w.name.clone(), Arc::new(Notify::new())))
                .collect::<HashMap<_, _>>(),
        );
        let engine_stop = CancellationToken::new();
        let (engine, read, engine_task) = Engine::start(
            store.clone(),
            &config,
            clock.clone(),
            metrics.clone(),
            wakers.clone(),
            engine_stop.clone(),
            // With PostgreSQL, a replica leads once it holds the lease.
            config.postgres.is_none(),
        )
        .context("loading the state from the store")?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let cluster = match &config.postgres {
            None => None,
            Some(postgres) => {
                let url = postgres.advertise_url.clone().unwrap_or_else(|| {
                    format!(
                        "http://{}",
                        listener
                            .local_addr()
                            .expect("a bound listener has an address")
                    )
                });
                Some(
                    crate::cluster::Cluster::join(postgres, url, &metrics)
                        .await
                        .context("joining the cluster")?,
                )
            }
        };
        Ok(App {
            config,
            clock,
            listener,
            store,
            metrics,
            engine,
            read,
            engine_task,
            engine_stop,
            wakers,
            cluster,
            loader: Arc::new(|path| crate::config::load(path, &|name| std::env::var(name).ok())),
            sighup: false,
        })
    }

    /// Reloads read the configuration with `loader` (tests give their own environment).
    pub fn with_loader(mut self, loader: Loader) -> App {
        self.loader = loader;
        self
    }

    /// `SIGHUP` reloads the configuration.
    pub fn reload_on_sighup(mut self) -> App {
        self.sighup = true;
        self
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The metrics the app exports, shared with everything that updates them. Benchmarks
    /// fill series through it that would take a real run long to produce (a result of each
    /// of 10,000 probes).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let App {
            config,
            clock,
            listener,
            store,
            metrics,
            engine,
            read,
            engine_task,
            engine_stop,
            wakers,
            cluster,
            loader,
            sighup,
        } = self;
        metrics.config_last_reload_successful.set(1);
        metrics
            .config_last_reload_success_timestamp_seconds
            .set(clock.now().timestamp_millis() as f64 / 1000.0);
        if config.auth.tokens.is_empty() {
            tracing::warn!(listen = %config.listen, "no auth tokens configured: the API is open to anyone who can reach this loopback address");
        }

        let probes = TaskTracker::new();
        let probes_stop = CancellationToken::new();
        let board = ProbeBoard::default();
        let scheduler = Scheduler {
            engine: engine.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            board: board.clone(),
            concurrency: config.probe_concurrency,
        };
        let probe_set = scheduler.spawn_all(&config.probes, &probes, probes_stop.clone());

        let webhooks = TaskTracker::new();
        let stopping = Stopping {
            drain: CancellationToken::new(),
            stop: CancellationToken::new(),
        };
        let notifier = Notifier {
            store: store.clone(),
            engine: engine.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            client: crate::notify::outbound_client(),
        };
        let workers = Workers::start(
            notifier.clone(),
            &config.webhooks,
            &wakers,
            &webhooks,
            &stopping,
        );
        let consumers = workers.names();
        let tokens = Arc::new(std::sync::RwLock::new(Arc::new(Tokens(
            config.auth.tokens.clone(),
        ))));
        let status = StatusPages::new(
            read.clone(),
            store.clone(),
            clock.clone(),
            page_settings(
                &config,
                listener.local_addr().context("reading the bound address")?,
            ),
        );
        let site = Arc::new(api::Site::new(
            listener.local_addr().context("reading the bound address")?,
            config.external_url.as_deref(),
        ));
        let (reloads, reload_requests) = tokio::sync::mpsc::channel(8);
        let reload_stop = CancellationToken::new();
        let reloader = reload::Reloader {
            path: config.path.clone(),
            loader,
            // Only the keys that need a restart are compared: not the probes and rules.
            running: Config {
                probes: Vec::new(),
                rules: Vec::new(),
                ..config.clone()
            },
            engine: engine.clone(),
            probes: probe_set,
            webhooks: workers,
            tokens: tokens.clone(),
            site: site.clone(),
            status: status.clone(),
            listen: listener.local_addr().context("reading the bound address")?,
            metrics: metrics.clone(),
            clock: clock.clone(),
        };
        let reloading = tokio::spawn(reloader.run(reload_requests, sighup, reload_stop.clone()));

        let ready = Arc::new(AtomicBool::new(true));
        let http_stop = CancellationToken::new();
        let site_addr = listener.local_addr().context("reading the bound address")?;
        let state = ApiState::new(Api {
            engine,
            store,
            metrics,
            probes: board,
            tokens,
            read,
            reloads,
            status,
            ready: ready.clone(),
            clock: clock.clone(),
            site,
            consumers,
            signups: crate::api::signups::Signups::new(config.mail.is_some()),
            reporter_comments: crate::api::rate_limit::RateLimit::new(
                crate::web::reporter::COMMENTS_PER_WINDOW,
                crate::web::reporter::COMMENT_WINDOW,
                crate::web::reporter::MAX_COUNTED_LINKS,
            ),
            console: crate::api::console::Console::new(http_stop.clone()),
            cluster: cluster.clone(),
        });
        let subscription_stop = CancellationToken::new();
        let subscription_worker = crate::notify::subscribers::SubscriptionWorker {
            store: notifier.store.clone(),
            engine: notifier.engine.clone(),
            clock: clock.clone(),
            client: crate::notify::outbound_client(),
            mail: match &config.mail {
                Some(mail) => Some(Arc::new(crate::notify::subscribers::Mailer::new(mail)?)),
                None => None,
            },
            external_url: config
                .external_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", site_addr)),
            title: config.status_page.title.clone(),
        };
        let subscriptions = tokio::spawn(subscription_worker.run(subscription_stop.clone()));
        let local_addr = listener.local_addr().context("reading the bound address")?;
        // Probe runs in flight hold a socket each: at most one per probe.
        let max_connections = http::connection_limit(
            config.http.max_connections,
            config.probe_concurrency.min(config.probes.len()),
        );
        let mut server = tokio::spawn(http::serve(
            listener,
            api::router(
                state,
                crate::web::subscribe::routes()
                    .merge(crate::api::openapi::routes())
                    .merge(crate::web::reporter::routes())
                    .merge(crate::web::console::routes()),
            ),
            max_connections,
            config.http,
            http_stop.clone(),
        ));
        tracing::info!(listen = %local_addr, max_connections, probes = config.probes.len(), rules = config.rules.len(), webhooks = config.webhooks.len(), "incidentd started");
        // The probes, the engine and the reloader keep what they need of the configuration.
        drop(config);

        let election_stop = CancellationToken::new();
        let mut election = cluster.map(|cluster| {
            tokio::spawn(cluster.run(
                notifier.store.clone(),
                notifier.engine.clone(),
                election_stop.clone(),
            ))
        });
        let mut lost = None;
        let server_result = tokio::select! {
            () = shutdown => None,
            result = &mut server => Some(result),
            ended = async { election.as_mut().expect("guarded").await }, if election.is_some() => {
                election = None;
                lost = Some(match ended {
                    Ok(Err(lost)) => anyhow::Error::new(lost),
                    Ok(Ok(())) => anyhow::anyhow!("the election stopped"),
                    Err(join) => anyhow::anyhow!("the election task failed: {join}"),
                });
                None
            }
        };
        if lost.is_some() {
            // No longer the leader: nothing more goes out. In-flight deliveries are cut off
            // (a standby that takes over sends them again, with the same ids), probes stop.
            stopping.stop.cancel();
            probes_stop.cancel();
        }
        tracing::info!("shutting down");
        ready.store(false, Ordering::Relaxed);
        // No reload once stopping: a reload in progress finishes first.
        reload_stop.cancel();
        let _ = reloading.await;

        probes_stop.cancel();
        probes.close();
        probes.wait().await;
        http_stop.cancel();
        let server_result = match server_result {
            Some(result) => result,
            None => match tokio::time::timeout(HTTP_GRACE, &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!("in-flight requests did not finish in time");
                    server.abort();
                    Ok(())
                }
            },
        };

        stopping.drain.cancel();
        webhooks.close();
        if tokio::time::timeout(DELIVERY_GRACE, webhooks.wait())
            .await
            .is_err()
        {
            tracing::info!("stopping webhook delivery; undelivered events stay in the outbox");
            stopping.stop.cancel();
            webhooks.wait().await;
        }

        subscription_stop.cancel();
        let _ = subscriptions.await;
        // A clean stop hands the lease over at once.
        election_stop.cancel();
        if let Some(election) = election
            && let Ok(Err(error)) = election.await
        {
            lost.get_or_insert(anyhow::Error::new(error));
        }
        engine_stop.cancel();
        engine_task.await.context("the engine task failed")?;
        // The last handles to the store go with `notifier` and the engine: redb closes the
        // file when the database is dropped.
        drop(notifier);
        tracing::info!("incidentd stopped");
        if let Some(lost) = lost {
            return Err(lost);
        }
        server_result.context("the HTTP server task failed")
    }
}

/// What the status page is built from besides the read model.
fn page_settings(config: &Config, listen: SocketAddr) -> PageSettings {
    PageSettings {
        page: config.status_page.clone(),
        probe_services: status_services(config),
        service_probes: service_probes(config),
        base_url: config.external_url.as_deref().map_or_else(
            || format!("http://{listen}"),
            |url| url.trim_end_matches('/').to_owned(),
        ),
    }
}

/// The probes feeding each service of the page (their uptime is the service's): those
/// whose labels a listed service matches, or, with none listed, by `service` label or name.
fn service_probes(config: &Config) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut probes: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for probe in &config.probes {
        if config.status_page.services.is_empty() {
            let service = probe.labels.get("service").unwrap_or(&probe.name);
            probes
                .entry(service.clone())
                .or_default()
                .push(probe.name.clone());
            continue;
        }
        for service in &config.status_page.services {
            if service.matches(&probe.labels) {
                probes
                    .entry(service.name.clone())
                    .or_default()
                    .push(probe.name.clone());
            }
        }
    }
    probes
}

/// The services the status page always lists: each probe's `service` label, or its name.
fn status_services(config: &Config) -> Vec<String> {
    let mut services: Vec<String> = config
        .probes
        .iter()
        .map(|p| p.labels.get("service").unwrap_or(&p.name).clone())
        .collect();
    services.sort();
    services.dedup();
    services
}
