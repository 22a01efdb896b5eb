-- The promotions read model (`promotion-tables`, projected from the promotion
-- and coupon events): the seed's `promotions` and `coupons`, plus three tables
-- the seed does not have, because its columns cannot hold them:
-- - `promotion_targets`: the category, product or user ids a promotion
--   `applicable_to` something other than 'all' is limited to;
-- - `promotion_usage`: the promotion-wide use counter, across its coupons,
--   which `usage_limit` is checked against;
-- - `coupon_redemptions`: which order redeemed a coupon, and for which user,
--   so a customer can be told whether their per-user limit is used up.
-- Recorded as built like the other read models in the schema
-- (20261203000002_read_models_in_schema.sql), so a dropped schema is rebuilt.
SET LOCAL search_path TO read_model, public;

CREATE TABLE promotion_targets (
    promotion_id UUID NOT NULL REFERENCES promotions(id) ON DELETE CASCADE,
    target_id UUID NOT NULL,
    PRIMARY KEY (promotion_id, target_id)
);

CREATE INDEX idx_promotion_targets_target_id ON promotion_targets(target_id);

CREATE TABLE promotion_usage (
    promotion_id UUID PRIMARY KEY REFERENCES promotions(id) ON DELETE CASCADE,
    usage_count INTEGER NOT NULL DEFAULT 0 CHECK (usage_count >= 0)
);

CREATE TABLE coupon_redemptions (
    coupon_id UUID NOT NULL REFERENCES coupons(id) ON DELETE CASCADE,
    order_id UUID NOT NULL,
    user_id UUID,
    redeemed_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (coupon_id, order_id)
);

CREATE INDEX idx_coupon_redemptions_user ON coupon_redemptions(coupon_id, user_id);

INSERT INTO read_model.rebuilds (projection, started_at, finished_at, events)
VALUES ('promotion-tables', now(), now(), 0)
ON CONFLICT (projection) DO NOTHING;
