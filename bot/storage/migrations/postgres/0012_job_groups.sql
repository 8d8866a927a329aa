-- Reason: placeholder reserving this number while the work is in progress; replaced before landing.
SELECT 1;
