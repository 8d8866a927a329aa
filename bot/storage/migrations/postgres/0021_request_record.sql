-- Reason: a job keeps the request it was admitted with (issue 23 item 1): the JSON record of
-- bot.models.GenerationRequest.to_record() (model, prompt, size, seed, options, input images, style,
-- the applied safety tolerance). Reroll, Final and the fallback derive their request from it, never from
-- the BFL payload in params. NULL for jobs admitted before this column: their record is derived once
-- from the old columns and params (bot.models.derive.legacy_record); erasure sets it to NULL too.

ALTER TABLE jobs ADD COLUMN request TEXT;
