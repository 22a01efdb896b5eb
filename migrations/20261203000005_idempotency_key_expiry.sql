-- Idempotency keys expire (`idempotency.retention_hours`, 24 by default): a
-- periodic cleanup deletes the older ones through this index, which keeps
-- the table bounded however many commands carry a key.
CREATE INDEX idempotency_keys_created_at_idx ON event_store.idempotency_keys (created_at);
