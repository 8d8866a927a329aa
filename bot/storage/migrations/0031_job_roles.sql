-- Reason: the spend chart by role (issue 24 item 6). jobs.role_ids: the member's role ids when they asked
-- (from the interaction, space-separated; '' for none beyond @everyone), so `/budget report by:role` can
-- attribute each job's spend without asking Discord for members (the bot has no member intent). NULL:
-- a job admitted before this migration (the report shows it as "roles not recorded").

ALTER TABLE jobs ADD COLUMN role_ids TEXT;
