-- Reason: an edit of the interaction's message whose answer was lost (a dropped connection, a 5xx) is
-- read back before the result is posted again in the channel (issue 20: "one final message per
-- request"); once the interaction's token is dead that read needs the message's own id, read through
-- the bot's token (GET /channels/{channel}/messages/{id}), which never expires. Recorded when the
-- request is acknowledged (the id is in Discord's answer); NULL when it is not known.

ALTER TABLE jobs ADD COLUMN original_message_id BIGINT;
ALTER TABLE job_groups ADD COLUMN original_message_id BIGINT;
