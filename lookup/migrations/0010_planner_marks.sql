-- How far each automation process has planned (automation.engine). A process keeps
-- the calls it has still to plan in memory; every few seconds it writes here a time
-- before which every call it was told of has been planned. A process that starts
-- plans again the journal's calls since the oldest mark of the processes that no
-- longer write theirs (stopped, crashed or stalled), then drops those marks: a
-- planner that lagged behind by any time loses no call when it stops.
CREATE TABLE planner_marks (
    owner           uuid PRIMARY KEY,     -- one run of one automation process
    planned_before  timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
