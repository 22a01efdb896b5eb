-- The read models kept in the read-model schema itself, recorded as built.
-- When the schema is dropped, `infrastructure::database::
-- reinstall_read_model_if_dropped` runs every migration again, this one
-- included, then marks each row here unfinished: the workers of these read
-- models then rebuild them from the event store. A later migration that adds
-- a read model's tables adds its row the same way.
INSERT INTO read_model.rebuilds (projection, started_at, finished_at, events)
VALUES ('catalog-tables', now(), now(), 0)
ON CONFLICT (projection) DO NOTHING;
