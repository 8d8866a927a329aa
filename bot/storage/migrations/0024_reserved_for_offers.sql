-- Reason: intentionally empty, and only on the branch feat24/soak: number 0024 belongs to another part
-- of issue 23 (one offers table), developed in parallel; this stand-in keeps the numbers contiguous so
-- 0025 applies here. DELETE THIS FILE when merging with the real 0024 (never release it).
SELECT 1;
