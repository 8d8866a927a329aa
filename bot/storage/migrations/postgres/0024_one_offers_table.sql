-- Reason: see ../0024_one_offers_table.sql (the fallback offers move into `offers`, kind 'fallback').

INSERT INTO offers (id, kind, guild_id, user_id, payload, created_at, expires_at)
SELECT id, 'fallback', guild_id, user_id,
       json_build_object('model', model, 'request', request, 'private', private, 'images', images,
                         'source_kind', source_kind, 'source_url', source_url, 'source_job_id', source_job_id)::text,
       created_at, expires_at
FROM fallback_offers;

DROP TABLE fallback_offers;
