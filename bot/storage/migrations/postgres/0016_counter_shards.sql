-- Reason: PostgreSQL version of migrations/0016_counter_shards.sql.

CREATE INDEX usage_by_period ON usage (period);
