-- No planner statistics for the opaque columns of the tables written on every call:
-- no query compares them by value (the notifications' and actions' JSON, the journal's
-- hash for dropping repeats), and ANALYZE spent most of its time on them. Autovacuum
-- analyzes these tables over and over while calls come fast; measured on 205,000
-- journaled events and 38,000 actions, ANALYZE took 0.35 s and 0.19 s of a core, then
-- 0.15 s and 0.07 s, which is that much less taken from routing beside it. An
-- expression index over a payload (call_events_results) keeps its own statistics.
ALTER TABLE call_events ALTER COLUMN payload SET STATISTICS 0,
                        ALTER COLUMN journal_key SET STATISTICS 0;
ALTER TABLE crm_actions ALTER COLUMN payload SET STATISTICS 0;
