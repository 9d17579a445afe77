-- Whether the account's PBX API and CRM answered lately, as every replica saw it:
-- the newest success, the newest failure and its (short, secret-free) reason, per
-- account and service. Each replica keeps notes in memory and writes them here at
-- most every few seconds; rows only move forward (the newest time wins), so
-- replicas writing in any order leave the same row. GET /api/health reads it.
CREATE TABLE service_health (
    account_id      int NOT NULL REFERENCES accounts ON DELETE CASCADE,
    service         text NOT NULL CHECK (service IN ('pbx', 'crm')),
    last_ok_at      timestamptz,
    last_error_at   timestamptz,
    last_error      text,
    PRIMARY KEY (account_id, service)
);
