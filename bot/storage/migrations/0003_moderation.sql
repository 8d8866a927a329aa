-- Reason: limits set by moderators, per-server switches, the audit log and spend alerts.

CREATE TABLE limits (
    guild_id    INTEGER NOT NULL,
    target_kind TEXT    NOT NULL CHECK (target_kind IN ('member', 'role', 'server')),
    target_id   INTEGER NOT NULL,                  -- user id, role id (@everyone = guild id), guild id
    metric      TEXT    NOT NULL CHECK (metric IN ('usd', 'images')),
    period      TEXT    NOT NULL CHECK (period IN ('day', 'week', 'month')),
    value       INTEGER NOT NULL CHECK (value >= 0),  -- micro-dollars or images
    updated_by  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (guild_id, target_kind, target_id, metric, period)
) STRICT;

CREATE TABLE guild_settings (
    guild_id          INTEGER PRIMARY KEY,
    paused            INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    moderator_role_id INTEGER,
    modlog_channel_id INTEGER
) STRICT;

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    guild_id  INTEGER NOT NULL,
    actor_id  INTEGER NOT NULL,
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    old_value TEXT,
    new_value TEXT,
    at        INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_log_by_guild ON audit_log (guild_id, at);

-- One row per alert sent, so each threshold alerts once per period.
CREATE TABLE spend_alerts (
    guild_id  INTEGER NOT NULL,
    period    TEXT    NOT NULL,
    threshold INTEGER NOT NULL,                    -- percent: 50, 80, 100
    at        INTEGER NOT NULL,
    PRIMARY KEY (guild_id, period, threshold)
) STRICT, WITHOUT ROWID;
