-- The calls list's rows are folded after the PBX's 200, not in the journal's statement.
-- Folding a statement's events into their rows (0008's trigger) was a fifth of the
-- statement's own time alone, and the 200s of the batch waited for it: in paired runs
-- at 1,000 calls/s on 1 December, with the fold switched off altogether (the most
-- that moving it could give), routing's p99 was 1.3-1.6 x the bare relay's against
-- 2.1-2.5 x with it, and the PBX side opened 20-64 new connections a run against
-- 224-272 (three runs each, interleaved).
-- The journal's statement now only marks its events as not folded yet (one row of
-- their ids per statement, in calls_pending, in the same transaction: durable with
-- the events), and fold_pending_calls folds marks in batches, in a transaction that
-- deletes them, so every event is folded exactly once, whichever session folds it:
-- each serving replica's folder every two seconds, and the lists before they read
-- (up to the newest mark there was when they asked: so a list shows every call
-- journaled before, and ends however fast the journal goes on marking).

CREATE TABLE calls_pending (
    id      bigserial PRIMARY KEY,
    events  bigint[] NOT NULL  -- call_events ids of one journal statement
);

-- 0008's fold, over the given journal events instead of a statement's new rows.
CREATE FUNCTION fold_calls(ids bigint[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO calls AS c (account_id, entry_id, started_at, last_at, events, hint_seq,
                            leg_direction, leg_number, leg_extension, leg_line,
                            summary_direction, summary_number, summary_extension,
                            summary_line, summary_result, has_summary, connected, legs,
                            legs_closed)
    SELECT g.account_id, g.entry_id, g.started_at, g.last_at, g.events, g.hint_seq,
           g.hint[1][1], g.hint[1][2], g.hint[1][3], g.leg_line, g.s_direction, g.s_number,
           g.s_extension, g.s_line, g.s_result, g.has_summary, g.connected, g.legs,
           g.legs_closed
    FROM (
        SELECT e.account_id, e.entry_id, min(e.received_at) AS started_at,
               max(e.received_at) AS last_at, count(*) AS events,
               min(e.seq) FILTER (WHERE e.hint IS NOT NULL) AS hint_seq,
               -- the lowest leg's direction, number and extension, in one sort
               array_agg(ARRAY[e.hint, e.hint_number, e.hint_extension]
                         ORDER BY e.seq, e.call_id) FILTER (WHERE e.hint IS NOT NULL) AS hint,
               min(e.leg_line) AS leg_line,
               max(e.s_direction) AS s_direction, max(e.s_number) AS s_number,
               max(e.s_extension) AS s_extension, max(e.s_line) AS s_line,
               max(e.s_result) AS s_result, bool_or(e.kind = 'summary') AS has_summary,
               bool_or(e.kind = 'call' AND e.location = 'abonent'
                       AND e.call_state = 'Connected') AS connected,
               coalesce(array_agg(DISTINCT e.call_id)
                        FILTER (WHERE e.kind = 'call' AND e.call_id IS NOT NULL), '{}') AS legs,
               coalesce(array_agg(DISTINCT e.call_id)
                        FILTER (WHERE e.kind = 'call' AND e.call_id IS NOT NULL
                                  AND e.call_state = 'Disconnected'), '{}') AS legs_closed
        FROM (
            SELECT n.account_id, n.entry_id, n.received_at, n.kind, n.seq, n.call_id,
                   n.call_state, n.location, h.hint,
                   CASE h.hint WHEN 'in' THEN p.fn WHEN 'out' THEN p.tn END AS hint_number,
                   CASE WHEN h.hint IN ('out', 'internal') THEN p.fx END AS hint_extension,
                   CASE WHEN n.kind = 'call'
                        THEN coalesce(p.tl, CASE WHEN h.hint = 'in' THEN p.tn END)
                        END AS leg_line,
                   s.direction AS s_direction,
                   CASE WHEN n.kind = 'summary' AND n.payload->>'entry_result' IN ('0', '1')
                        THEN (n.payload->>'entry_result')::int END AS s_result,
                   CASE s.direction WHEN 'in' THEN p.fn WHEN 'out' THEN p.tn END AS s_number,
                   CASE WHEN s.direction IN ('out', 'internal') THEN p.fx END AS s_extension,
                   CASE WHEN n.kind = 'summary' THEN nullif(n.payload->>'line_number', '')
                        END AS s_line
            FROM call_events AS n
            CROSS JOIN LATERAL (SELECT nullif(n.payload->'from'->>'number', '') AS fn,
                                       nullif(n.payload->'from'->>'extension', '') AS fx,
                                       nullif(n.payload->'to'->>'number', '') AS tn,
                                       nullif(n.payload->'to'->>'extension', '') AS tx,
                                       nullif(n.payload->'to'->>'line_number', '') AS tl) AS p
            CROSS JOIN LATERAL (SELECT CASE
                       WHEN n.kind <> 'call' THEN NULL
                       WHEN p.fn IS NOT NULL AND p.fx IS NULL THEN 'in'
                       WHEN p.fx IS NOT NULL AND p.tn IS NOT NULL AND p.tx IS NULL THEN 'out'
                       WHEN p.fx IS NOT NULL AND p.tx IS NOT NULL THEN 'internal'
                   END AS hint) AS h
            CROSS JOIN LATERAL (SELECT CASE WHEN n.kind = 'summary' THEN
                       CASE n.payload->>'call_direction' WHEN '0' THEN 'internal'
                                                         WHEN '1' THEN 'in'
                                                         WHEN '2' THEN 'out' END
                   END AS direction) AS s
            WHERE n.id = ANY(ids)
              AND n.entry_id IS NOT NULL AND n.kind IN ('call', 'summary', 'recording', 'dtmf')
        ) AS e
        GROUP BY e.account_id, e.entry_id
    ) AS g
    ORDER BY g.account_id, g.entry_id
    ON CONFLICT (account_id, entry_id) DO UPDATE SET
        started_at = least(c.started_at, EXCLUDED.started_at),
        last_at = greatest(c.last_at, EXCLUDED.last_at),
        events = c.events + EXCLUDED.events,
        -- a leg with a lower seq than the one read so far tells the direction better
        hint_seq = least(c.hint_seq, EXCLUDED.hint_seq),
        leg_direction = CASE WHEN EXCLUDED.hint_seq < c.hint_seq OR c.hint_seq IS NULL
                             THEN EXCLUDED.leg_direction ELSE c.leg_direction END,
        leg_number = CASE WHEN EXCLUDED.hint_seq < c.hint_seq OR c.hint_seq IS NULL
                          THEN EXCLUDED.leg_number ELSE c.leg_number END,
        leg_extension = CASE WHEN EXCLUDED.hint_seq < c.hint_seq OR c.hint_seq IS NULL
                             THEN EXCLUDED.leg_extension ELSE c.leg_extension END,
        leg_line = least(c.leg_line, EXCLUDED.leg_line),  -- NULLs aside: one per call
        summary_direction = coalesce(EXCLUDED.summary_direction, c.summary_direction),
        summary_number = coalesce(EXCLUDED.summary_number, c.summary_number),
        summary_extension = coalesce(EXCLUDED.summary_extension, c.summary_extension),
        summary_line = coalesce(EXCLUDED.summary_line, c.summary_line),
        summary_result = coalesce(EXCLUDED.summary_result, c.summary_result),
        has_summary = c.has_summary OR EXCLUDED.has_summary,
        connected = c.connected OR EXCLUDED.connected,
        legs = CASE WHEN EXCLUDED.legs <@ c.legs THEN c.legs
                    ELSE ARRAY(SELECT DISTINCT l FROM unnest(c.legs || EXCLUDED.legs) AS l
                               ORDER BY l) END,
        legs_closed = CASE WHEN EXCLUDED.legs_closed <@ c.legs_closed THEN c.legs_closed
                           ELSE ARRAY(SELECT DISTINCT l
                                      FROM unnest(c.legs_closed || EXCLUDED.legs_closed) AS l
                                      ORDER BY l) END;
$$;

-- A batch that fails for a lasting reason (bad data, a number too long for an index:
-- any error but a passing one) is folded mark by mark and the refused statement is
-- logged and dropped, as 0008's trigger dropped its rows, so that it cannot hold up
-- every fold after it nor fail every list. Passing errors roll the fold back, to be
-- done again: connections (08), serialization and deadlocks (40), resources (53),
-- locks not available (55), cancelled or shutting down (57), system errors (58).
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

-- The journal's statement: its events' ids, one row (none when it has no call's event).
CREATE OR REPLACE FUNCTION journal_calls_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO calls_pending (events)
    SELECT array_agg(id ORDER BY id) FROM changed
    WHERE entry_id IS NOT NULL AND kind IN ('call', 'summary', 'recording', 'dtmf')
    HAVING count(*) > 0;
    RETURN NULL;
END $$;
