-- Reason: PostgreSQL scales out. Until now every reservation and every ledger row locked and updated
-- the same bot-wide (and server-wide) counter rows, so all writers in all processes queued on them.
-- Now (design and proof in bot/billing/escrow.py):
--
-- * the server and bot counters are split into 64 shards; a member's rows always go to one shard
--   (ledger_shard), so two writers meet on a row only when their members share a shard;
-- * a capped server or bot counter is guarded by ESCROW: each shard row holds an allowance of the
--   cap (escrow_micros / escrow_images, granted under escrow_cap_*). A reservation spends from its
--   own shard's allowance (checked under that row's lock) and never reads another shard; an
--   allowance is granted by ledger_refill, one at a time per counter (an advisory lock), and only
--   while spent + allowances, summed over every shard, stay within the cap. Every spend that raises
--   a counter draws the same amount from its shard's allowance (the trigger), so the sum never grows
--   past what was granted; a shard drawn below zero (a settlement above its estimate) is in debt,
--   and reservations wait until a refill has rebalanced the counter under every shard's lock;
-- * a reservation is one call (ledger_reserve): locks, checks and the ledger row on the server, so
--   its locks are held for one statement, not for several round trips.
--
-- Member counters stay in shard 0. A counter's value is the sum of its rows.

ALTER TABLE usage
    ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0,
    ADD COLUMN escrow_micros BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN escrow_images BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN escrow_cap_micros BIGINT,
    ADD COLUMN escrow_cap_images BIGINT;
ALTER TABLE usage DROP CONSTRAINT usage_pkey;
ALTER TABLE usage ADD PRIMARY KEY (scope, period, shard);
CREATE INDEX usage_by_period ON usage (period);

-- The shard of a member's server and bot counters: 0 … 63.
CREATE FUNCTION ledger_shard(p_guild BIGINT, p_user BIGINT) RETURNS INT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (hashint8extended(p_guild # p_user, 0) & 63)::INT $$;

-- The counters, as in 0002, with shards and escrow: member rows in shard 0; server and bot rows in
-- the member's shard, where a rise also draws from the allowance (a fall gives nothing back: the
-- headroom it frees is found by the next refill). Rows in one order: bot, m:…, s:… (then d:, m:, w:).
CREATE OR REPLACE FUNCTION ledger_counts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_member TEXT := 'm:' || NEW.guild_id || ':' || NEW.user_id;
    v_server TEXT := 's:' || NEW.guild_id;
    v_shard INT := ledger_shard(NEW.guild_id, NEW.user_id);
    v_draw_micros BIGINT := -GREATEST(NEW.server_micros, 0);
    v_draw_images BIGINT := -GREATEST(NEW.member_images, 0);
BEGIN
    IF NEW.kind = 'reserve' THEN
        INSERT INTO member_activity AS a (guild_id, user_id, pending_jobs, last_reserved_at)
            VALUES (NEW.guild_id, NEW.user_id, 1, NEW.at)
        ON CONFLICT (guild_id, user_id) DO UPDATE SET
            pending_jobs = a.pending_jobs + 1,
            last_reserved_at = excluded.last_reserved_at;
    ELSIF NEW.kind IN ('settle', 'release') THEN
        UPDATE member_activity SET pending_jobs = pending_jobs - 1
            WHERE guild_id = NEW.guild_id AND user_id = NEW.user_id;
    END IF;
    IF NEW.kind = 'grant' THEN
        INSERT INTO usage AS u (scope, period, shard, granted_micros) VALUES
            (v_member, NEW.day,   0, NEW.member_micros),
            (v_member, NEW.month, 0, NEW.member_micros),
            (v_member, NEW.week,  0, NEW.member_micros)
        ON CONFLICT (scope, period, shard) DO UPDATE SET granted_micros = u.granted_micros + excluded.granted_micros;
    ELSE
        INSERT INTO usage AS u (scope, period, shard, micros, images, escrow_micros, escrow_images) VALUES
            ('bot',  NEW.day,   v_shard, NEW.server_micros, NEW.member_images, v_draw_micros, v_draw_images),
            ('bot',  NEW.month, v_shard, NEW.server_micros, NEW.member_images, v_draw_micros, v_draw_images),
            ('bot',  NEW.week,  v_shard, NEW.server_micros, NEW.member_images, v_draw_micros, v_draw_images),
            (v_member, NEW.day,   0,     NEW.member_micros, NEW.member_images, 0, 0),
            (v_member, NEW.month, 0,     NEW.member_micros, NEW.member_images, 0, 0),
            (v_member, NEW.week,  0,     NEW.member_micros, NEW.member_images, 0, 0),
            (v_server, NEW.day,   v_shard, NEW.server_micros, NEW.member_images, v_draw_micros, v_draw_images),
            (v_server, NEW.month, v_shard, NEW.server_micros, NEW.member_images, v_draw_micros, v_draw_images),
            (v_server, NEW.week,  v_shard, NEW.server_micros, NEW.member_images, v_draw_micros, v_draw_images)
        ON CONFLICT (scope, period, shard) DO UPDATE SET
            micros = u.micros + excluded.micros,
            images = u.images + excluded.images,
            escrow_micros = u.escrow_micros + excluded.escrow_micros,
            escrow_images = u.escrow_images + excluded.escrow_images;
    END IF;
    RETURN NULL;
END $$;

-- Give shard p_shard of the counter (p_scope, p_period) an allowance of at least p_needed under
-- the cap p_cap, for p_metric 'usd' (micros) or 'images'. Returns 1 when it holds that much now,
-- 0 when the cap cannot hold p_needed more (an exact count: every shard locked), -1 when not now
-- (p_wait false: another refill holds the counter, or the counter needs rebalancing).
--
-- Fast path (the usual one): one snapshot of the counter's shards; with no debt and no allowance
-- granted under another cap, cap - (spent + allowances) is a bound that can only grow until this
-- transaction ends (reservations turn allowance into spend, settlements and releases lower spend,
-- and other refills wait for the advisory lock), so granting up to it keeps the sum within the cap.
-- Slow path: lock every shard row in shard order, count the spend exactly, then hand out what the
-- cap leaves: p_needed to this shard, the rest kept where it was (allowances under another cap and
-- debts are cleared).
CREATE FUNCTION ledger_refill(p_scope TEXT, p_period TEXT, p_metric TEXT, p_shard INT, p_needed BIGINT,
                              p_cap BIGINT, p_wait BOOLEAN) RETURNS INT LANGUAGE plpgsql AS $$
DECLARE
    v_by_images BOOLEAN := p_metric = 'images';
    v_lock_key BIGINT := hashtextextended('fluxcord escrow ' || p_scope || ' ' || p_period || ' ' || p_metric, 0);
    v_spent BIGINT;
    v_held BIGINT;
    v_own BIGINT;
    v_dirty BOOLEAN;
    v_headroom BIGINT;
    v_grant_now BIGINT;
    v_budget BIGINT;
    v_keep BIGINT;
    r RECORD;
BEGIN
    IF p_needed <= 0 THEN
        RETURN 1;
    END IF;
    IF p_wait THEN
        PERFORM pg_advisory_xact_lock(v_lock_key);
    ELSIF NOT pg_try_advisory_xact_lock(v_lock_key) THEN
        RETURN -1;
    END IF;
    SELECT COALESCE(SUM(CASE WHEN v_by_images THEN u.images ELSE u.micros END), 0),
           COALESCE(SUM(CASE WHEN v_by_images THEN u.escrow_images ELSE u.escrow_micros END), 0),
           COALESCE(SUM(CASE WHEN v_by_images THEN u.escrow_images ELSE u.escrow_micros END)
                    FILTER (WHERE u.shard = p_shard), 0),
           COALESCE(bool_or(CASE WHEN v_by_images
                THEN u.escrow_images < 0 OR (u.escrow_images > 0 AND u.escrow_cap_images IS DISTINCT FROM p_cap)
                ELSE u.escrow_micros < 0 OR (u.escrow_micros > 0 AND u.escrow_cap_micros IS DISTINCT FROM p_cap)
                END), FALSE)
      INTO v_spent, v_held, v_own, v_dirty
      FROM usage u WHERE u.scope = p_scope AND u.period = p_period;
    v_headroom := p_cap - v_spent - v_held;
    IF NOT v_dirty AND v_own + v_headroom >= p_needed THEN
        IF v_own >= p_needed THEN
            RETURN 1;
        END IF;
        v_grant_now := LEAST(v_headroom, GREATEST(p_needed - v_own, v_headroom / 128));
        INSERT INTO usage AS u (scope, period, shard, escrow_micros, escrow_images, escrow_cap_micros, escrow_cap_images)
            VALUES (p_scope, p_period, p_shard,
                    CASE WHEN v_by_images THEN 0 ELSE v_grant_now END, CASE WHEN v_by_images THEN v_grant_now ELSE 0 END,
                    CASE WHEN v_by_images THEN NULL ELSE p_cap END, CASE WHEN v_by_images THEN p_cap ELSE NULL END)
        ON CONFLICT (scope, period, shard) DO UPDATE SET
            escrow_micros = u.escrow_micros + excluded.escrow_micros,
            escrow_images = u.escrow_images + excluded.escrow_images,
            escrow_cap_micros = CASE WHEN v_by_images THEN u.escrow_cap_micros ELSE p_cap END,
            escrow_cap_images = CASE WHEN v_by_images THEN p_cap ELSE u.escrow_cap_images END;
        RETURN 1;
    END IF;
    IF NOT p_wait THEN
        RETURN -1;
    END IF;
    -- Slow path: every shard, locked in shard order (this shard's row created first if missing).
    INSERT INTO usage (scope, period, shard) VALUES (p_scope, p_period, p_shard) ON CONFLICT DO NOTHING;
    SELECT COALESCE(SUM(s.spent), 0) INTO v_spent FROM (
        SELECT CASE WHEN v_by_images THEN u.images ELSE u.micros END AS spent
        FROM usage u WHERE u.scope = p_scope AND u.period = p_period ORDER BY u.shard FOR UPDATE
    ) s;
    v_budget := GREATEST(p_cap - v_spent, 0);
    v_own := CASE WHEN v_budget >= p_needed THEN p_needed ELSE 0 END;
    v_budget := v_budget - v_own;
    FOR r IN
        SELECT u.shard,
               CASE WHEN v_by_images THEN u.escrow_images ELSE u.escrow_micros END AS held,
               CASE WHEN v_by_images THEN u.escrow_cap_images ELSE u.escrow_cap_micros END AS cap
        FROM usage u WHERE u.scope = p_scope AND u.period = p_period ORDER BY u.shard
    LOOP
        IF r.shard = p_shard THEN
            v_keep := v_own;
        ELSIF r.held > 0 AND r.cap = p_cap THEN
            v_keep := LEAST(r.held, v_budget);
            v_budget := v_budget - v_keep;
        ELSE
            v_keep := 0;
        END IF;
        IF v_keep IS DISTINCT FROM r.held OR (v_keep > 0 AND r.cap IS DISTINCT FROM p_cap) THEN
            UPDATE usage u SET
                escrow_micros = CASE WHEN v_by_images THEN u.escrow_micros ELSE v_keep END,
                escrow_images = CASE WHEN v_by_images THEN v_keep ELSE u.escrow_images END,
                escrow_cap_micros = CASE WHEN v_by_images THEN u.escrow_cap_micros ELSE p_cap END,
                escrow_cap_images = CASE WHEN v_by_images THEN p_cap ELSE u.escrow_cap_images END
            WHERE u.scope = p_scope AND u.period = p_period AND u.shard = r.shard;
        END IF;
    END LOOP;
    RETURN CASE WHEN v_own >= p_needed THEN 1 ELSE 0 END;
END $$;

-- Reserve p_cost (and one image) for job p_job against every limit, in one call, or raise with no
-- side effect: SQLSTATE FX001 (a limit, the pending cap, the cooldown or a pause refuses, or the job
-- is already reserved) or FX002 (an allowance is needed that cannot be had without waiting: the
-- caller refills with ledger_refill(..., TRUE) and tries again). Limits come as parallel arrays:
-- counter scope key, period key, 'usd' or 'images', cap. Member limits are checked against the
-- member's counter; server and bot limits against this member's shard's allowance. Locks, in the
-- counting trigger's order: the member's activity row, then the nine counter rows.
CREATE FUNCTION ledger_reserve(
    p_job BIGINT, p_guild BIGINT, p_user BIGINT, p_model TEXT, p_cost BIGINT,
    p_day TEXT, p_week TEXT, p_month TEXT, p_at BIGINT, p_max_pending BIGINT, p_ready_before BIGINT,
    p_scopes TEXT[], p_periods TEXT[], p_metrics TEXT[], p_caps BIGINT[]
) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    v_member TEXT := 'm:' || p_guild || ':' || p_user;
    v_server TEXT := 's:' || p_guild;
    v_shard INT := ledger_shard(p_guild, p_user);
    v_activity RECORD;
    v_locked INT;
    v_by_images BOOLEAN;
    v_needed BIGINT;
    v_used BIGINT;
    i INT;
BEGIN
    IF EXISTS (SELECT 1 FROM guild_settings WHERE guild_id = p_guild AND paused = 1) THEN
        RAISE EXCEPTION 'generation is paused in this server' USING ERRCODE = 'FX001';
    END IF;
    SELECT pending_jobs, last_reserved_at INTO v_activity FROM member_activity
        WHERE guild_id = p_guild AND user_id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO member_activity (guild_id, user_id) VALUES (p_guild, p_user) ON CONFLICT DO NOTHING;
        SELECT pending_jobs, last_reserved_at INTO v_activity FROM member_activity
            WHERE guild_id = p_guild AND user_id = p_user FOR UPDATE;
    END IF;
    IF v_activity.pending_jobs >= p_max_pending OR v_activity.last_reserved_at > p_ready_before THEN
        RAISE EXCEPTION 'the pending cap or the cooldown refuses' USING ERRCODE = 'FX001';
    END IF;
    PERFORM 1 FROM usage u
        WHERE (u.scope, u.period, u.shard) IN (
            ('bot', p_day, v_shard), ('bot', p_month, v_shard), ('bot', p_week, v_shard),
            (v_member, p_day, 0), (v_member, p_month, 0), (v_member, p_week, 0),
            (v_server, p_day, v_shard), (v_server, p_month, v_shard), (v_server, p_week, v_shard))
        ORDER BY u.scope COLLATE "C", u.period COLLATE "C" FOR UPDATE;
    GET DIAGNOSTICS v_locked = ROW_COUNT;
    IF v_locked < 9 THEN
        INSERT INTO usage (scope, period, shard) VALUES
            ('bot', p_day, v_shard), ('bot', p_month, v_shard), ('bot', p_week, v_shard),
            (v_member, p_day, 0), (v_member, p_month, 0), (v_member, p_week, 0),
            (v_server, p_day, v_shard), (v_server, p_month, v_shard), (v_server, p_week, v_shard)
        ON CONFLICT DO NOTHING;
        PERFORM 1 FROM usage u
            WHERE (u.scope, u.period, u.shard) IN (
                ('bot', p_day, v_shard), ('bot', p_month, v_shard), ('bot', p_week, v_shard),
                (v_member, p_day, 0), (v_member, p_month, 0), (v_member, p_week, 0),
                (v_server, p_day, v_shard), (v_server, p_month, v_shard), (v_server, p_week, v_shard))
            ORDER BY u.scope COLLATE "C", u.period COLLATE "C" FOR UPDATE;
    END IF;
    FOR i IN 1 .. COALESCE(array_length(p_scopes, 1), 0) LOOP
        v_by_images := p_metrics[i] = 'images';
        v_needed := CASE WHEN v_by_images THEN 1 ELSE p_cost END;
        IF left(p_scopes[i], 2) = 'm:' THEN
            SELECT CASE WHEN v_by_images THEN u.images ELSE u.micros - u.granted_micros END INTO v_used
                FROM usage u WHERE u.scope = p_scopes[i] AND u.period = p_periods[i] AND u.shard = 0;
            IF COALESCE(v_used, 0) + v_needed > p_caps[i] THEN
                RAISE EXCEPTION 'a member limit refuses' USING ERRCODE = 'FX001';
            END IF;
        ELSIF v_needed > 0 AND (
            NOT EXISTS (
                SELECT 1 FROM usage u WHERE u.scope = p_scopes[i] AND u.period = p_periods[i] AND u.shard = v_shard
                    AND CASE WHEN v_by_images THEN u.escrow_cap_images = p_caps[i] AND u.escrow_images >= v_needed
                             ELSE u.escrow_cap_micros = p_caps[i] AND u.escrow_micros >= v_needed END)
            OR EXISTS (
                SELECT 1 FROM usage u WHERE u.scope = p_scopes[i] AND u.period = p_periods[i]
                    AND CASE WHEN v_by_images THEN u.escrow_images < 0 ELSE u.escrow_micros < 0 END))
        THEN
            IF ledger_refill(p_scopes[i], p_periods[i], p_metrics[i], v_shard, v_needed, p_caps[i], FALSE) <> 1 THEN
                RAISE EXCEPTION 'an allowance is needed' USING ERRCODE = 'FX002';
            END IF;
        END IF;
    END LOOP;
    INSERT INTO ledger (kind, job_id, guild_id, user_id, model, server_micros, member_micros, member_images,
                        day, week, month, at)
        VALUES ('reserve', p_job, p_guild, p_user, p_model, p_cost, p_cost, 1, p_day, p_week, p_month, p_at)
        ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % is already reserved', p_job USING ERRCODE = 'FX001';
    END IF;
END $$;
