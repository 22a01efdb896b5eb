//! Erasure across every projection, on the real servers: a person who
//! registered, acted (their address and agent in the metadata of their
//! events) and was then erased leaves nothing of theirs in any store, live
//! or rebuilt from the event store, nor in the decoded event log.

mod support;

use chrono::Utc;
use domain::user::{UserEvent, UserStatus};
use infrastructure::event_store::aggregates::new_events;
use infrastructure::event_store::{EventMetadata, StreamAppend};
use support::adapters::{adapters, rebuilt_from_scratch};
use support::users::{address_added, postal, registered};
use support::*;
use uuid::Uuid;

const EMAIL: &str = "somchai.erased@example.com";
const PHONE: &str = "+66812340987";
const IP: &str = "203.0.113.77";
const AGENT: &str = "Somchai's phone/7.1";
const STREET: &str = "99 Erased Lane";

/// Appends `events` to the user's stream as the command API does: their
/// personal fields, and the address and agent of the metadata, sealed under
/// the user's own key.
async fn append_as_user(h: &Harness, user: Uuid, expected: i64, events: &[UserEvent]) {
    let personal = h.personal();
    let mut sealed = new_events(events);
    for event in &mut sealed {
        personal
            .seal_payload(user, "user", &event.event_type, &mut event.payload)
            .await
            .unwrap();
    }
    let mut meta = EventMetadata {
        correlation_id: Uuid::now_v7(),
        causation_id: Uuid::now_v7(),
        user_id: Some(user.to_string()),
        client_ip: Some(IP.into()),
        user_agent: Some(AGENT.into()),
    };
    personal.seal_metadata(&mut meta, Utc::now()).await.unwrap();
    h.store
        .append(
            vec![StreamAppend {
                stream_id: user.to_string(),
                aggregate_type: "user".into(),
                expected_version: expected,
                events: sealed,
            }],
            &meta,
            None,
            |_| serde_json::Value::Null,
        )
        .await
        .unwrap();
}

fn holds_the_person(text: &str) -> Vec<&'static str> {
    [EMAIL, PHONE, IP, AGENT, STREET, "Somchai"]
        .into_iter()
        .filter(|clear| text.contains(clear))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_person_is_gone_from_every_store_live_and_rebuilt_and_from_the_decoded_log() {
    let h = harness().await;
    h.seed_catalog(2).await;
    let user = Uuid::now_v7();
    append_as_user(&h, user, 0, &[registered(user, EMAIL, Some(PHONE), 0)]).await;
    append_as_user(
        &h,
        user,
        1,
        &[address_added(
            user,
            Uuid::now_v7(),
            postal("Somchai", STREET),
            true,
            1,
        )],
    )
    .await;
    let adapters = adapters(&h).await;
    for adapter in &adapters {
        adapter.projection().reset().await.unwrap();
        adapter.projection().mark_rebuilt().await.unwrap();
    }
    let apply_new = |seen: usize| {
        let h = &h;
        let adapters = &adapters;
        async move {
            let events = h.recorded().await;
            for adapter in adapters {
                let types = adapter.projection().aggregate_types();
                let batch: Vec<_> = events[seen..]
                    .iter()
                    .filter(|e| types.contains(&e.aggregate_type.as_str()))
                    .cloned()
                    .collect();
                let letters = adapter.projection().apply(&batch).await.unwrap();
                assert!(
                    letters.is_empty(),
                    "{}: {letters:?}",
                    adapter.projection().name()
                );
            }
            events.len()
        }
    };
    let seen = apply_new(0).await;
    let mut before = String::new();
    for adapter in &adapters {
        before.push_str(&adapter.snapshot().await.to_string());
    }
    assert!(
        holds_the_person(&before).contains(&IP) && holds_the_person(&before).contains(&EMAIL),
        "the person is there before the erasure"
    );

    append_as_user(
        &h,
        user,
        2,
        &[UserEvent::UserErased {
            user_id: user,
            previous_status: UserStatus::Active,
            status: UserStatus::Inactive,
            at: Utc::now(),
        }],
    )
    .await;
    assert!(h.personal().erase(user).await.unwrap());
    apply_new(seen).await;

    for adapter in &adapters {
        let name = adapter.projection().name();
        let live = adapter.snapshot().await;
        let left = holds_the_person(&live.to_string());
        assert!(left.is_empty(), "{name} still holds {left:?} live");
        let rebuilt = rebuilt_from_scratch(&h, adapter.as_ref()).await;
        assert_eq!(
            rebuilt, live,
            "{name}: a rebuild equals the live erased state"
        );
    }
    let mut log = h.recorded().await;
    h.personal().open(&mut log).await.unwrap();
    let left = holds_the_person(&serde_json::to_string(&log).unwrap());
    assert!(left.is_empty(), "the decoded log still holds {left:?}");
    for adapter in &adapters {
        adapter.cleanup().await;
    }
}
