-- A global order that survives restore and failover.
--
-- Transaction ids order the log only within one cluster and one timeline: a
-- pg_dump restored into a fresh cluster, or a promoted asynchronous replica,
-- numbers new transactions below ids already stored. Each (system identifier,
-- timeline) the log is written on therefore gets an epoch, numbered in the
-- order they first wrote, and the log is read in (epoch, transaction id,
-- position) order. Events of an older epoch are all final: only committed rows
-- survive a dump or a promotion.
CREATE TABLE event_store.epochs (
    epoch BIGINT PRIMARY KEY CHECK (epoch > 0),
    system_identifier TEXT NOT NULL,
    timeline_id BIGINT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT epochs_cluster_timeline_key UNIQUE (system_identifier, timeline_id)
);

-- The epoch of the cluster and timeline this session writes on, or NULL when
-- nothing has been written here yet. Read-only, so readers and standbys can
-- call it.
CREATE FUNCTION event_store.epoch_here() RETURNS BIGINT LANGUAGE sql STABLE AS $$
    SELECT epoch FROM event_store.epochs
    WHERE system_identifier = (SELECT system_identifier::text FROM pg_control_system())
      AND timeline_id = ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint
$$;

-- The epoch to write under, starting a new one on the first write after a
-- restore or a promotion. Writers call it once per transaction.
CREATE FUNCTION event_store.writing_epoch() RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    found BIGINT := event_store.epoch_here();
BEGIN
    IF found IS NOT NULL THEN
        RETURN found;
    END IF;
    -- Two first writers at once: the second waits here, then finds the first's.
    LOCK TABLE event_store.epochs IN SHARE ROW EXCLUSIVE MODE;
    found := event_store.epoch_here();
    IF found IS NOT NULL THEN
        RETURN found;
    END IF;
    INSERT INTO event_store.epochs (epoch, system_identifier, timeline_id)
    SELECT coalesce(max(epoch), 0) + 1,
           (SELECT system_identifier::text FROM pg_control_system()),
           ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint
    FROM event_store.epochs
    RETURNING epoch INTO found;
    RETURN found;
END;
$$;

-- Events already stored were written here: they form epoch 1.
SELECT event_store.writing_epoch();

ALTER TABLE event_store.events ADD COLUMN epoch BIGINT NOT NULL DEFAULT 1;
-- Writers pass the epoch explicitly, once per statement; the default keeps any
-- other insert path correct.
ALTER TABLE event_store.events ALTER COLUMN epoch SET DEFAULT event_store.writing_epoch();

CREATE INDEX events_log_order_idx ON event_store.events (epoch, transaction_id, position);
CREATE INDEX events_type_log_order_idx ON event_store.events (aggregate_type, epoch, transaction_id, position);
DROP INDEX event_store.events_transaction_order_idx;
DROP INDEX event_store.events_aggregate_type_idx;

ALTER TABLE event_store.checkpoints ADD COLUMN epoch BIGINT NOT NULL DEFAULT 1;

-- A log that cannot be poisoned: every event carries the metadata readers
-- decode. Rows stored before this migration are not re-checked (NOT VALID);
-- one that still fails to decode is reported and skipped by an operator.
ALTER TABLE event_store.events ALTER COLUMN metadata DROP DEFAULT;
-- (A CHECK that is NULL passes, hence the coalesce.)
ALTER TABLE event_store.events ADD CONSTRAINT events_metadata_required CHECK (coalesce(
    jsonb_typeof(metadata) = 'object'
    AND jsonb_typeof(metadata -> 'correlation_id') = 'string'
    AND jsonb_typeof(metadata -> 'causation_id') = 'string', false)
) NOT VALID;

-- Stored events an operator decided to skip because they cannot be decoded,
-- with the reason: readers pass over them, and nothing is skipped silently.
CREATE TABLE event_store.skipped_events (
    position BIGINT PRIMARY KEY,
    event_id UUID NOT NULL,
    reason TEXT NOT NULL,
    skipped_by TEXT NOT NULL,
    skipped_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
