//! Faults on PostgreSQL under the workload of the HA tests (`ha.rs`): three replicas on a
//! PostgreSQL server of the test's own (`pg_server.rs`), each reaching it through a TCP
//! proxy the test controls, and, while tickets, alerts (some sent to every replica),
//! acknowledgements and notes keep coming and escalation timers fire: leaders SIGKILLed,
//! the database restarted (`pg_ctl restart -m fast`) and crashed (`-m immediate`), and
//! the leader cut from it (its proxy drops every packet, then heals). Replicas that stop
//! by themselves (a leader that lost its lease exits 1) are started again, as a
//! supervisor would. Then the same counts as after the leader kills: every write answered
//! 2xx is stored, no alert identity has two incidents, each escalation timer fired once,
//! every event reached the webhook consumer.
//!
//! Two smaller tests pin what a restart must not do: hand the lease to a standby by
//! itself (the lease primitives on a private server restarted), or cost the leader its
//! lease when its connections break for less than two thirds of `lease_ttl` (one replica
//! through a proxy that resets its connections right after a renewal).
//!
//! The tests on a private server skip without PostgreSQL's server binaries, the other
//! without a server (unless `INCIDENTD_REQUIRE_INTEROP=1`); all skip in the suite's second
//! pass (`INCIDENTD_TEST_BACKEND=postgres`). The workload test prints a line starting
//! `HA FAULTS SUMMARY` (run with `--nocapture`); `INCIDENTD_HA_LOG_DIR` keeps the replicas'
//! logs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::ha::*;
use crate::pg_server::{PgServer, Stop};
use crate::support::*;

/// What happens to the cluster, in turn, under the workload.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The leader is SIGKILLed, and started again.
    KillLeader,
    /// The database server restarts (every session ends).
    RestartDatabase(Stop),
    /// The leader's proxy drops everything both ways until the leader stopped; then it
    /// heals and the leader is started again.
    CutLeader,
}

/// What one fault cost the clients.
struct Outage {
    fault: Fault,
    /// From the fault until a write was answered 2xx again.
    unavailable: Duration,
    /// How long `pg_ctl restart` took (the database down), for a restart.
    database_down: Option<Duration>,
    /// From the cut until the leader cut off had stopped, for a cut.
    exited_after: Option<Duration>,
    /// The lease's epoch before the fault and once the cluster was whole again (the same:
    /// the leader kept its lease).
    epochs: (i64, i64),
    /// The workload's answers other than 2xx meanwhile (until the cluster was whole again).
    answered_503: u64,
    answered_502: u64,
    unanswered: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_survive_leader_kills_database_restarts_and_a_cut_with_nothing_lost() {
    const TTL: Duration = Duration::from_secs(3);
    let _serial = SERIAL.lock().await;
    if on_postgres() {
        eprintln!(
            "skipped: the HA tests ran in the first pass (INCIDENTD_TEST_BACKEND only moves in-process apps)"
        );
        return;
    }
    let Some(server) = PgServer::start().await else {
        return;
    };
    let started = Instant::now();
    let receiver = Receiver::start(200).await;
    let config = |port: u16| {
        format!(
            "listen: 127.0.0.1:{port}\n\
             storage:\n  postgres:\n    url_env: {URL_ENV}\n    lease_ttl: 3s\n    \
             write_wait: 10s\n    pool_size: 4\n    statement_timeout: 2s\n\
             escalation:\n  default: {{start_tier: L1, unacknowledged_after: 2s}}\n\
             webhooks:\n  - name: receiver\n    url: {}\n    secret_env: {SECRET_ENV}\n    \
             retry_schedule: [200ms, 1s]\n",
            receiver.url()
        )
    };
    // Each replica reaches the database through a proxy of its own.
    let mut proxies = Vec::new();
    let mut replicas = Vec::new();
    for n in 0..3 {
        let proxy = Proxy::start(server.addr()).await;
        replicas.push(Replica::new(
            &format!("r{n}"),
            &through(&server.url(), proxy.addr),
            config,
        ));
        proxies.push(proxy);
    }
    let bases: Vec<String> = replicas.iter().map(Replica::base).collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for replica in &mut replicas {
        replica.start();
    }
    for base in &bases {
        eventually("every replica ready", START, async || {
            role(&client, base).await
        })
        .await;
    }
    let leader = one_leader(&client, &bases, START).await;

    // The probe of availability writes notes on this ticket (acknowledged: it does not
    // escalate).
    let response = client
        .post(format!("{}/api/v1/incidents", bases[leader]))
        .json(
            &json!({"title": "canary", "reporter": {"name": "Ana", "contact": "ana@example.com"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let canary = text(&response.json::<Value>().await.unwrap()["id"]);
    let response = client
        .post(format!(
            "{}/api/v1/incidents/{canary}/acknowledge",
            bases[leader]
        ))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());

    let workload = Arc::new(Workload::new(bases.clone()));
    let mut tasks: Vec<_> = (0..3)
        .map(|worker| tokio::spawn(workload.clone().worker(worker)))
        .collect();
    tasks.push(tokio::spawn(workload.clone().shared_alerts()));

    let faults = [
        Fault::KillLeader,
        Fault::RestartDatabase(Stop::Fast),
        Fault::KillLeader,
        Fault::CutLeader,
        Fault::RestartDatabase(Stop::Immediate),
        Fault::KillLeader,
    ];
    let mut outages = Vec::new();
    let mut exits = 0;
    for (round, &fault) in faults.iter().enumerate() {
        // Some work under a settled cluster first.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        exits += supervise(&client, &mut replicas).await;
        let leader = one_leader(&client, &bases, Duration::from_secs(30)).await;
        let before = answers(&workload);
        let (epoch_before, _, _) = lease_row(&server.url()).await;
        let at = Instant::now();
        let mut database_down = None;
        let mut exited_after = None;
        let unavailable = match fault {
            Fault::KillLeader => {
                replicas[leader].kill();
                let survivors = without(&bases, leader);
                let (took, _) = first_write(&client, &survivors, &canary, round, at).await;
                replicas[leader].start();
                took
            }
            Fault::RestartDatabase(stop) => {
                server.restart(stop).await;
                database_down = Some(at.elapsed());
                let (took, _) = first_write(&client, &bases, &canary, round, at).await;
                // Whether the leader kept its lease shows once it would have stepped down
                // (two thirds of the lease after its last renewal).
                tokio::time::sleep(TTL).await;
                took
            }
            Fault::CutLeader => {
                proxies[leader].set(Link::Blackhole);
                let survivors = without(&bases, leader);
                let (took, _) = first_write(&client, &survivors, &canary, round, at).await;
                // Cut off, it cannot renew its lease: it stops by itself.
                let status = eventually(
                    "the leader cut from the database stops",
                    Duration::from_secs(30),
                    async || replicas[leader].exited(),
                )
                .await;
                exited_after = Some(at.elapsed());
                assert_eq!(
                    status.code(),
                    Some(1),
                    "{} stopped with {status}",
                    replicas[leader].name
                );
                exits += 1;
                proxies[leader].set(Link::Open);
                replicas[leader].start();
                took
            }
        };
        exits += supervise(&client, &mut replicas).await;
        let after = answers(&workload);
        let (epoch_after, _, _) = lease_row(&server.url()).await;
        eprintln!("fault {round} ({fault:?}): a write answered 2xx again after {unavailable:?}");
        outages.push(Outage {
            fault,
            unavailable,
            database_down,
            exited_after,
            epochs: (epoch_before, epoch_after),
            answered_503: after.0 - before.0,
            answered_502: after.1 - before.1,
            unanswered: after.2 - before.2,
        });
    }

    // The cluster whole again, the workload stops.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    workload.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let workload_done = Instant::now();
    exits += supervise(&client, &mut replicas).await;
    let leader = one_leader(&client, &bases, Duration::from_secs(30)).await;
    let ledger = std::mem::take(&mut *workload.ledger.lock().unwrap());
    let counts = check_counts(&client, &bases, &bases[leader], &ledger, &receiver).await;
    // The standbys follow the leader's commits again after the database came back (their
    // LISTEN connections and pools made again): they list every incident too.
    for base in &bases {
        eventually_ok(
            &format!("{base} lists every incident"),
            Duration::from_secs(30),
            async || {
                let listed = list_incidents(&client, base).await.len();
                if listed == counts.incidents {
                    Ok(())
                } else {
                    Err(format!("{listed} of {}", counts.incidents))
                }
            },
        )
        .await;
    }
    let (epoch, commits, _) = lease_row(&server.url()).await;

    let ms = |d: Duration| d.as_millis();
    let outages: Vec<String> = outages
        .iter()
        .map(|o| {
            let down = o
                .database_down
                .map_or(String::new(), |d| format!(" db_down_ms={}", ms(d)));
            let exited = o.exited_after.map_or(String::new(), |d| {
                format!(" cut_leader_exited_ms={}", ms(d))
            });
            let leader = if o.epochs.0 == o.epochs.1 {
                "kept"
            } else {
                "changed"
            };
            format!(
                "{:?}: unavailable_ms={}{down}{exited} leader {leader} (epoch {} → {}) 503={} \
                 502={} unanswered={}",
                o.fault,
                ms(o.unavailable),
                o.epochs.0,
                o.epochs.1,
                o.answered_503,
                o.answered_502,
                o.unanswered
            )
        })
        .collect();
    eprintln!(
        "HA FAULTS SUMMARY: {} | {} | replicas that stopped by themselves (exit 1) and were \
         started again: {exits} | epoch {epoch}, commits {commits} | workload {:.1}s, test {:.1}s",
        outages.join("; "),
        counts.summary(&ledger),
        (workload_done - started).as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    drop(replicas);
    drop(server);
}

/// `bases` without the `n`th.
fn without(bases: &[String], n: usize) -> Vec<String> {
    bases
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != n)
        .map(|(_, base)| base.clone())
        .collect()
}

/// The workload's 503s, 502s and requests with no answer so far.
fn answers(workload: &Workload) -> (u64, u64, u64) {
    let ledger = workload.ledger.lock().unwrap();
    (
        ledger.count(|s| s == 503),
        ledger.count(|s| s == 502),
        ledger.unanswered.values().sum(),
    )
}

/// Starts again every replica that stopped by itself, as its supervisor would, and waits
/// until it is a standby; how many. A replica stops by itself only when it led and lost
/// the lease: exit status 1, having said so.
async fn supervise(client: &reqwest::Client, replicas: &mut [Replica]) -> usize {
    let mut restarted = 0;
    for replica in replicas.iter_mut() {
        if let Some(status) = replica.exited() {
            assert!(
                status.code() == Some(1) && replica.logged("lost the leader's lease"),
                "{} stopped with {status}, not as a leader that lost its lease",
                replica.name
            );
            eprintln!(
                "{} stopped by itself ({status}); starting it again",
                replica.name
            );
            replica.start();
            restarted += 1;
        }
    }
    for replica in replicas.iter() {
        eventually(&format!("{} ready", replica.name), START, async || {
            role(client, &replica.base()).await
        })
        .await;
    }
    restarted
}

/// A database restart ends every session, the leader's too: that proves nothing about the
/// leader, which reconnects. A standby does not take the lease for the session the lease
/// named being gone when the server restarted after the leader's last renewal; the
/// leader, reconnected, renews and keeps it. A leader that does not come back loses it
/// when it expires, and one whose new session ends loses it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_alone_does_not_hand_the_lease_to_a_standby() {
    use incidentd::store::kv::postgres::{Lease, PgConfig};
    if on_postgres() {
        eprintln!("skipped: it ran in the first pass (it starts a PostgreSQL of its own)");
        return;
    }
    let Some(server) = PgServer::start().await else {
        return;
    };
    let config = PgConfig {
        url: server.url(),
        pool_size: 1,
        statement_timeout: Duration::from_secs(5),
    };
    let ttl = Duration::from_secs(60);
    let a = Lease::connect(&config, "a").await.unwrap();
    let epoch = a.try_acquire(ttl).await.unwrap().expect("a leads");

    server.restart(Stop::Fast).await;
    eventually(
        "the restart ends a's session",
        Duration::from_secs(10),
        async || a.is_closed().then_some(()),
    )
    .await;
    let b = Lease::connect(&config, "b").await.unwrap();
    assert_eq!(
        b.try_acquire(ttl).await.unwrap(),
        None,
        "a standby took the lease because the database restarted"
    );
    // The leader reconnects and renews: it keeps the lease, on its new session.
    let a = Lease::connect(&config, "a").await.unwrap();
    assert!(a.renew(epoch, ttl).await.unwrap());
    assert_eq!(b.try_acquire(ttl).await.unwrap(), None);
    let leader = b.leader().await.unwrap().unwrap();
    assert_eq!((leader.holder.as_str(), leader.epoch), ("a", epoch));
    // Its new session ends (it died): a standby takes over at once.
    drop(a);
    let second = eventually("b takes over", Duration::from_secs(10), async || {
        b.try_acquire(ttl).await.unwrap()
    })
    .await;
    assert!(second > epoch);

    // After another restart, a leader that never comes back loses the lease when it
    // expires (here 2 s), not before.
    b.renew(second, Duration::from_secs(2)).await.unwrap();
    server.restart(Stop::Immediate).await;
    let c = Lease::connect(&config, "c").await.unwrap();
    let third = eventually(
        "c takes the expired lease",
        Duration::from_secs(30),
        async || c.try_acquire(ttl).await.unwrap(),
    )
    .await;
    assert!(third > second);
    let leader = c.leader().await.unwrap().unwrap();
    assert_eq!((leader.holder.as_str(), leader.epoch), ("c", third));
}

/// The leader's connections to the database reset for a while just after a renewal (as in
/// a database restart), long enough to fail the next renewal, not as long as two thirds
/// of `lease_ttl`: it tries again soon after the renewal failed, on a new connection, and
/// goes on leading under the same epoch, its process running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_connections_break_briefly_renews_in_time_and_keeps_leading() {
    const TTL: Duration = Duration::from_secs(6);
    let _serial = SERIAL.lock().await;
    let Some(database) = database() else {
        return;
    };
    let proxy = Proxy::start(server_addr(&database.url)).await;
    let config = |port: u16| {
        format!(
            "listen: 127.0.0.1:{port}\n\
             storage:\n  postgres:\n    url_env: {URL_ENV}\n    lease_ttl: 6s\n    \
             write_wait: 5s\n    pool_size: 4\n    statement_timeout: 2s\n"
        )
    };
    let mut leader = Replica::new("leader", &through(&database.url, proxy.addr), config);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    leader.start();
    wait_role(&client, &leader.base(), Role::Leader, START).await;
    let (epoch, _, holder) = lease_row(&database.url).await;

    // Just after a renewal (a third of the lease before the next one), the link breaks
    // for longer than that third: the next renewal fails.
    let renewed = lease_expiry(&database.url).await;
    eventually("a renewal", TTL, async || {
        (lease_expiry(&database.url).await != renewed).then_some(())
    })
    .await;
    proxy.set(Link::Reset);
    tokio::time::sleep(TTL / 3 + Duration::from_millis(500)).await;
    proxy.set(Link::Open);
    // Past the point where it would have stepped down (two thirds of the lease after the
    // renewal), with a margin.
    tokio::time::sleep(TTL / 3 + Duration::from_secs(1)).await;

    assert!(
        leader.exited().is_none(),
        "the leader stopped after its connections broke briefly"
    );
    assert!(
        !leader.logged("lost the leader's lease"),
        "the leader stepped down"
    );
    assert!(
        leader.logged("renewing the leader's lease failed"),
        "the break did not fail a renewal: the test proves nothing"
    );
    assert_eq!(lease_row(&database.url).await.0, epoch, "a new epoch");
    assert_eq!(lease_row(&database.url).await.2, holder);
    assert_eq!(role(&client, &leader.base()).await, Some(Role::Leader));
    eventually_ok("a write", Duration::from_secs(20), async || {
        let response = client
            .post(format!("{}/api/v1/incidents", leader.base()))
            .json(&json!({"title": "after the break", "reporter": {"name": "Ana", "contact": "ana@example.com"}}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status() {
            StatusCode::CREATED => Ok(()),
            status => Err(status.to_string()),
        }
    })
    .await;
}

/// The lease's expiry as the database has it, as text.
async fn lease_expiry(url: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT coalesce(expires_at::text, '') FROM incidentd_lease WHERE id = 1",
            &[],
        )
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
    row.get(0)
}
