-- The API activity log is append-only: no update, no truncate, and a delete only of entries a
-- retention cut covers (an accidental DELETE FROM api_activity fails).
CREATE FUNCTION api_activity_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM api_activity_cuts c
                                    WHERE c.chain = OLD.chain AND c.through_seq >= OLD.seq) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the API activity log is append-only (% of entry %/% refused)', TG_OP, OLD.chain, OLD.seq;
END
$$;
CREATE TRIGGER api_activity_append_only BEFORE UPDATE OR DELETE ON api_activity
    FOR EACH ROW EXECUTE FUNCTION api_activity_append_only();
CREATE FUNCTION api_activity_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the API activity log is append-only (TRUNCATE refused)';
END
$$;
CREATE TRIGGER api_activity_no_truncate BEFORE TRUNCATE ON api_activity
    FOR EACH STATEMENT EXECUTE FUNCTION api_activity_no_truncate();
