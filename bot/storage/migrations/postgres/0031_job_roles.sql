-- Reason: the spend chart by role (issue 24 item 6): the member's role ids on each job, recorded at
-- admission. PostgreSQL version of migrations/0031_job_roles.sql.

ALTER TABLE jobs ADD COLUMN role_ids TEXT;
