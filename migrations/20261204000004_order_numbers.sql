-- Order numbers (`ORD-{year}-{n:06}`): `n` comes from this sequence, shared
-- by every command-api process, so concurrent checkouts get distinct
-- numbers. It is a hint: each number is also claimed on its unique-key
-- stream (`order_number:<number>`) in the order's own append, which is what
-- guarantees uniqueness, even after a restore brings the sequence back to
-- an older value. A checkout that fails or retries leaves a gap, as
-- sequences do; numbers only ever grow.
CREATE SEQUENCE event_store.order_numbers AS BIGINT MINVALUE 1 START 1;
