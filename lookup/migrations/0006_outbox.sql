-- The CRM outbox: every action the call automation takes in Megaplan, durable and
-- applied once. Any replica plans and works it; the unique key makes planning the
-- same call twice (two replicas, a re-sent event) a no-op.
CREATE TABLE crm_actions (
    id              bigserial PRIMARY KEY,
    account_id      int NOT NULL REFERENCES accounts ON DELETE CASCADE,
    entry_id        text NOT NULL,        -- the call that planned it
    action          text NOT NULL,        -- create_client, create_deal, record_call, set_responsible
    subject         text NOT NULL DEFAULT '',  -- more than one of a kind per call (a recording)
    payload         jsonb NOT NULL,       -- everything needed to apply it
    depends_on      bigint REFERENCES crm_actions ON DELETE CASCADE,  -- its client is made there
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'done', 'failed', 'dry_run')),
    attempts        int NOT NULL DEFAULT 0,
    uncertain       boolean NOT NULL DEFAULT false,  -- an attempt may have landed: look first
    leased_at       timestamptz,          -- claimed by a worker then, not yet settled
    last_error      text,
    crm_id          text,                 -- what it made or found in the CRM
    note            text,                 -- e.g. why nothing needed doing
    due_at          timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz,
    UNIQUE (account_id, entry_id, action, subject)
);
CREATE INDEX crm_actions_due ON crm_actions (account_id, due_at, id) WHERE state = 'pending';
CREATE INDEX crm_actions_by_dependency ON crm_actions (depends_on) WHERE depends_on IS NOT NULL;

-- One client per new number, whichever of its calls came first: the action that makes it.
-- The same number calling twenty times at once, on any replicas, plans one creation.
CREATE TABLE crm_new_numbers (
    account_id      int NOT NULL REFERENCES accounts ON DELETE CASCADE,
    phone_key       bigint NOT NULL,
    action_id       bigint NOT NULL REFERENCES crm_actions ON DELETE CASCADE,
    PRIMARY KEY (account_id, phone_key)
);
CREATE INDEX crm_new_numbers_by_action ON crm_new_numbers (action_id);

-- A planned action wakes the outbox's worker on every replica.
CREATE FUNCTION crm_actions_planned() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE row record;
BEGIN
    FOR row IN SELECT DISTINCT account_id FROM changed WHERE state = 'pending' LOOP
        PERFORM pg_notify('mango_outbox', row.account_id::text);
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER crm_actions_ins AFTER INSERT ON crm_actions REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION crm_actions_planned();

-- A starting replica takes up the calls of the last minutes (automation.engine).
CREATE INDEX call_events_by_time ON call_events (received_at);

-- A create that may have landed looks in the CRM for what it made; what another action
-- made or found is not its (a client's calls in one minute make deals of one name).
CREATE INDEX crm_actions_by_crm_id ON crm_actions (account_id, action, crm_id)
    WHERE crm_id IS NOT NULL;
