-- 007_post_fast.sql: natter_post_batch gets a fast path for the usual batch (every
-- room exists, every sender is a member, no client_msg_id stored before or repeated),
-- and new message ids are UUIDv7.
--
-- The fast path is one statement with no lookups of its own: the rooms UPDATE takes
-- each room's lock and returns its last_seq, the members UPDATE (the sender's read
-- mark) is the membership check, and the messages unique index is the duplicate
-- check. When any of those finds the batch is not the usual one, its subtransaction
-- is rolled back and 006's set-based statements (now natter_post_batch_general)
-- store the batch instead, with the same results as before. It saves the per-message
-- duplicate probe, rooms and members lookups and lock statement of the general path:
-- about a third of PostgreSQL's CPU per message (docs/BENCHMARKS.md).
--
-- UUIDv7 (RFC 9562: 48-bit Unix milliseconds, then random bits) instead of v4:
-- ids of new messages go to the right edge of messages_by_id instead of a random
-- leaf. They stay opaque to clients; their time part is created_at's millisecond.

-- A UUIDv7 for time t: its first 6 bytes are t in Unix milliseconds, the version
-- nibble 7, the rest random (gen_random_uuid's variant bits kept). Inlined by the
-- planner (a single volatile expression).
CREATE FUNCTION natter_uuid7(t timestamptz) RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                  PLACING substring(int8send(floor(extract(epoch FROM t) * 1000)::bigint) FROM 3)
                  FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;

ALTER TABLE messages ALTER COLUMN id SET DEFAULT natter_uuid7(clock_timestamp());

ALTER FUNCTION natter_post_batch(text[], text[], text[], text[], text[], text[], text[], text[])
    RENAME TO natter_post_batch_general;
-- The general path's ids become v7 as well: 006's definition, its one
-- gen_random_uuid() replaced (the time part is then within the row's created_at ms).
DO $$
DECLARE
    v_def text := pg_get_functiondef('natter_post_batch_general(text[], text[], text[], text[],
                                       text[], text[], text[], text[])'::regprocedure);
BEGIN
    IF v_def NOT LIKE '%THEN gen_random_uuid() END AS id%' THEN
        RAISE EXCEPTION 'natter_post_batch_general: the id expression of 006 was not found';
    END IF;
    EXECUTE replace(v_def, 'THEN gen_random_uuid() END AS id',
                    'THEN natter_uuid7(clock_timestamp()) END AS id');
END
$$;

-- Same contract as 006's natter_post_batch. Rooms are updated (locked) in (app, room)
-- order, as the general path locks them: the nested loop runs over the sorted room
-- counts.
CREATE FUNCTION natter_post_batch(p_app text[], p_room text[], p_sender text[], p_name text[],
                                  p_cmid text[], p_type text[], p_body text[], p_reply_to text[])
RETURNS TABLE (ord int, status text, room_id text, msg_id uuid, msg_seq bigint,
               created_at_text text)
LANGUAGE plpgsql
-- Index lookups only, whatever the statistics say (see 006).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    v_usual boolean;
    v_seq bigint[];
    v_id uuid[];
    v_at text[];
BEGIN
    BEGIN
        WITH inp AS (
            SELECT u.i::int AS i, u.app, u.room, u.sender, u.name, u.cmid, u.typ, u.body,
                   u.reply_to
              FROM unnest(p_app, p_room, p_sender, p_name, p_cmid, p_type, p_body, p_reply_to)
                   WITH ORDINALITY AS u(app, room, sender, name, cmid, typ, body, reply_to, i)
        ), upr AS (
            UPDATE rooms r SET last_seq = r.last_seq + c.n, last_activity_at = clock_timestamp()
              FROM (SELECT x.app, x.room, count(*) AS n FROM inp x
                     GROUP BY x.app, x.room ORDER BY x.app, x.room) c
             WHERE r.app = c.app AND r.room = c.room
            RETURNING r.app, r.room, r.last_seq - c.n AS base
        ), num AS (
            -- each message's room base without a join: the rooms' rows (i = 0) and the
            -- messages sorted together per room; then last_seq + 1, + 2, ... in ord order
            SELECT t.*, t.b + count(*) OVER (PARTITION BY t.app, t.room ORDER BY t.i) AS seq,
                   clock_timestamp() AS at
              FROM (SELECT m.*, max(m.base) OVER (PARTITION BY m.app, m.room) AS b
                      FROM (SELECT x.*, NULL::bigint AS base FROM inp x
                            UNION ALL
                            SELECT 0, u.app, u.room, NULL, NULL, NULL, NULL, NULL, NULL, u.base
                              FROM upr u) m) t
             WHERE t.i > 0
        ), ids AS (
            SELECT n.*, natter_uuid7(n.at) AS id FROM num n
        ), upm AS (
            UPDATE members mb SET last_read_seq = greatest(mb.last_read_seq, g.seq)
              FROM (SELECT d.app, d.room, d.sender, max(d.seq) AS seq FROM ids d
                     GROUP BY d.app, d.room, d.sender) g
             WHERE mb.app = g.app AND mb.room = g.room AND mb.user_id = g.sender
            RETURNING 1
        ), ins AS (
            INSERT INTO messages (id, app, room, seq, sender, sender_name, client_msg_id, type,
                                  body, reply_to, created_at)
            SELECT d.id, d.app, d.room, d.seq, d.sender, coalesce(d.name, ''), d.cmid, d.typ,
                   d.body, d.reply_to, d.at
              FROM ids d
             WHERE d.seq IS NOT NULL
             ORDER BY d.i
        )
        -- usual: every room found (every message numbered, so inserted), every
        -- (room, sender) a member; a stored or repeated client_msg_id raised already
        SELECT count(d.seq) = cardinality(p_room)
               AND (SELECT count(*) FROM upm) =
                   (SELECT count(*) FROM (SELECT DISTINCT s.app, s.room, s.sender FROM ids s) k),
               array_agg(d.seq ORDER BY d.i), array_agg(d.id ORDER BY d.i),
               array_agg(to_char(d.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                         ORDER BY d.i)
          INTO v_usual, v_seq, v_id, v_at
          FROM ids d;
        IF v_usual THEN
            RETURN QUERY
            SELECT u.i::int, 'ok'::text, u.room, u.id, u.seq, u.at
              FROM unnest(p_room, v_id, v_seq, v_at) WITH ORDINALITY AS u(room, id, seq, at, i);
            RETURN;
        END IF;
        RAISE SQLSTATE 'NTB01';    -- not the usual batch: undo, then the general path
    EXCEPTION WHEN unique_violation OR SQLSTATE 'NTB01' THEN
        NULL;
    END;
    RETURN QUERY SELECT * FROM natter_post_batch_general(p_app, p_room, p_sender, p_name,
                                                         p_cmid, p_type, p_body, p_reply_to);
END
$$;
