-- Crypto-shredding (infrastructure/src/personal_data.rs, docs/personal-data.md):
-- one data key per person, wrapped under the configured master key. Erasure
-- destroys the key (wrapped_key NULL), which makes every sealed value of that
-- person in the log, in Kafka and in every backup unreadable at once.
--
-- `guest-day` keys seal the address and agent of requests nobody was logged
-- in for, one key a day, destroyed after the configured retention.
CREATE TABLE event_store.subject_keys (
    subject_id UUID PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'guest-day')),
    wrapped_key BYTEA,
    master_key_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    erased_at TIMESTAMPTZ,
    CHECK ((wrapped_key IS NULL) = (erased_at IS NOT NULL))
);

CREATE INDEX subject_keys_guest_days_idx ON event_store.subject_keys (created_at)
    WHERE kind = 'guest-day' AND wrapped_key IS NOT NULL;

-- Erasures are re-applied to the key table at every start (a key table
-- restored from before an erasure must not bring the key back): they are
-- found through this index rather than a scan of the log.
CREATE INDEX events_erasures_idx ON event_store.events (aggregate_id)
    WHERE event_type = 'UserErased';
