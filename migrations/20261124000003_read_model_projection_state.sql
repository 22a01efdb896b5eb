-- Bookkeeping of the PostgreSQL projections, next to the tables they maintain.

-- The last version of each aggregate a projection applied, written in the same
-- transaction as the effect: a redelivered or older event is a no-op.
CREATE TABLE read_model.projected_versions (
    projection TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (projection, aggregate_id)
);

-- Events held back until what they reference exists (a product whose category
-- has not been projected yet), so that the seed's foreign keys keep holding.
-- Later events of a held aggregate queue behind it, in version order.
CREATE TABLE read_model.parked_events (
    projection TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    waiting_for TEXT NOT NULL,
    envelope JSONB NOT NULL,
    parked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, aggregate_id, version)
);
CREATE INDEX parked_events_waiting_for_idx ON read_model.parked_events (projection, waiting_for);

-- Events a projection can never apply, with the reason. Nothing is dropped silently.
CREATE TABLE read_model.dead_letters (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection TEXT NOT NULL,
    event_id UUID,
    aggregate_type TEXT,
    aggregate_id TEXT,
    version BIGINT,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw_message TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_projection_idx ON read_model.dead_letters (projection, created_at);
