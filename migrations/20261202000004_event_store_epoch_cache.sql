-- The writing epoch, cached for the session. Looking it up cost about a
-- quarter of a millisecond per group (the SQL function is planned on every
-- call); a group commit calls it once per group. The cache is keyed by the
-- cluster's system identifier and the current timeline, which both change
-- when a restore or a promotion starts a new epoch, and it is a setting, so a
-- transaction that rolls back takes its cached value back with it.
CREATE OR REPLACE FUNCTION event_store.writing_epoch() RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    here TEXT := (SELECT system_identifier::text FROM pg_control_system())
        || '/' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8);
    cached TEXT := current_setting('event_store.writing_epoch', true);
    found BIGINT;
BEGIN
    IF cached IS NOT NULL AND cached <> '' AND split_part(cached, '=', 1) = here THEN
        RETURN split_part(cached, '=', 2)::bigint;
    END IF;
    found := event_store.epoch_here();
    IF found IS NULL THEN
        -- Two first writers at once: the second waits here, then finds the first's.
        LOCK TABLE event_store.epochs IN SHARE ROW EXCLUSIVE MODE;
        found := event_store.epoch_here();
    END IF;
    IF found IS NULL THEN
        INSERT INTO event_store.epochs (epoch, system_identifier, timeline_id)
        SELECT coalesce(max(epoch), 0) + 1,
               (SELECT system_identifier::text FROM pg_control_system()),
               ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint
        FROM event_store.epochs
        RETURNING epoch INTO found;
    END IF;
    PERFORM set_config('event_store.writing_epoch', here || '=' || found, false);
    RETURN found;
END;
$$;
