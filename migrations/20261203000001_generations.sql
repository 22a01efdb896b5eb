-- Blue/green rebuilds (projectors/src/runtime/generations.rs): the generation
-- of each read model that readers and live workers see, and the one a
-- rebuild is writing beside it. A rebuild that stops before its swap leaves
-- `building` set and the live generation untouched; the next rebuild starts
-- that generation over.
CREATE TABLE read_model.generations (
    projection TEXT PRIMARY KEY,
    live BIGINT NOT NULL DEFAULT 0,
    building BIGINT,
    building_since TIMESTAMPTZ,
    swapped_at TIMESTAMPTZ
);
