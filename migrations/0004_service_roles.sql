-- Least privilege. Migrations run as the owner (the role that owns these tables); the services
-- connect as roles that can do only what they need:
--   scen_ingest   records corrections, their queued edits and dead letters;
--   scen_trainer  claims, completes and fails training, stores experts and neurons;
--   scen_router   reads edits, writes its traffic reservoir, and reverts only through
--                 scen_revert_edit() (it cannot UPDATE edits itself).
-- None of them owns a table, so none can ALTER audit_log, disable its triggers or truncate it;
-- none has UPDATE or DELETE on it. The roles can log in without a password only where the
-- server's pg_hba trusts them (the local stack, loopback); a deployment sets their passwords
-- (compose/README.md). Roles are per cluster: created once, granted per database.
-- Applied by `scen migrate` inside a transaction; do not add BEGIN/COMMIT here.
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['scen_ingest', 'scen_trainer', 'scen_router'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database's migration created it at the same moment
            END;
        END IF;
    END LOOP;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO scen_ingest, scen_trainer, scen_router;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO scen_ingest, scen_trainer, scen_router;
GRANT INSERT ON audit_log TO scen_ingest, scen_trainer;
GRANT USAGE ON SEQUENCE audit_log_id_seq TO scen_ingest, scen_trainer;

GRANT INSERT ON corrections, edits, dead_letters TO scen_ingest;
GRANT UPDATE (dlq_produced_at) ON dead_letters TO scen_ingest;
GRANT USAGE ON SEQUENCE corrections_id_seq, edits_id_seq, dead_letters_id_seq TO scen_ingest;

GRANT UPDATE (status, hyperparameters, metrics, error, attempts, superseded_by, updated_at, training_started_at,
              activated_at, held_reason) ON edits TO scen_trainer;
GRANT INSERT, UPDATE ON experts, neurons TO scen_trainer;

GRANT INSERT, UPDATE ON traffic_keys TO scen_router;

-- The router's one way to change an edit: revert it, with its audit row and notification, in the
-- caller's transaction. Returns the reverted row, or no row when the edit does not exist or is
-- already superseded or reverted (the caller reads it again to say which).
CREATE FUNCTION scen_revert_edit(p_edit_id bigint, p_actor text, p_reason text) RETURNS SETOF edits
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    before edits;
    after edits;
BEGIN
    SELECT * INTO before FROM edits WHERE id = p_edit_id FOR UPDATE;
    IF NOT FOUND OR before.status IN ('superseded', 'reverted') THEN
        RETURN;
    END IF;
    UPDATE edits SET status = 'reverted', updated_at = now() WHERE id = p_edit_id RETURNING * INTO after;
    INSERT INTO audit_log (actor, action, edit_id, event_id, from_status, to_status, details)
    VALUES (p_actor, 'edit.reverted', p_edit_id, before.event_id, before.status, 'reverted',
            jsonb_build_object('reason', p_reason));
    PERFORM pg_notify('scen_edits', json_build_object('edit_id', p_edit_id, 'status', 'reverted')::text);
    RETURN NEXT after;
END
$$;
REVOKE ALL ON FUNCTION scen_revert_edit(bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION scen_revert_edit(bigint, text, text) TO scen_router;
