-- A fold of the calls list's rows takes its accounts' lock first, the lock the journal's
-- statement takes (0014), before it writes a row. It used to take it only through the
-- foreign key of calls, when a new row was checked at the end of its statement: a
-- removal could lock the account in between and wait for a row the fold had updated
-- (a known call's new events), while the fold waited for the account: a deadlock, and
-- one of the two rolled back. Now a removal in progress is waited for, and the fold's
-- next statement (a fresh snapshot) no longer sees the removed account's events; a
-- removal that comes later waits for the fold, then deletes its rows.
-- Each mark keeps its statement's accounts, so that the lock needs no read of the
-- journal. Marks without them (made before this migration, or by a journal statement
-- that ran the previous trigger while it committed) have them read from the journal:
-- a NOT NULL column would have refused those statements.

ALTER TABLE calls_pending ADD COLUMN accounts int4[];

CREATE OR REPLACE FUNCTION journal_calls_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO calls_pending (events, accounts)
    SELECT array_agg(id ORDER BY id), array_agg(DISTINCT account_id) FROM changed
    WHERE entry_id IS NOT NULL AND kind IN ('call', 'summary', 'recording', 'dtmf')
    HAVING count(*) > 0;
    RETURN NULL;
END $$;

-- 0013's, with the accounts locked once the marks are taken.
CREATE OR REPLACE FUNCTION fold_pending_calls(batches int, skip_locked boolean, up_to bigint DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    taken bigint[];
    mark record;
BEGIN
    IF skip_locked THEN
        taken := ARRAY(SELECT id FROM calls_pending WHERE up_to IS NULL OR id <= up_to
                       ORDER BY id LIMIT batches FOR UPDATE SKIP LOCKED);
    ELSE
        taken := ARRAY(SELECT id FROM calls_pending WHERE up_to IS NULL OR id <= up_to
                       ORDER BY id LIMIT batches FOR UPDATE);
    END IF;
    IF cardinality(taken) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM accounts
    WHERE id IN (SELECT unnest(coalesce(p.accounts,
                                        ARRAY(SELECT e.account_id FROM call_events AS e
                                              WHERE e.id = ANY(p.events))))
                 FROM calls_pending AS p WHERE p.id = ANY(taken))
    ORDER BY id FOR KEY SHARE;
    BEGIN
        PERFORM fold_calls(ARRAY(SELECT e FROM calls_pending AS p, unnest(p.events) AS e
                                 WHERE p.id = ANY(taken)));
    EXCEPTION WHEN OTHERS THEN
        IF left(SQLSTATE, 2) IN ('08', '40', '53', '55', '57', '58') THEN
            RAISE;
        END IF;
        FOR mark IN SELECT id, events FROM calls_pending WHERE id = ANY(taken) ORDER BY id LOOP
            BEGIN
                PERFORM fold_calls(mark.events);
            EXCEPTION WHEN OTHERS THEN
                IF left(SQLSTATE, 2) IN ('08', '40', '53', '55', '57', '58') THEN
                    RAISE;
                END IF;
                RAISE WARNING 'calls not updated: % (%)', SQLERRM, SQLSTATE;
            END;
        END LOOP;
    END;
    DELETE FROM calls_pending WHERE id = ANY(taken);
    RETURN cardinality(taken);
END $$;
