-- The journal, the decision record and the busy legs are written on every call; their
-- foreign keys to accounts checked each row apart (a lookup and a row lock on the
-- account per event), and the decision record kept an index that no query reads.
-- The journal's and the decision record's statements now take the one lock a foreign
-- key would take, once a statement (lookup.journal, lookup.decisions: FOR KEY SHARE on
-- their accounts' rows, so that an account's removal waits for them, and they for it,
-- and then write nothing of it), and removing an account deletes these rows by a
-- trigger, as ON DELETE CASCADE did. The busy legs are written by the journal's
-- trigger, in the journal's statement. Measured on 1 December with `python -m bench
-- --modes index --rates 2400,2700,3000 --seconds 8 ...` (interleaved with the code
-- before, six runs each): 2,700 calls/s held in six of six runs (p99 18-48 ms)
-- against one of six before (19 ms; the others 51-117 ms); 2,400/s held and 3,000/s
-- failed either way. PostgreSQL at 2,000/s: 24.6 % of a core against 26.1 %.
ALTER TABLE call_events DROP CONSTRAINT call_events_account_id_fkey;
ALTER TABLE decisions DROP CONSTRAINT decisions_account_id_fkey;
ALTER TABLE busy_legs DROP CONSTRAINT busy_legs_account_id_fkey;
DROP INDEX decisions_by_number;

CREATE FUNCTION account_rows_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM call_events WHERE account_id IN (SELECT id FROM removed);
    DELETE FROM decisions WHERE account_id IN (SELECT id FROM removed);
    DELETE FROM busy_legs WHERE account_id IN (SELECT id FROM removed);
    RETURN NULL;
END $$;

CREATE TRIGGER accounts_removed AFTER DELETE ON accounts REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION account_rows_removed();
