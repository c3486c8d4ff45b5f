-- 002_resume_batch.sql: remember where the last committed batch of each partition
-- began, so a new owner replays that batch. A persister that died between its
-- COMMIT and publishing the batch's acks and room events left them unpublished;
-- the replay goes through natter_post's duplicate path and publishes them.

ALTER TABLE partitions ADD COLUMN batch_start bigint NOT NULL DEFAULT 0;

-- Takes partition p for this session (advisory lock (0x6e6174, p)) and returns
-- the stream sequence to resume after, or NULL when another session owns it.
CREATE OR REPLACE FUNCTION natter_claim(p_part int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
BEGIN
    IF NOT pg_try_advisory_lock(7233908, p_part) THEN
        RETURN NULL;
    END IF;
    INSERT INTO partitions (p, stream_seq) VALUES (p_part, 0) ON CONFLICT (p) DO NOTHING;
    SELECT CASE WHEN pt.batch_start > 0 THEN pt.batch_start - 1 ELSE pt.stream_seq END
      INTO v_seq FROM partitions pt WHERE pt.p = p_part;
    RETURN v_seq;
END
$$;
