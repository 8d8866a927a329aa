-- Reason: `/imagine draft:true` makes its candidates on the server's draft model when moderators chose
-- one (`/budget draft`), else on the DRAFT_MODEL setting (issue 13 item 2: "unless the server chooses another").

ALTER TABLE guild_settings ADD COLUMN draft_model TEXT;  -- NULL: the bot's DRAFT_MODEL
