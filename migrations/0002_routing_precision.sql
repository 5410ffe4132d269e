-- Routing precision (README "Routing"): edits held for review by the blast-radius check, edits
-- superseded by meaning, and the router's traffic reservoir. Applied by `scen migrate` inside a
-- transaction; do not add BEGIN/COMMIT here.

-- 'held': trained, but it would answer too much of the traffic; never served until an operator
-- decides (revert it, or correct it again with a narrower prompt). The reason says why.
ALTER TABLE edits DROP CONSTRAINT edits_status_check;
ALTER TABLE edits ADD CONSTRAINT edits_status_check
    CHECK (status IN ('queued', 'training', 'active', 'held', 'failed', 'superseded', 'reverted'));
ALTER TABLE edits ADD COLUMN held_reason text;
ALTER TABLE edits ADD CONSTRAINT edits_held_has_reason CHECK (status <> 'held' OR held_reason IS NOT NULL);

-- The router's reservoir of routing keys of the prompts it serves (keys only, never the text):
-- a uniform sample of `capacity` slots per layer and key pooling, rewritten in place. The trainer
-- trains new neurons against them and measures each new edit's blast radius on them.
CREATE TABLE traffic_keys (
    layer        integer NOT NULL,
    pooling      text NOT NULL,
    slot         integer NOT NULL CHECK (slot >= 0),
    dims         integer NOT NULL CHECK (dims > 0),
    key          bytea NOT NULL,
    seen         bigint NOT NULL CHECK (seen > 0),     -- requests the reservoir had seen when this slot was written
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (layer, pooling, slot),
    CHECK (length(key) = 4 * dims)
);
