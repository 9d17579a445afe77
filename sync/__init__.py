"""CRM and PBX users into the database: full and incremental passes, the poller,
extension matching, and the sync's own metrics."""
