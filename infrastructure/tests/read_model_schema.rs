//! Reinstalling a dropped read-model schema, on a real PostgreSQL: the schema
//! comes back exactly as the migrations make it, the event store is left
//! alone, and the read models kept in the schema are marked for a rebuild.

use infrastructure::database::{names_a_missing_relation, reinstall_read_model_if_dropped};
use infrastructure::testing::TestDatabase;
use sqlx::PgPool;

/// Every definition the server holds for objects of `schema`, one line each.
async fn shape_of(pool: &PgPool, schema: &str) -> Vec<String> {
    let mut lines: Vec<String> = sqlx::query_scalar(
        "SELECT format('column %s.%s %s %s default %s identity %s generated %s', \
                c.relname, a.attname, format_type(a.atttypid, a.atttypmod), \
                CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END, \
                coalesce(pg_get_expr(d.adbin, d.adrelid), '-'), a.attidentity, a.attgenerated) \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE n.nspname = $1 AND a.attnum > 0 AND NOT a.attisdropped \
         UNION ALL \
         SELECT format('constraint %s %s %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid)) \
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = $1 \
         UNION ALL \
         SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 \
         UNION ALL \
         SELECT format('relation %s %s', c.relname, c.relkind) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 \
         UNION ALL \
         SELECT 'function ' || pg_get_functiondef(p.oid) FROM pg_proc p \
         JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 \
         UNION ALL \
         SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t \
         JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND NOT t.tgisinternal",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap();
    lines.sort();
    lines
}

async fn schemas(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace \
         WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn unfinished_rebuilds(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT projection FROM read_model.rebuilds WHERE finished_at IS NULL ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn drop_read_model(pool: &PgPool) {
    sqlx::query("DROP SCHEMA read_model CASCADE")
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_reinstalled_schema_equals_a_migrated_one_and_leaves_the_event_store_alone() {
    let db = TestDatabase::create().await;
    let migrated = shape_of(&db.pool, "read_model").await;
    let event_store = shape_of(&db.pool, "event_store").await;
    let all_schemas = schemas(&db.pool).await;
    assert!(
        migrated
            .iter()
            .any(|l| l.starts_with("column products.sku")),
        "the shape is read: {migrated:?}"
    );
    assert!(unfinished_rebuilds(&db.pool).await.is_empty());
    sqlx::query(
        "INSERT INTO event_store.streams (stream_id, aggregate_type, version) \
         VALUES ('kept', 'category', 0)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();

    drop_read_model(&db.pool).await;
    let error = sqlx::query("SELECT 1 FROM read_model.products")
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert!(names_a_missing_relation(&error), "{error}");
    assert!(reinstall_read_model_if_dropped(&db.pool).await.unwrap());

    assert_eq!(shape_of(&db.pool, "read_model").await, migrated);
    assert_eq!(shape_of(&db.pool, "event_store").await, event_store);
    assert_eq!(
        schemas(&db.pool).await,
        all_schemas,
        "no scratch schema left"
    );
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_store.streams WHERE stream_id = 'kept'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(kept, 1, "the event store keeps its rows");
    let still_applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(still_applied, applied);
    assert_eq!(
        unfinished_rebuilds(&db.pool).await,
        vec![
            "catalog-tables".to_owned(),
            "orders-tables".to_owned(),
            "payments-tables".to_owned(),
            "promotion-tables".to_owned(),
            "users-tables".to_owned()
        ],
        "the read models kept in the schema are to be rebuilt"
    );
    assert!(
        !reinstall_read_model_if_dropped(&db.pool).await.unwrap(),
        "a schema that is there is left alone"
    );
}

#[tokio::test]
async fn processes_that_notice_the_dropped_schema_at_once_reinstall_it_once() {
    let db = TestDatabase::create().await;
    drop_read_model(&db.pool).await;
    let attempts: Vec<bool> =
        futures::future::join_all((0..4).map(|_| reinstall_read_model_if_dropped(&db.pool)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    assert_eq!(
        attempts.iter().filter(|reinstalled| **reinstalled).count(),
        1,
        "{attempts:?}"
    );
}
