//! A store that goes down mid-stream: the worker retries the same batch with
//! backoff, commits no offset while the store refuses, and applies everything
//! once the store is back. Redis sits behind a TCP proxy the test controls.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use infrastructure::event_store::aggregates::Upcasters;
use infrastructure::kafka::base_config;
use infrastructure::views::product_cache_key;
use projectors::projections::product_cache::ProductCache;
use projectors::runtime::{Worker, WorkerOptions};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use redis::AsyncCommands;
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards to Redis while up; while down, refuses new connections and cuts
/// the ones it carries.
async fn redis_proxy() -> (u16, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (up, watch) = watch::channel(true);
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            if !*watch.borrow() {
                drop(client);
                continue;
            }
            let mut watch = watch.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect("127.0.0.1:6379").await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = watch.wait_for(|up| !*up) => {}
                }
            });
        }
    });
    (port, up)
}

fn committed(h: &Harness, group: &str) -> Vec<Offset> {
    let consumer: BaseConsumer = base_config(&h.settings.kafka)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for topic in ["product", "inventory"] {
        for partition in 0..h.settings.kafka.partitions {
            partitions.add_partition(&h.settings.kafka.topic_for(topic), partition);
        }
    }
    consumer
        .committed_offsets(partitions, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.offset())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_delays_the_batch_and_no_offset_moves_past_it() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("projectors=debug,redis=debug,warn")
        .with_test_writer()
        .try_init();
    let h = harness().await;
    let prefix = h.settings.redis.key_prefix.clone();
    let (port, up) = redis_proxy().await;
    let cache = Arc::new(
        ProductCache::connect(
            &format!("redis://127.0.0.1:{port}"),
            &prefix,
            Upcasters::default(),
        )
        .await
        .unwrap(),
    );
    let options = WorkerOptions {
        poll_wait: Duration::from_secs(5),
        retry_initial: Duration::from_millis(20),
        ..worker_options()
    };
    let mut worker = Worker::new(cache, &h.settings.kafka, h.store.clone(), options)
        .await
        .unwrap();
    let stats = worker.stats();
    // The cache starts intact and empty, so the first step only consumes Kafka.
    worker.run_once().await.unwrap();

    let (_, _, products) = h.seed_catalog(3).await;
    h.relay_all().await;
    up.send(false).unwrap();
    let step = tokio::spawn(async move {
        loop {
            let count = worker.run_once().await.unwrap();
            if count > 0 {
                return (worker, count);
            }
        }
    });
    eventually("the worker to retry against the dead store", || async {
        (stats.retries.load(Ordering::Relaxed) >= 3).then_some(())
    })
    .await;
    let group = h.settings.kafka.group_for("product-cache");
    assert!(
        committed(&h, &group)
            .iter()
            .all(|o| !matches!(o, Offset::Offset(n) if *n > 0)),
        "no offset is committed while the store refuses the batch"
    );

    up.send(true).unwrap();
    let (mut worker, count) = tokio::time::timeout(Duration::from_secs(60), step)
        .await
        .unwrap()
        .unwrap();
    assert!(count > 0);
    while worker.run_once().await.unwrap() > 0 {}
    let mut redis = h.redis().await;
    for id in &products {
        let cached: Option<String> = redis.get(product_cache_key(&prefix, *id)).await.unwrap();
        assert!(
            cached.is_some(),
            "product {id} cached once the store came back"
        );
    }
    // Commits are asynchronous: wait for the broker to hold them.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let moved = committed(&h, &group)
            .iter()
            .filter(|o| matches!(o, Offset::Offset(n) if *n > 0))
            .count();
        if moved > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "offsets committed after the store accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    let _: () = redis.del(keys).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_boot_holds_back_only_the_product_cache() {
    let h = harness().await;
    let (port, up) = redis_proxy().await;
    up.send(false).unwrap();
    let mut settings = h.settings.clone();
    settings.redis.url = format!("redis://127.0.0.1:{port}");
    settings.projectors.only = vec!["catalog-tables".into(), "product-cache".into()];
    settings.projectors.health_port = 0;
    settings.projectors.retry_max_ms = 200;
    let app = projectors::app::Application::build(settings)
        .await
        .expect("the projectors start while Redis is down");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let (_, _, products) = h.seed_catalog(3).await;
    h.relay_all().await;
    eventually("the catalog tables to hold every product", || async {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM read_model.products")
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
        (count == products.len() as i64).then_some(())
    })
    .await;

    up.send(true).unwrap();
    let prefix = h.settings.redis.key_prefix.clone();
    let mut redis = h.redis().await;
    eventually("the product cache to catch up once Redis is back", || {
        let mut redis = redis.clone();
        let keys: Vec<String> = products
            .iter()
            .map(|id| product_cache_key(&prefix, *id))
            .collect();
        async move {
            let cached: Vec<Option<String>> = redis.mget(&keys).await.unwrap();
            cached.iter().all(Option::is_some).then_some(())
        }
    })
    .await;
    let _ = stop.send(());
    running.await.unwrap();
    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    let _: () = redis.del(keys).await.unwrap();
}
