-- One dead letter per event and projection. Redeliveries and rebuilds that
-- dead-letter the same event again add nothing; an undecodable message, which
-- has no event id, is identified by where it came from (topic, partition and
-- offset). Duplicates recorded before this key existed are folded into the
-- first.
DELETE FROM read_model.dead_letters later
USING read_model.dead_letters earlier
WHERE later.projection = earlier.projection
  AND coalesce(later.event_id::text, later.source) = coalesce(earlier.event_id::text, earlier.source)
  AND later.id > earlier.id;

CREATE UNIQUE INDEX dead_letters_once_idx
    ON read_model.dead_letters (projection, (coalesce(event_id::text, source)));
