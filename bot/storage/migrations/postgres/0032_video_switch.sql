-- Reason: FLUX 3 video (issue 26 item 5, Animate) is behind a per-server switch, `/safety video allowed:`,
-- off by default since video is the most expensive thing the bot can make.
-- PostgreSQL version of migrations/0032_video_switch.sql.

ALTER TABLE safety_settings ADD COLUMN video INTEGER NOT NULL DEFAULT 0 CHECK (video IN (0, 1));
