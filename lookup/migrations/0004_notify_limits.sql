-- A NOTIFY payload must stay under 8000 bytes: 500 keys of 15 digits did not.
-- Past 300 keys a statement asks for a reload of its account instead.
CREATE OR REPLACE FUNCTION notify_index(account int, kind text, refs bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF refs IS NULL OR cardinality(refs) = 0 THEN
        RETURN;
    END IF;
    IF cardinality(refs) > 300 THEN
        PERFORM pg_notify('mango_index', json_build_object('a', account, 'k', 'all')::text);
    ELSE
        PERFORM pg_notify('mango_index',
                          json_build_object('a', account, 'k', kind, 'r', refs)::text);
    END IF;
END $$;

-- TRUNCATE names no rows: every index is rebuilt.
CREATE FUNCTION index_tables_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mango_index', json_build_object('a', 0, 'k', 'truncate')::text);
    RETURN NULL;
END $$;

CREATE TRIGGER employees_truncated AFTER TRUNCATE ON employees
    FOR EACH STATEMENT EXECUTE FUNCTION index_tables_truncated();
CREATE TRIGGER clients_truncated AFTER TRUNCATE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION index_tables_truncated();
CREATE TRIGGER phones_truncated AFTER TRUNCATE ON client_phones
    FOR EACH STATEMENT EXECUTE FUNCTION index_tables_truncated();
CREATE TRIGGER responsibles_truncated AFTER TRUNCATE ON client_responsibles
    FOR EACH STATEMENT EXECUTE FUNCTION index_tables_truncated();
