//! The engine on a real store: what [`Snapshot::recent`] keeps, and what one batch does to a
//! reporter link that it revokes.

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
        postgres: None,
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

type Started = (EngineHandle, ReadModel, tokio::task::JoinHandle<()>);

/// An engine on `store` with no webhooks, on the manual clock.
fn start(
    store: &Store,
    path: &std::path::Path,
    clock: &ManualClock,
    stop: &CancellationToken,
    leading: bool,
) -> Started {
    Engine::start(
        store.clone(),
        &config(path),
        Arc::new(clock.clone()),
        Metrics::new(),
        Arc::new(HashMap::new()),
        stop.clone(),
        leading,
    )
    .unwrap()
}

#[tokio::test]
async fn recent_keeps_only_the_closed_incidents_the_public_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    let store = Store::open(&path).unwrap();
    let clock = ManualClock::new("2026-03-02T09:00:00Z".parse().unwrap());
    let stop = CancellationToken::new();
    let (engine, read, task) = start(&store, &path, &clock, &stop, true);
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

/// A revoke and a comment through the same link in one batch: the comment is refused when
/// the revoke comes first (the engine checks the link as stored plus what its own batch did),
/// and taken when it comes first.
#[tokio::test]
async fn a_link_revoked_earlier_in_the_same_batch_takes_no_comment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    let store = Store::open(&path).unwrap();
    let clock = ManualClock::new("2026-03-02T09:00:00Z".parse().unwrap());
    let stop = CancellationToken::new();
    let (engine, _read, task) = start(&store, &path, &clock, &stop, true);
    let comments = |id| {
        let (_, timeline) = store.get_incident_with_timeline(id).unwrap().unwrap();
        timeline
            .iter()
            .filter(|e| e.kind == crate::domain::incident::model::REPORTER_COMMENT)
            .count()
    };
    for revoke_first in [true, false] {
        let hash = [u8::from(revoke_first) + 1; 32];
        let mut new = ticket("VPN drops", "availability");
        new.reporter_link = Some(hash);
        let id = engine.open_ticket(new, "ana".to_owned()).await.unwrap().id;
        // The test runs on one thread: both commands are queued before the engine runs, so
        // they land in one batch, in this order.
        let revoke = engine.workflow(
            id,
            "ana".to_owned(),
            Clearance::Security,
            Verb::ReporterLink { hash: None },
        );
        let comment = engine.reporter_comment(hash, "still dropping".to_owned());
        let (revoked, commented) = if revoke_first {
            tokio::join!(revoke, comment)
        } else {
            let (commented, revoked) = tokio::join!(comment, revoke);
            (revoked, commented)
        };
        revoked.unwrap();
        if revoke_first {
            assert!(
                matches!(commented, Err(EngineError::UnknownLink)),
                "{commented:?}"
            );
            assert_eq!(comments(id), 0);
        } else {
            assert_eq!(commented.unwrap(), id);
            assert_eq!(comments(id), 1);
        }
        // Either way the link is dead now.
        assert!(matches!(
            engine.reporter_comment(hash, "again".to_owned()).await,
            Err(EngineError::UnknownLink)
        ));
    }
    stop.cancel();
    task.await.unwrap();
}

/// A standby's engine on the store a leader writes: it carries out nothing (writes, timers),
/// shows what the leader committed once told to read again, and leads when told, from the
/// store as it is then.
#[tokio::test]
async fn a_standby_follows_the_store_and_leads_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("incidentd.redb");
    let store = Store::open(&path).unwrap();
    let clock = ManualClock::new("2026-03-02T09:00:00Z".parse().unwrap());
    let stop = CancellationToken::new();
    let (leader, _, leader_task) = start(&store, &path, &clock, &stop, true);
    let (standby, standby_read, standby_task) = start(&store, &path, &clock, &stop, false);
    assert!(leader.is_leading());
    assert!(!standby.is_leading());

    let first = leader
        .open_ticket(ticket("VPN drops", "availability"), "ana".to_owned())
        .await
        .unwrap();
    assert!(
        matches!(
            standby.open_ticket(ticket("refused", "availability"), "ana".to_owned()).await,
            Err(EngineError::Store(ref error)) if matches!(**error, StoreError::Standby)
        ),
        "a standby takes no write"
    );
    assert!(standby_read.borrow().incidents.is_empty(), "not read yet");
    let mut seen = standby_read.clone();
    standby.refresh();
    seen.wait_for(|s| s.incidents.contains_key(&first.id.0))
        .await
        .unwrap();

    // The escalation timer comes due: only a leader fires it.
    clock.advance(std::time::Duration::from_secs(30 * 3600));
    assert!(matches!(
        standby.tick().await,
        Err(EngineError::Store(ref error)) if matches!(**error, StoreError::Standby)
    ));
    stop.cancel();
    leader_task.await.unwrap();
    standby_task.await.unwrap();

    // Another standby takes over: it reads the store as the leader left it, and leads.
    let stop = CancellationToken::new();
    let (next, read, task) = start(&store, &path, &clock, &stop, false);
    next.lead().await.unwrap();
    assert!(next.is_leading());
    next.until_leading().await;
    let second = next
        .open_ticket(
            ticket("after the failover", "availability"),
            "ana".to_owned(),
        )
        .await
        .unwrap();
    assert!(second.id.0 > first.id.0, "ids go on from the store");
    assert!(read.borrow().incidents.contains_key(&second.id.0));
    stop.cancel();
    task.await.unwrap();
}
