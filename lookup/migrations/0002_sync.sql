-- CRM sync state, one row per account: where incremental reads resume, what the
-- last full and incremental passes did, and the last error (never a credential).

CREATE TABLE sync_state (
    account_id          int PRIMARY KEY REFERENCES accounts ON DELETE CASCADE,
    watermark           timestamptz,          -- newest CRM timeUpdated fully taken
    full_pending        boolean NOT NULL DEFAULT false,  -- a full pass began and has not ended
    full_started_at     timestamptz,
    full_finished_at    timestamptz,          -- the last complete full pass
    full_duration_s     double precision,
    full_employees      int,
    full_clients        int,
    full_dropped        int,                  -- clients gone from the CRM, marked dropped
    full_errors         int,
    full_requests       int,
    incr_started_at     timestamptz,
    incr_finished_at    timestamptz,
    incr_duration_s     double precision,
    incr_employees      int,
    incr_clients        int,
    incr_errors         int,
    incr_requests       int,
    last_success_at     timestamptz,          -- start of the last pass that completed
    last_error          text,
    last_error_at       timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
