-- Accounts, the CRM copy, the event journal and the decision record.
-- Every row carries its account; accounts never see each other's data.

CREATE TABLE accounts (
    id              serial PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    mango_api_key   text NOT NULL UNIQUE,
    mango_api_salt  text NOT NULL,
    mango_api_url   text NOT NULL,
    megaplan_url    text,
    megaplan_username text,
    megaplan_password text,
    token_hash      text,                 -- sha256 hex of the account's own admin token
    settings        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE employees (
    uid             bigserial PRIMARY KEY,
    account_id      int NOT NULL REFERENCES accounts ON DELETE CASCADE,
    crm_id          text NOT NULL,
    name            text NOT NULL DEFAULT '',
    email           text,
    extension       text,
    extension_manual boolean NOT NULL DEFAULT false,  -- set by an admin: sync never overrides it
    active          boolean NOT NULL DEFAULT true,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, crm_id)
);

CREATE TABLE clients (
    uid             bigserial PRIMARY KEY,
    account_id      int NOT NULL REFERENCES accounts ON DELETE CASCADE,
    crm_id          text NOT NULL,
    -- "the first found" client is the smallest CRM id; ids of digits compare as integers
    crm_order       numeric GENERATED ALWAYS AS (
                        CASE WHEN crm_id ~ '^[0-9]{1,40}$' THEN crm_id::numeric END) STORED,
    kind            text NOT NULL DEFAULT 'human' CHECK (kind IN ('human', 'company')),
    name            text NOT NULL DEFAULT '',
    dropped         boolean NOT NULL DEFAULT false,
    line_number     text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, crm_id)
);

CREATE TABLE client_phones (
    client_uid      bigint NOT NULL REFERENCES clients ON DELETE CASCADE,
    account_id      int NOT NULL,
    phone_key       bigint NOT NULL,      -- E.164 digits
    raw             text NOT NULL,
    PRIMARY KEY (client_uid, phone_key)
);
CREATE INDEX client_phones_by_key ON client_phones (account_id, phone_key);

CREATE TABLE client_responsibles (
    client_uid      bigint NOT NULL REFERENCES clients ON DELETE CASCADE,
    account_id      int NOT NULL,
    position        int NOT NULL,         -- the CRM's order
    kind            text NOT NULL CHECK (kind IN ('employee', 'client', 'group')),
    ref_id          text NOT NULL,        -- the CRM id of the employee (or client, group)
    PRIMARY KEY (client_uid, position)
);
CREATE INDEX client_responsibles_by_ref ON client_responsibles (account_id, ref_id);

-- The CRM's deal programs and their states (for the deal settings).
CREATE TABLE programs (
    account_id      int NOT NULL REFERENCES accounts ON DELETE CASCADE,
    crm_id          text NOT NULL,
    name            text NOT NULL DEFAULT '',
    PRIMARY KEY (account_id, crm_id)
);

CREATE TABLE program_states (
    account_id      int NOT NULL,
    program_id      text NOT NULL,
    crm_id          text NOT NULL,
    name            text NOT NULL DEFAULT '',
    type            text NOT NULL DEFAULT 'active',   -- active, positive, negative
    is_entry        boolean NOT NULL DEFAULT false,
    PRIMARY KEY (account_id, program_id, crm_id),
    FOREIGN KEY (account_id, program_id) REFERENCES programs ON DELETE CASCADE
);

-- Every valid PBX notification, as received. journal_key drops exact repeats.
CREATE TABLE call_events (
    id              bigserial PRIMARY KEY,
    account_id      int NOT NULL REFERENCES accounts ON DELETE CASCADE,
    kind            text NOT NULL,        -- call, summary, recording, dtmf, result
    entry_id        text,
    call_id         text,
    seq             bigint,
    call_state      text,
    location        text,
    payload         jsonb NOT NULL,
    journal_key     text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, journal_key)
);
CREATE INDEX call_events_by_entry ON call_events (account_id, entry_id, seq);

-- One routing decision per trigger: routed, or why not; what the PBX said.
CREATE TABLE decisions (
    id              bigserial PRIMARY KEY,
    account_id      int NOT NULL REFERENCES accounts ON DELETE CASCADE,
    entry_id        text NOT NULL,
    call_id         text NOT NULL,
    number          text NOT NULL,
    outcome         text NOT NULL,
    reason          text,
    client_id       text,
    employee_id     text,
    extension       text,
    command_id      text UNIQUE,
    pbx_status      int,                  -- HTTP status of commands/route
    pbx_result      int,                  -- its result code (1000 = accepted)
    latency_us      bigint NOT NULL,      -- trigger received -> command sent (or decided)
    decided_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_by_entry ON decisions (account_id, entry_id);
CREATE INDEX decisions_by_number ON decisions (account_id, number, decided_at DESC);

-- Claims across replicas: the one that inserts the row sends the route.
CREATE TABLE route_claims (
    account_id      int NOT NULL,
    entry_id        text NOT NULL,
    claimed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, entry_id)
);

-- Change notification: every replica's index hears of every committed change.
-- Statement-level triggers name what changed (phone keys, clients, employees);
-- a large statement asks for a reload of the account instead.
CREATE FUNCTION notify_index(account int, kind text, refs bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF refs IS NULL OR cardinality(refs) = 0 THEN
        RETURN;
    END IF;
    IF cardinality(refs) > 500 THEN
        PERFORM pg_notify('mango_index', json_build_object('a', account, 'k', 'all')::text);
    ELSE
        PERFORM pg_notify('mango_index',
                          json_build_object('a', account, 'k', kind, 'r', refs)::text);
    END IF;
END $$;

CREATE FUNCTION phones_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE row record;
BEGIN
    FOR row IN SELECT account_id, array_agg(DISTINCT phone_key) AS refs
               FROM changed GROUP BY account_id LOOP
        PERFORM notify_index(row.account_id, 'p', row.refs);
    END LOOP;
    RETURN NULL;
END $$;

CREATE FUNCTION responsibles_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE row record;
BEGIN
    FOR row IN SELECT account_id, array_agg(DISTINCT client_uid) AS refs
               FROM changed GROUP BY account_id LOOP
        PERFORM notify_index(row.account_id, 'c', row.refs);
    END LOOP;
    RETURN NULL;
END $$;

-- A client dropped, restored or renumbered changes who owns its phones.
CREATE FUNCTION clients_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE row record;
BEGIN
    FOR row IN SELECT c.account_id, array_agg(DISTINCT p.phone_key) AS refs
               FROM changed c JOIN client_phones p ON p.client_uid = c.uid
               GROUP BY c.account_id LOOP
        PERFORM notify_index(row.account_id, 'p', row.refs);
    END LOOP;
    FOR row IN SELECT account_id, array_agg(uid) AS refs FROM changed GROUP BY account_id LOOP
        PERFORM notify_index(row.account_id, 'c', row.refs);
    END LOOP;
    RETURN NULL;
END $$;

CREATE FUNCTION employees_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE row record;
BEGIN
    FOR row IN SELECT DISTINCT account_id FROM changed LOOP
        PERFORM pg_notify('mango_index', json_build_object('a', row.account_id, 'k', 'e')::text);
    END LOOP;
    RETURN NULL;
END $$;

CREATE FUNCTION accounts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mango_accounts', '');
    RETURN NULL;
END $$;

CREATE TRIGGER phones_ins AFTER INSERT ON client_phones REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION phones_changed();
CREATE TRIGGER phones_del AFTER DELETE ON client_phones REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION phones_changed();
CREATE TRIGGER phones_upd_old AFTER UPDATE ON client_phones REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION phones_changed();
CREATE TRIGGER phones_upd_new AFTER UPDATE ON client_phones REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION phones_changed();

CREATE TRIGGER resp_ins AFTER INSERT ON client_responsibles REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION responsibles_changed();
CREATE TRIGGER resp_del AFTER DELETE ON client_responsibles REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION responsibles_changed();
CREATE TRIGGER resp_upd AFTER UPDATE ON client_responsibles REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION responsibles_changed();

CREATE TRIGGER clients_upd AFTER UPDATE ON clients REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION clients_changed();

CREATE TRIGGER employees_ins AFTER INSERT ON employees REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION employees_changed();
CREATE TRIGGER employees_del AFTER DELETE ON employees REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION employees_changed();
CREATE TRIGGER employees_upd AFTER UPDATE ON employees REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION employees_changed();

CREATE TRIGGER accounts_any AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_changed();
