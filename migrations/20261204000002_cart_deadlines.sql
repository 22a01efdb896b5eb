-- When each open cart expires, for the sweeper that appends `CartExpired`
-- (command-api/src/cart_expiry.rs). Kept by a trigger in the transaction
-- that appends the cart's events, so the sweeper never misses a cart nor
-- waits on a projection: every cart event that moves the expiry carries the
-- new `expires_at`, and the events that end a cart (checked out, merged,
-- expired) remove its row. The table is only a list of candidates: the
-- sweeper expires a cart by deciding against its stream, which refuses a
-- cart that is not due yet.
--
-- A `pg_dump` restore loads the table's rows as they were and creates the
-- trigger afterwards (post-data), so the rows are not written twice.
CREATE TABLE event_store.cart_deadlines (
    cart_id TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX cart_deadlines_due_idx ON event_store.cart_deadlines (expires_at);

CREATE FUNCTION event_store.track_cart_deadline() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    body JSONB := NEW.payload -> NEW.event_type;
BEGIN
    IF NEW.event_type IN ('CartCheckedOut', 'CartMergedInto', 'CartExpired') THEN
        DELETE FROM event_store.cart_deadlines WHERE cart_id = NEW.aggregate_id;
    ELSIF body ? 'expires_at' THEN
        INSERT INTO event_store.cart_deadlines (cart_id, expires_at)
        VALUES (NEW.aggregate_id, (body ->> 'expires_at')::timestamptz)
        ON CONFLICT (cart_id) DO UPDATE SET expires_at = EXCLUDED.expires_at;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_track_cart_deadline
    AFTER INSERT ON event_store.events
    FOR EACH ROW WHEN (NEW.aggregate_type = 'cart')
    EXECUTE FUNCTION event_store.track_cart_deadline();

-- The carts opened before this migration: each open cart's latest expiry.
INSERT INTO event_store.cart_deadlines (cart_id, expires_at)
SELECT DISTINCT ON (aggregate_id) aggregate_id, (payload -> event_type ->> 'expires_at')::timestamptz
FROM event_store.events
WHERE aggregate_type = 'cart'
  AND payload -> event_type ? 'expires_at'
  AND event_type <> 'CartExpired'
  AND aggregate_id NOT IN (
      SELECT aggregate_id FROM event_store.events
      WHERE aggregate_type = 'cart'
        AND event_type IN ('CartCheckedOut', 'CartMergedInto', 'CartExpired'))
ORDER BY aggregate_id, version DESC;
