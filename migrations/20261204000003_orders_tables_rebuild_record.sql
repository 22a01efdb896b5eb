-- The orders tables (`orders`, `order_items`), projected by `orders-tables`
-- from the order events (and the user topic's erasures), are a read model
-- kept in the read-model schema too, recorded as built like the catalog's
-- (20261203000002_read_models_in_schema.sql): when the schema is dropped,
-- `infrastructure::database::reinstall_read_model_if_dropped` runs every
-- migration again, this one included, then marks each row here unfinished,
-- and the orders-tables workers rebuild these tables from the event store.
INSERT INTO read_model.rebuilds (projection, started_at, finished_at, events)
VALUES ('orders-tables', now(), now(), 0)
ON CONFLICT (projection) DO NOTHING;
