//! The engine's read model on a real store: what [`Snapshot::recent`] keeps.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::*;
use crate::clock::ManualClock;
use crate::config::AuthConfig;
use crate::domain::incident::Reporter;

fn config(storage_path: &std::path::Path) -> Config {
    Config {
        path: storage_path.with_extension("yaml"),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        external_url: None,
        storage_path: storage_path.to_path_buf(),
        rule_files: Vec::new(),
        auth: AuthConfig::default(),
        webhooks: Vec::new(),
        probe_concurrency: 1,
        probe_duration_histogram: Default::default(),
        workflow: WorkflowConfig::default(),
        probes: Vec::new(),
        rules: Vec::new(),
        http: Default::default(),
        alerts: Default::default(),
        status_page: Default::default(),
        mail: None,
    }
}

fn ticket(title: &str, category: &str) -> NewTicket {
    NewTicket {
        title: title.to_owned(),
        description: "seen by a customer".to_owned(),
        reporter: Reporter {
            name: "Ana".to_owned(),
            contact: "ana@example.com".to_owned(),
        },
        kind: None,
        category: Some(category.to_owned()),
        impact: None,
        urgency: None,
        service: Some("checkout".to_owned()),
        labels: BTreeMap::new(),
        reporter_link: None,
    }
}

#[tokio::test]
async fn recent_keeps_only_the_closed_incidents_the_public_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    let store = Store::open(&path).unwrap();
    let clock = ManualClock::new("2026-03-02T09:00:00Z".parse().unwrap());
    let stop = CancellationToken::new();
    let (engine, read, task) = Engine::start(
        store,
        &config(&path),
        Arc::new(clock),
        Metrics::new(),
        Arc::new(HashMap::new()),
        stop.clone(),
    )
    .unwrap();
    // Unpublished tickets are private; a restricted one shows as the generic notice.
    let mut ids = Vec::new();
    for (title, category) in [
        ("private one", "availability"),
        ("breach", "data_breach"),
        ("private two", "availability"),
    ] {
        let incident = engine
            .open_ticket(ticket(title, category), "ana".to_owned())
            .await
            .unwrap();
        for verb in [Verb::Resolve { resolution: None }, Verb::Close] {
            engine
                .workflow(incident.id, "ana".to_owned(), Clearance::Security, verb)
                .await
                .unwrap();
        }
        ids.push(incident.id.0);
    }
    let kept: Vec<u64> = read.borrow().recent.keys().copied().collect();
    assert_eq!(kept, [ids[1]], "only the restricted one, of {ids:?}");
    stop.cancel();
    task.await.unwrap();
}
