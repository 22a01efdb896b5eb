use std::collections::HashMap;
use std::time::Duration;

use infrastructure::event_store::{ConsistencyToken, PgEventStore};
use infrastructure::relay::status::RelayStatus;
use infrastructure::testing::{
    append_new_streams, isolated_settings, read_topics, unique_suffix, wait_for, TestDatabase,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

/// With the relay enabled, the application publishes what it appends: the
/// relay's checkpoint (moved only past events Kafka acknowledged) reaches
/// the position of the command's last event.
#[tokio::test]
async fn the_relay_runs_beside_the_server_and_publishes_appends() {
    let app = TestApp::spawn_with(|settings| settings.relay.enabled = true).await;
    let body = ok_body(
        app.post("/v1/brands", &json!({"name": "Sony", "slug": "sony"}))
            .await,
        reqwest::StatusCode::CREATED,
    )
    .await;
    let position = body["position"].as_i64().unwrap();
    wait_for(
        "the relay to publish the brand",
        Duration::from_secs(60),
        || async {
            let relayed: Option<i64> =
                sqlx::query_scalar("SELECT position FROM event_store.checkpoints WHERE name = $1")
                    .bind(&app.relay_name)
                    .fetch_optional(&app.db.pool)
                    .await
                    .unwrap();
            relayed.filter(|p| *p >= position)
        },
    )
    .await;
}

/// Every successful command answers its consistency token, in the body and
/// the `Consistency-Token` header; later commands answer later tokens, and
/// an idempotent replay answers the first one again.
#[tokio::test]
async fn commands_answer_a_monotonic_consistency_token() {
    let app = TestApp::spawn().await;
    let mut previous: Option<ConsistencyToken> = None;
    for slug in ["a", "b", "c"] {
        let response = app
            .request(reqwest::Method::POST, "/v1/brands")
            .header("Idempotency-Key", format!("brand-{slug}"))
            .json(&json!({"name": slug, "slug": slug}))
            .send()
            .await
            .unwrap();
        let header = response.headers()["consistency-token"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = ok_body(response, reqwest::StatusCode::CREATED).await;
        assert_eq!(body["consistency_token"], header.as_str());
        let token: ConsistencyToken = header.parse().expect("a token");
        assert!(previous.is_none_or(|p| token > p), "tokens grow");
        previous = Some(token);
    }
    let replay = app
        .request(reqwest::Method::POST, "/v1/brands")
        .header("Idempotency-Key", "brand-c")
        .json(&json!({"name": "c", "slug": "c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.headers()["consistency-token"].to_str().unwrap(),
        previous.unwrap().to_string()
    );
}

/// Gap 3: one long transaction anywhere in the cluster holds back
/// publication, and `/health` said ok. Now it says degraded, naming the pid
/// and age of the transaction holding the log back, and recovers after.
#[tokio::test]
async fn health_reports_a_stall_behind_an_old_transaction() {
    let app = TestApp::spawn_with(|settings| settings.relay.stall_degraded_after_seconds = 1).await;
    let health = || async {
        let response = app
            .request(reqwest::Method::GET, "/health")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.json::<serde_json::Value>().await.unwrap()
    };
    let mut holder = app.db.pool.acquire().await.unwrap();
    let holder_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut *holder).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *holder)
        .await
        .unwrap();
    app.brand("held-back").await;
    let report = wait_for(
        "health to report the stall",
        Duration::from_secs(30),
        || async {
            let report = health().await;
            let ours = report["relay"]["oldest_transaction"]["pid"] == holder_pid;
            (report["status"] == "degraded" && ours).then_some(report)
        },
    )
    .await;
    assert_eq!(report["relay"]["stalled"], true);
    assert!(report["relay"]["held_back_events"].as_i64().unwrap() >= 1);
    assert!(
        report["relay"]["oldest_transaction"]["age_seconds"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
    assert!(report["relay"]["lag_events"].as_i64().unwrap() >= 1);
    sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
    wait_for("health to recover", Duration::from_secs(30), || async {
        (health().await["status"] == "ok").then_some(())
    })
    .await;
}

/// Gap 2: every command-api process started a relay with no leadership, so
/// two processes published every event twice. Now two real processes elect
/// one leader: each event is published once per leader term; when the leader
/// is killed (SIGKILL), the other takes over from the durable checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_publish_each_event_once_per_term_and_a_killed_leader_is_replaced() {
    let db = TestDatabase::create().await;
    let settings = isolated_settings(&db.url, &unique_suffix());
    let store = PgEventStore::new(db.pool.clone());
    let mut processes = Processes(
        (0..2)
            .map(|_| {
                std::process::Command::new(env!("CARGO_BIN_EXE_command-api"))
                    .env("APP__POSTGRES__URL", &db.url)
                    .env("APP__HTTP__PORT", "0")
                    .env("APP__KAFKA__TOPIC_PREFIX", &settings.kafka.topic_prefix)
                    .env(
                        "APP__KAFKA__PARTITIONS",
                        settings.kafka.partitions.to_string(),
                    )
                    .env("APP__RELAY__IDLE_POLL_MS", "50")
                    .env("APP__RELAY__LEASE_RETRY_MS", "200")
                    .env("RUST_LOG", "warn")
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("command-api starts")
            })
            .collect(),
    );
    let first = append_new_streams(&store, "brand", "BrandCreated", 30).await;
    let head = store.head().await.unwrap();
    wait_for(
        "the leader to publish the first events",
        Duration::from_secs(60),
        || async {
            (store.checkpoint(&settings.relay.name).await.unwrap() >= head.place()).then_some(())
        },
    )
    .await;
    let status = RelayStatus::read(&db.pool, &settings.relay).await.unwrap();
    let leader = status.leader.expect("a leader is reported");
    let index = processes
        .0
        .iter()
        .position(|p| {
            leader
                .application_name
                .ends_with(&format!("pid {}", p.id()))
        })
        .expect("the leader is one of the two processes");
    processes.0[index].kill().unwrap();
    processes.0[index].wait().unwrap();

    let second = append_new_streams(&store, "brand", "BrandCreated", 30).await;
    let head = store.head().await.unwrap();
    wait_for(
        "the other process to take over and publish",
        Duration::from_secs(60),
        || async {
            (store.checkpoint(&settings.relay.name).await.unwrap() >= head.place()).then_some(())
        },
    )
    .await;
    let successor = RelayStatus::read(&db.pool, &settings.relay)
        .await
        .unwrap()
        .leader
        .unwrap();
    let survivor = processes.0[1 - index].id();
    assert!(
        successor
            .application_name
            .ends_with(&format!("pid {survivor}")),
        "{successor:?}"
    );

    let messages = read_topics(&settings, &["brand"], 60, Duration::from_secs(60)).await;
    let mut per_term: HashMap<String, HashMap<Uuid, usize>> = HashMap::new();
    for message in &messages {
        *per_term
            .entry(message.relay_term.clone().expect("relay_term header"))
            .or_default()
            .entry(message.event_id.unwrap())
            .or_default() += 1;
    }
    assert!(
        per_term.len() <= 2,
        "one term per leader: {:?}",
        per_term.keys()
    );
    for (term, counts) in &per_term {
        assert!(
            counts.values().all(|n| *n == 1),
            "term {term} published an event twice"
        );
    }
    for id in first.iter().chain(&second) {
        assert!(
            per_term.values().any(|c| c.contains_key(id)),
            "event {id} was never published"
        );
    }
}

/// Child processes killed with the test, whatever its outcome.
struct Processes(Vec<std::process::Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
