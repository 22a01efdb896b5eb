//! Read-your-writes bookkeeping against real PostgreSQL: the relay's
//! watermarks and the projections' applied offsets decide when a projection
//! has applied a consistency token.

use infrastructure::consistency::{
    lagging, latest_watermark, record_applied, record_watermark, PartitionOffsets, ReadModel,
};
use infrastructure::event_store::{ConsistencyToken, GlobalCheckpoint};
use infrastructure::testing::{isolated_settings, unique_suffix, TestDatabase};

const MODEL: ReadModel = ReadModel {
    projection: "test-model",
    aggregate_types: &["product"],
};

fn place(transaction_id: i64, position: i64) -> GlobalCheckpoint {
    GlobalCheckpoint {
        epoch: 1,
        transaction_id,
        position,
    }
}

fn offsets(entries: &[(&str, i32, i64)]) -> PartitionOffsets {
    entries
        .iter()
        .map(|(t, p, o)| ((t.to_string(), *p), *o))
        .collect()
}

#[tokio::test]
async fn a_projection_has_applied_a_token_once_it_is_past_the_first_watermark_covering_it() {
    let db = TestDatabase::create().await;
    let settings = isolated_settings(&db.url, &unique_suffix());
    let products = settings.kafka.topic_for("product");
    let brands = settings.kafka.topic_for("brand");
    let token = ConsistencyToken::new(place(100, 7));
    let behind = || lagging(&db.pool, &settings.kafka, "relay", token, &[MODEL]);

    assert_eq!(
        lagging(
            &db.pool,
            &settings.kafka,
            "relay",
            ConsistencyToken::default(),
            &[MODEL]
        )
        .await
        .unwrap(),
        Vec::<&str>::new(),
        "the empty token is reached by everyone"
    );
    assert_eq!(behind().await.unwrap(), ["test-model"], "not published yet");

    let mut conn = db.pool.acquire().await.unwrap();
    // A batch before the token, then the one that holds it.
    record_watermark(
        &mut conn,
        "relay",
        place(90, 5),
        &offsets(&[(&products, 0, 2)]),
    )
    .await
    .unwrap();
    let covering = offsets(&[(&products, 0, 4), (&products, 1, 3), (&brands, 0, 50)]);
    record_watermark(&mut conn, "relay", place(100, 9), &covering)
        .await
        .unwrap();
    assert_eq!(
        latest_watermark(&mut conn, "relay").await.unwrap(),
        covering
    );
    // A later batch must not be what the token is checked against.
    record_watermark(
        &mut conn,
        "relay",
        place(120, 30),
        &offsets(&[(&products, 0, 90)]),
    )
    .await
    .unwrap();

    assert_eq!(behind().await.unwrap(), ["test-model"], "nothing applied");
    record_applied(
        &db.pool,
        "test-model",
        &offsets(&[(&products, 0, 5), (&products, 1, 3)]),
    )
    .await
    .unwrap();
    assert_eq!(
        behind().await.unwrap(),
        ["test-model"],
        "partition 1 at offset 3 not applied"
    );
    record_applied(&db.pool, "test-model", &offsets(&[(&products, 1, 4)]))
        .await
        .unwrap();
    assert!(
        behind().await.unwrap().is_empty(),
        "every partition of its topic is past the watermark; the brand topic is not its own"
    );
    // Applied offsets never move back.
    record_applied(&db.pool, "test-model", &offsets(&[(&products, 1, 1)]))
        .await
        .unwrap();
    assert!(behind().await.unwrap().is_empty());
}
