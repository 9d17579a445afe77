-- Before a replica routes alone it reads the last minutes of claims (router.replicas),
-- and housekeeping deletes old ones: both by time.
CREATE INDEX route_claims_by_time ON route_claims (claimed_at);
