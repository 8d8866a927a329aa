-- Reason: PostgreSQL version of migrations/0014_fallback.sql (the server's fallback model and the
-- pending one-click fallback offers); BIGINT for ids and times.

ALTER TABLE guild_settings ADD COLUMN fallback_model TEXT;

CREATE TABLE fallback_offers (
    id            TEXT    PRIMARY KEY,
    guild_id      BIGINT  NOT NULL,
    user_id       BIGINT  NOT NULL,
    model         TEXT    NOT NULL,
    request       TEXT    NOT NULL,
    private       INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1)),
    source_kind   TEXT,
    source_url    TEXT,
    source_job_id BIGINT,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL
);
CREATE INDEX fallback_offers_expiry ON fallback_offers (expires_at);
