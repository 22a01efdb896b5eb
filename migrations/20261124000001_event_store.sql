-- The event store: an append-only log of every stream, in its own schema.
CREATE SCHEMA IF NOT EXISTS event_store;

-- One row per stream, holding its current version. Appends update it with the
-- expected version in the WHERE clause, so concurrent writers to one stream
-- serialize on the row and the loser sees a conflict instead of a duplicate.
CREATE TABLE event_store.streams (
    stream_id TEXT PRIMARY KEY,
    aggregate_type TEXT NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE event_store.events (
    position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction. Readers that tail the log order by
    -- (transaction_id, position) and only read below pg_snapshot_xmin, so a slow
    -- transaction that commits late can never be skipped.
    transaction_id XID8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id UUID NOT NULL UNIQUE,
    aggregate_type TEXT NOT NULL,
    aggregate_id TEXT NOT NULL REFERENCES event_store.streams (stream_id),
    version BIGINT NOT NULL CHECK (version > 0),
    event_type TEXT NOT NULL,
    schema_version INTEGER NOT NULL CHECK (schema_version > 0),
    payload JSONB NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_version_key UNIQUE (aggregate_id, version)
);

CREATE INDEX events_transaction_order_idx ON event_store.events (transaction_id, position);
CREATE INDEX events_aggregate_type_idx ON event_store.events (aggregate_type, transaction_id, position);

CREATE FUNCTION event_store.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'event_store.events is append-only';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON event_store.events
    FOR EACH ROW EXECUTE FUNCTION event_store.refuse_change();

-- Commands that carried an Idempotency-Key, with the answer they got, written
-- in the same transaction as their events.
CREATE TABLE event_store.idempotency_keys (
    idempotency_key TEXT PRIMARY KEY,
    request_fingerprint TEXT NOT NULL,
    response JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Where each tailing reader (the outbox relay, replays) has got to.
CREATE TABLE event_store.checkpoints (
    name TEXT PRIMARY KEY,
    transaction_id XID8 NOT NULL,
    position BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
