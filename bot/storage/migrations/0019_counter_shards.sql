-- Reason: the daily ledger check (bot.billing.bookkeeping) reads the counters of the periods that
-- can still change, by period key. SQLite runs one writer at a time, so its counters are not split
-- into shards (the PostgreSQL version of this migration does that).

CREATE INDEX usage_by_period ON usage (period);
