-- Route claims live for the length of a call; losing them in a crash is harmless
-- (the per-process claim still holds), so they skip the write-ahead log.
ALTER TABLE route_claims SET UNLOGGED;
