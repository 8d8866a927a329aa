-- Reason: the priority lane (issue 24 item 3). guild_settings.priority_role_id: the role whose members'
-- jobs are claimed before the server's other jobs (`/budget priority`; NULL: none). jobs.priority: 1 when
-- the member had that role at admission, recorded on the row so the claim never needs Discord. The order
-- between servers is unchanged: the flag is read only after the server is chosen (bot/engine/claim.py).

ALTER TABLE guild_settings ADD COLUMN priority_role_id INTEGER;
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
