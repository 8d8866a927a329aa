-- Reason: one durable table for every pending offer behind a button (issue 23 item 2). The one-click
-- fallback offers (0014's `fallback_offers`) become offers of kind 'fallback' in `offers` (0022), beside
-- the price confirmations (kind 'confirm'); one store serves both (bot/offers.py). An offer pending at
-- the upgrade is copied, so its button still works; its columns become its JSON payload, in the layout
-- bot/engine/fallback.py reads ("request" stays the request's record as JSON text). json_object is
-- SQLite's JSON1 (built in since 3.38; the STRICT tables of 0001 already need 3.37, where the usual
-- builds include it).

INSERT INTO offers (id, kind, guild_id, user_id, payload, created_at, expires_at)
SELECT id, 'fallback', guild_id, user_id,
       json_object('model', model, 'request', request, 'private', private, 'images', images,
                   'source_kind', source_kind, 'source_url', source_url, 'source_job_id', source_job_id),
       created_at, expires_at
FROM fallback_offers;

DROP TABLE fallback_offers;
