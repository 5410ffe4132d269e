-- The edit pipeline: corrections in, edits with their trained experts and indexing neurons,
-- dead letters, and an append-only audit log. Applied by `scen migrate` inside a transaction;
-- do not add BEGIN/COMMIT here.

-- One row per accepted correction event (the idempotency key is event_id).
CREATE TABLE corrections (
    id              bigserial PRIMARY KEY,
    event_id        text NOT NULL UNIQUE CHECK (char_length(event_id) BETWEEN 1 AND 128),
    payload         text NOT NULL,                 -- the event exactly as received (JSON)
    reporter        text NOT NULL,
    source          text NOT NULL,
    created_at      timestamptz NOT NULL,          -- from the event
    received_at     timestamptz NOT NULL DEFAULT now(),
    kafka_topic     text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL
);

CREATE TABLE edits (
    id                  bigserial PRIMARY KEY,
    correction_id       bigint NOT NULL UNIQUE REFERENCES corrections (id),
    event_id            text NOT NULL UNIQUE,
    prompt              text NOT NULL CHECK (prompt <> ''),
    target              text NOT NULL CHECK (target <> ''),
    rephrases           jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(rephrases) = 'array'),
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'training', 'active', 'failed', 'superseded', 'reverted')),
    hyperparameters     jsonb,
    metrics             jsonb,
    error               text,
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    superseded_by       bigint REFERENCES edits (id),
    corrected_at        timestamptz NOT NULL,      -- the correction's created_at ("latest wins")
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    training_started_at timestamptz,
    activated_at        timestamptz,
    CHECK ((status = 'superseded') = (superseded_by IS NOT NULL))
);
CREATE INDEX edits_status_id ON edits (status, id);
-- At most one active edit per prompt (md5: prompts may exceed a btree entry).
CREATE UNIQUE INDEX edits_one_active_per_prompt ON edits (md5(prompt)) WHERE status = 'active';
CREATE INDEX edits_prompt ON edits (md5(prompt));

-- The expert of a trained edit, in ExpertCodec format (Sources/Storage/ExpertCodec.swift).
CREATE TABLE experts (
    edit_id         bigint PRIMARY KEY REFERENCES edits (id),
    format_version  integer NOT NULL,
    form            text NOT NULL CHECK (form IN ('lowrank', 'full')),
    layer           integer NOT NULL,
    rank            integer NOT NULL CHECK (rank >= 0),            -- 0 for a full replacement
    bytes           bytea NOT NULL,
    checksum        bytea NOT NULL CHECK (length(checksum) = 32),   -- SHA-256, the blob's trailer
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The indexing neuron of an edit: weights w [F] and bias (raw key space), its key [F] (the
-- prompt's activation) and the keys of the rephrases [P, F]; little-endian float32.
-- Training a later edit may refine w and bias (updated_at).
CREATE TABLE neurons (
    edit_id         bigint PRIMARY KEY REFERENCES edits (id),
    layer           integer NOT NULL,
    dims            integer NOT NULL CHECK (dims > 0),
    vector          bytea NOT NULL,
    bias            real NOT NULL DEFAULT 0,
    key             bytea NOT NULL,
    extra_key_count integer NOT NULL DEFAULT 0 CHECK (extra_key_count >= 0),
    extra_keys      bytea NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (length(vector) = 4 * dims AND length(key) = 4 * dims AND length(extra_keys) = 4 * dims * extra_key_count)
);

CREATE TABLE dead_letters (
    id              bigserial PRIMARY KEY,
    raw             bytea NOT NULL,
    reason          text NOT NULL,
    detail          text NOT NULL DEFAULT '',
    kafka_topic     text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    dlq_produced_at timestamptz,                   -- set once the DLQ topic acknowledged it
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);

-- Who did what when, for every state change. Append-only, enforced below.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text NOT NULL,
    action      text NOT NULL,
    edit_id     bigint,
    event_id    text,
    from_status text,
    to_status   text,
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_edit ON audit_log (edit_id, id);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
