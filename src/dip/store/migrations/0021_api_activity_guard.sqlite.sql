-- The API activity log is append-only (as 0020 on PostgreSQL): no update, and a delete only of
-- entries a retention cut covers.
CREATE TRIGGER api_activity_no_update BEFORE UPDATE ON api_activity
BEGIN
    SELECT RAISE(ABORT, 'the API activity log is append-only (UPDATE refused)');
END;
CREATE TRIGGER api_activity_no_early_delete BEFORE DELETE ON api_activity
WHEN NOT EXISTS (SELECT 1 FROM api_activity_cuts c WHERE c.chain = OLD.chain AND c.through_seq >= OLD.seq)
BEGIN
    SELECT RAISE(ABORT, 'the API activity log is append-only (DELETE refused)');
END;
