use std::time::Duration;

use infrastructure::testing::wait_for;
use serde_json::json;

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
