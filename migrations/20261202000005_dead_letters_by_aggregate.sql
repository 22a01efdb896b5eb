-- Every batch asks which of its aggregates have a dead letter in its
-- projection (their later events are dead-lettered behind it), so that
-- question needs an index.
CREATE INDEX dead_letters_aggregate_idx
    ON read_model.dead_letters (projection, aggregate_id);
