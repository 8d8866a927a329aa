-- Reason: the engine as a reconciler (issue 20). Every open job is driven to its end by any live
-- process, from what its row says.
--
-- jobs.submit_started_at: the moment this job's POST to BFL was about to leave, written and committed
--   before the request is sent. A submitting job without it was never sent (it goes back to the queue,
--   nothing charged); only a job with it can become 'unknown'.
-- jobs.next_attempt_at: when the job's next step is due (a poll, a delivery retry, a 429 back-off), so
--   a waiting job costs no coroutine and its timer survives restarts.
-- jobs.attempts: how many times the job was claimed (a job that keeps failing before its POST stops).
-- jobs.delivery_attempts: failed posts of a paid result so far (back-off; given up after a bounded time).
-- job_groups.next_attempt_at: the same timer for a group's one gallery post.
-- jobs.told: the member's last message about a job that ended without its image was shown (until then
--   the interaction token is kept, at most its 15 minutes, so any process can say it).
ALTER TABLE jobs ADD COLUMN submit_started_at BIGINT;
ALTER TABLE jobs ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN delivery_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN told INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_untold ON jobs (created_at) WHERE told = 0 AND interaction_token IS NOT NULL;
ALTER TABLE job_groups ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE job_groups ADD COLUMN post_attempts INTEGER NOT NULL DEFAULT 0;
