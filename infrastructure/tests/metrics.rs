//! The pool gauges against a real PostgreSQL: what sqlx reports, and the
//! waiters that only our own counted acquires can see.

use std::time::Duration;

use infrastructure::metrics::{self, sample, PoolMetrics};
use infrastructure::testing::{unique_suffix, wait_for, TestDatabase};
use sqlx::postgres::PgPoolOptions;

const DEADLINE: Duration = Duration::from_secs(10);

fn gauge(pool: &PoolMetrics, name: &str, label: &str) -> Option<f64> {
    // Installed first: what is recorded before the recorder exists is lost.
    let handle = metrics::install();
    pool.record();
    sample(&handle.render(), name, &[("pool", label)])
}

#[tokio::test]
async fn pool_gauges_report_size_use_and_waiters() {
    let db = TestDatabase::create().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(DEADLINE)
        .connect(&db.url)
        .await
        .expect("pool connects");
    let label = format!("test-{}", unique_suffix());
    let metered = PoolMetrics::new(label.clone(), pool.clone());

    assert_eq!(gauge(&metered, "db_pool_max", &label), Some(1.0));
    // Not measured until something acquires through the counted wrapper.
    assert_eq!(gauge(&metered, "db_pool_waiting", &label), None);

    let held = metered.acquire().await.expect("first connection");
    assert_eq!(gauge(&metered, "db_pool_size", &label), Some(1.0));
    assert_eq!(gauge(&metered, "db_pool_in_use", &label), Some(1.0));
    assert_eq!(gauge(&metered, "db_pool_idle", &label), Some(0.0));
    assert_eq!(gauge(&metered, "db_pool_waiting", &label), Some(0.0));

    let waiter = tokio::spawn({
        let metered = metered.clone();
        async move { metered.begin().await.map(|_| ()) }
    });
    wait_for("the second acquire to wait", DEADLINE, || async {
        (gauge(&metered, "db_pool_waiting", &label) == Some(1.0)).then_some(())
    })
    .await;

    drop(held);
    waiter
        .await
        .expect("waiter task")
        .expect("the waiter gets the freed connection");
    assert_eq!(metered.waiting(), 0);
    assert_eq!(gauge(&metered, "db_pool_waiting", &label), Some(0.0));
    wait_for("the connection back in the pool", DEADLINE, || async {
        (gauge(&metered, "db_pool_idle", &label) == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(gauge(&metered, "db_pool_in_use", &label), Some(0.0));
    pool.close().await;
}

#[tokio::test]
async fn a_cancelled_acquire_stops_counting() {
    let db = TestDatabase::create().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(DEADLINE)
        .connect(&db.url)
        .await
        .expect("pool connects");
    let metered = PoolMetrics::new(format!("test-{}", unique_suffix()), pool.clone());
    let _held = metered.acquire().await.expect("first connection");
    let waiter = tokio::spawn({
        let metered = metered.clone();
        async move { metered.acquire().await.map(|_| ()) }
    });
    wait_for("the second acquire to wait", DEADLINE, || async {
        (metered.waiting() == 1).then_some(())
    })
    .await;
    waiter.abort();
    assert!(waiter.await.expect_err("aborted").is_cancelled());
    assert_eq!(metered.waiting(), 0);
}
