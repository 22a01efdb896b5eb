-- Read-your-writes (see infrastructure/src/consistency.rs).
--
-- The relay's watermark per published batch: the batch's last place in the
-- global order, and for every topic partition the offset of the last message
-- published there up to that place ({"topic/partition": offset}). Old rows
-- are pruned by the relay; the latest is always kept.
CREATE TABLE event_store.relay_watermarks (
    relay TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    transaction_id BIGINT NOT NULL,
    position BIGINT NOT NULL,
    offsets JSONB NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (relay, epoch, transaction_id, position)
);

-- The next offset each projection will apply, per topic partition, written
-- once the projection's store has accepted a batch.
CREATE TABLE read_model.projection_offsets (
    projection TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);
