-- What routing knows beyond the CRM copy: who is on a call now (busy legs), and
-- how a routed decision was found.

-- How a decision's employee was found: NULL (the first active responsible, as
-- always), 'next_free' (busy responsibles passed over), 'last_contact' (a number
-- no client has, sent to the employee who last talked to it).
ALTER TABLE decisions ADD COLUMN via text;

-- Busy legs: an employee's leg that is Connected (or OnHold) and not yet
-- Disconnected, whichever replica journaled it. Kept by a trigger on the
-- journal, so a leg is busy the moment its event is durable. A Disconnected
-- that comes first leaves an ended row (a tombstone) so that its late
-- Connected does not make the employee busy; both sides upsert the same key,
-- so replicas writing them at once are serialised by the primary key.
-- Housekeeping deletes rows older than the busy bound (4 hours).
CREATE TABLE busy_legs (
    account_id      int NOT NULL REFERENCES accounts ON DELETE CASCADE,
    call_id         text NOT NULL,
    extension       text NOT NULL,
    ended           boolean NOT NULL,
    since           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, call_id, extension)
);
CREATE INDEX busy_legs_by_time ON busy_legs (since);

-- Every change NOTIFYs mango_busy {"a": account, "c": call_id, "x": extension,
-- "b": busy}: each replica applies it to the busy set it routes from. A failure
-- here must never lose the journal's batch: it is logged and the batch stays.
CREATE FUNCTION journal_legs_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    leg record;
BEGIN
    -- The employee side of a leg: to.extension of an abonent leg (any leg's, for
    -- the ending: a tombstone too many is harmless), and from.extension (an
    -- outgoing or internal call's caller). Sorted, so concurrent statements
    -- take the rows' locks in one order and never deadlock.
    FOR leg IN
        SELECT DISTINCT n.account_id, n.call_id, x.ext, n.call_state = 'Disconnected' AS ended
        FROM changed n
        CROSS JOIN LATERAL (VALUES
            (CASE WHEN n.location = 'abonent' OR n.call_state = 'Disconnected'
                  THEN n.payload->'to'->>'extension' END),
            (n.payload->'from'->>'extension')) AS x(ext)
        WHERE n.kind = 'call' AND n.call_state IN ('Connected', 'OnHold', 'Disconnected')
          AND n.call_id IS NOT NULL AND x.ext <> ''
        ORDER BY 1, 2, 3, 4
    LOOP
        IF NOT leg.ended THEN
            INSERT INTO busy_legs (account_id, call_id, extension, ended)
            VALUES (leg.account_id, leg.call_id, leg.ext, false)
            ON CONFLICT DO NOTHING;  -- busy already, or ended before it came
            IF FOUND THEN
                PERFORM pg_notify('mango_busy', json_build_object(
                    'a', leg.account_id, 'c', leg.call_id, 'x', leg.ext, 'b', true)::text);
            END IF;
            CONTINUE;
        END IF;
        UPDATE busy_legs SET ended = true
        WHERE account_id = leg.account_id AND call_id = leg.call_id AND extension = leg.ext
          AND NOT ended;
        IF NOT FOUND THEN
            INSERT INTO busy_legs (account_id, call_id, extension, ended)
            VALUES (leg.account_id, leg.call_id, leg.ext, true)
            ON CONFLICT DO NOTHING;
            IF FOUND THEN
                CONTINUE;  -- a tombstone: nothing was busy
            END IF;
            -- Another statement had just made it busy (we waited for it): end it now.
            UPDATE busy_legs SET ended = true
            WHERE account_id = leg.account_id AND call_id = leg.call_id
              AND extension = leg.ext AND NOT ended;
        END IF;
        IF FOUND THEN
            PERFORM pg_notify('mango_busy', json_build_object(
                'a', leg.account_id, 'c', leg.call_id, 'x', leg.ext, 'b', false)::text);
        END IF;
    END LOOP;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'busy legs not updated: % (%)', SQLERRM, SQLSTATE;
    RETURN NULL;
END $$;

CREATE TRIGGER journal_legs AFTER INSERT ON call_events REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION journal_legs_changed();

-- Last contacts (route_unknown_to_last_contact) are loaded at start from the
-- journal's calls of the window that an employee took part in: their legs are
-- found through this index (the voice menu's legs, most of the journal, are not
-- in it). A call's other events are then read by entry.
CREATE INDEX call_events_employee_legs ON call_events (account_id, received_at)
    WHERE kind = 'call' AND (location = 'abonent' OR payload->'from' ? 'extension');
