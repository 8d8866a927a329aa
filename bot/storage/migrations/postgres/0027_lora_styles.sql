-- Reason: House LoRAs (issue 26 item 4). A server style may be backed by a FLUX.2 [klein] LoRA from the
-- server owner's BFL dashboard: `/style add lora:<finetune_id> strength:<0-2>`. All three NULL: a
-- template-only style (every style before this migration); all three set: a LoRA style.
-- lora_id: BFL's finetune_id; lora_strength: finetune_strength, 0-2; lora_route: the klein `-finetuned`
-- route the LoRA was trained for (a model table key, e.g. flux-2-klein-9b-finetuned).
-- PostgreSQL version of migrations/0027_lora_styles.sql.

ALTER TABLE server_styles ADD COLUMN lora_id TEXT;
ALTER TABLE server_styles ADD COLUMN lora_strength DOUBLE PRECISION CHECK (lora_strength BETWEEN 0 AND 2);
ALTER TABLE server_styles ADD COLUMN lora_route TEXT;
