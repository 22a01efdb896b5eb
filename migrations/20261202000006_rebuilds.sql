-- When each projection's last rebuild from the event store started and
-- whether it finished: a rebuild interrupted half-way leaves finished_at
-- NULL, and the read model is then rebuilt again rather than trusted.
CREATE TABLE read_model.rebuilds (
    projection TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    events BIGINT NOT NULL DEFAULT 0
);
