-- 0013's fold, mended after a review on 1 December:
-- * A batch that fails for a lasting reason is dropped, whatever the error (0008's
--   trigger dropped a statement's rows on any error). 0013 dropped only data and
--   constraint errors, so a mark whose events the rows refused otherwise (an outside
--   number too long for calls_by_number's index: 54000) was taken again by every
--   fold, held up every mark after it and made every list fail. Passing errors still
--   roll the fold back, to be done again: connections (08), serialization and
--   deadlocks (40), resources (53), locks not available (55), cancelled or shutting
--   down (57), system errors (58).
-- * up_to: only the marks up to that id, so that a list's folds end even while the
--   journal goes on marking.
DROP FUNCTION fold_pending_calls(int, boolean);

-- Up to `batches` marks (oldest first; none past `up_to`) folded and deleted; the number
-- taken. With skip_locked, marks another session is folding are left to it; without,
-- it waits for that session (whose rows then show), and those marks are gone when it
-- is its turn. Folding mark by mark after a lasting error takes the rows' locks out of
-- the usual order: a fold running at the same time may then deadlock with it, and one
-- of the two is rolled back and done again.
CREATE FUNCTION fold_pending_calls(batches int, skip_locked boolean, up_to bigint DEFAULT NULL)
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
