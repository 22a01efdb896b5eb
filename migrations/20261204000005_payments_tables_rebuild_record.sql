-- The payments tables (`payments`, `payment_refunds`), projected by
-- `payments-tables` from the payment events, are a read model kept in the
-- read-model schema too, recorded as built like the catalog's
-- (20261203000002_read_models_in_schema.sql): when the schema is dropped,
-- `infrastructure::database::reinstall_read_model_if_dropped` runs every
-- migration again, this one included, then marks each row here unfinished,
-- and the payments-tables workers rebuild these tables from the event store.
INSERT INTO read_model.rebuilds (projection, started_at, finished_at, events)
VALUES ('payments-tables', now(), now(), 0)
ON CONFLICT (projection) DO NOTHING;
