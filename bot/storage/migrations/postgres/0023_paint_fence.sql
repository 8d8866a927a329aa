-- Reason: a progress edit sent by one process must never land after the last message another process
-- posts (issue 20: "one final message per request"). A painter stamps `painting_until` (unix ms, by the
-- database's clock) on the job's row, or on its group's row for a group's one line, before each edit
-- and clears it after; the poster of the last message waits until no stamp is current
-- (bot/engine/paint_fence.py). NULL: nobody is painting.

ALTER TABLE jobs ADD COLUMN painting_until BIGINT;
ALTER TABLE job_groups ADD COLUMN painting_until BIGINT;
