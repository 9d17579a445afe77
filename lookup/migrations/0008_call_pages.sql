-- The admin pages' calls: one row per call (account, entry), kept by a trigger on
-- the journal, so that a page reads its fifty rows through an index instead of
-- grouping millions of events. What a row says is read from the events the way
-- automation.call_model reads them, in brief (lookup.calls turns it into an
-- outcome):
--   direction, number, extension: from the leg with the lowest seq that shows where
--     the call came from (from.number and no extension: in, the outside number is
--     from.number; from an extension to a number: out, the number is to.number;
--     extension to extension: internal); the summary's call_direction wins for the
--     direction, and its numbers stand in when no leg showed them;
--   line: a leg's to.line_number (an incoming leg's to.number stands in), else the
--     summary's line_number;
--   answered: the summary's entry_result when it has one, else an employee's leg
--     (location abonent) was Connected;
--   ended: a summary came, or every leg seen has hung up (or, read at query time,
--     nothing was heard for ten minutes).
-- started_at is the first notification's arrival: it does not move once the call
-- is listed, so a cursor over (started_at, entry_id) pages without gaps or repeats.
-- Only started_at, number and line are indexed: the many later events of a call
-- change none of them, so their updates are HOT (the table keeps room for them).

CREATE TABLE calls (
    account_id          int NOT NULL REFERENCES accounts ON DELETE CASCADE,
    entry_id            text NOT NULL,
    started_at          timestamptz NOT NULL,  -- its first notification received
    last_at             timestamptz NOT NULL,  -- its latest
    events              int NOT NULL,          -- notifications journaled
    hint_seq            bigint,                -- seq of the leg the direction was read from
    leg_direction       text,                  -- in, out, internal: that leg's
    leg_number          text,                  -- its outside party
    leg_extension       text,                  -- its employee who called (out, internal)
    leg_line            text,                  -- the legs' to.line_number
    summary_direction   text,                  -- the same from the summary
    summary_number      text,
    summary_extension   text,
    summary_line        text,
    summary_result      int,                   -- the summary's entry_result: 1 answered, 0 not
    has_summary         boolean NOT NULL DEFAULT false,
    connected           boolean NOT NULL DEFAULT false,  -- an employee's leg was Connected
    legs                text[] NOT NULL DEFAULT '{}',    -- call_ids seen
    legs_closed         text[] NOT NULL DEFAULT '{}',    -- call_ids seen Disconnected
    -- the outside party (who called in, or who was called), as the PBX sent it
    number              text GENERATED ALWAYS AS (coalesce(leg_number, summary_number)) STORED,
    -- the company line
    line                text GENERATED ALWAYS AS (coalesce(leg_line, summary_line)) STORED,
    PRIMARY KEY (account_id, entry_id)
) WITH (fillfactor = 80);
CREATE INDEX calls_by_start ON calls (account_id, started_at, entry_id);
CREATE INDEX calls_by_number ON calls (account_id, number, started_at, entry_id);
CREATE INDEX calls_by_line ON calls (account_id, line, started_at, entry_id);

-- The journal's statements keep the rows: the events of a statement are folded
-- into their calls' rows, sorted by entry, so concurrent statements take the rows'
-- locks in one order and never deadlock. Like busy_legs, a failure here must never
-- lose the journal's batch: it is logged and the batch stays.
CREATE FUNCTION journal_calls_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
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
            FROM changed AS n
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
            WHERE n.entry_id IS NOT NULL AND n.kind IN ('call', 'summary', 'recording', 'dtmf')
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
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'calls not updated: % (%)', SQLERRM, SQLSTATE;
    RETURN NULL;
END $$;

CREATE TRIGGER journal_calls AFTER INSERT ON call_events REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION journal_calls_changed();

-- The journal there is already, 100,000 events at a time, through the same function:
-- a scratch table with the trigger takes each slice (a call cut in two is folded in
-- twice, as when its events come in two statements).
CREATE TEMP TABLE calls_backfill (LIKE call_events);
CREATE TRIGGER calls_backfill AFTER INSERT ON calls_backfill
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION journal_calls_changed();
DO $$
DECLARE
    last_id bigint := (SELECT max(id) FROM call_events);
    low bigint := (SELECT min(id) FROM call_events) - 1;
BEGIN
    WHILE low < last_id LOOP
        INSERT INTO calls_backfill
            SELECT * FROM call_events WHERE id > low AND id <= low + 100000;
        TRUNCATE calls_backfill;
        low := low + 100000;
    END LOOP;
END $$;
DROP TABLE calls_backfill;

-- A call's final result (the PBX's result/route, journaled without an entry) is
-- found by its command id; without this a call's page read the whole journal.
CREATE INDEX call_events_results ON call_events (account_id, (payload->>'command_id'), id)
    WHERE kind = 'result';
