-- A create that may have landed looks in the CRM for what it made; what another action
-- made or found is not its (a client's calls in one minute make deals of one name).
CREATE INDEX crm_actions_by_crm_id ON crm_actions (account_id, action, crm_id)
    WHERE crm_id IS NOT NULL;
