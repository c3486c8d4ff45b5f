-- 006_post_batch.sql: natter_post_batch, natter_post for a whole fetched batch in a
-- few set-based statements instead of one plpgsql call per message.
--
-- The arrays are parallel (element i is message i, in stream order; p_reply_to
-- elements may be NULL). One row is returned per message, in that order: ord (1-based
-- index), then natter_post's status, room_id, msg_id, msg_seq, created_at_text.
-- The result is what calling natter_post once per message in ord order would give:
--   * a (app, sender, client_msg_id) already stored is 'duplicate' with that row;
--   * within the batch, the first occurrence that may be stored wins ('ok'); later
--     occurrences are 'duplicate' with the winner's row, earlier refused ones keep
--     their own status;
--   * not a member: 'forbidden' when the room exists, else 'not_found';
--   * each room's new messages get last_seq + 1, + 2, ... in ord order (gap-free),
--     rooms.last_seq and last_activity_at are updated once per room, and each
--     sender's last_read_seq moves to their highest new seq in the room.
-- The rooms rows touched are locked first, in (app, room) order, so concurrent
-- batches (other partitions, other persisters) serialise per room without deadlock.
CREATE FUNCTION natter_post_batch(p_app text[], p_room text[], p_sender text[], p_name text[],
                                  p_cmid text[], p_type text[], p_body text[], p_reply_to text[])
RETURNS TABLE (ord int, status text, room_id text, msg_id uuid, msg_seq bigint,
               created_at_text text)
LANGUAGE plpgsql
-- Every row of a batch is found by index: rooms and members by primary key, stored
-- duplicates by the unique key. While a table is new or its statistics stale the
-- planner believes it tiny and picks sequential scans and hash joins, whose cost
-- then grows with the table (and its dead row versions: rooms rows are updated by
-- every batch), so those are switched off here. The plan is generic (built once per
-- session) rather than replanned for each call.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
BEGIN
    PERFORM 1 FROM rooms r
     WHERE (r.app, r.room) IN (SELECT u.a, u.r FROM unnest(p_app, p_room) AS u(a, r))
     ORDER BY r.app, r.room
       FOR UPDATE OF r;
    -- A new statement: its snapshot sees the last_seq of the rows just locked.
    RETURN QUERY
    WITH inp AS (
        SELECT u.i::int AS i, u.app, u.room, u.sender, u.name, u.cmid, u.typ, u.body, u.reply_to
          FROM unnest(p_app, p_room, p_sender, p_name, p_cmid, p_type, p_body, p_reply_to)
               WITH ORDINALITY AS u(app, room, sender, name, cmid, typ, body, reply_to, i)
    ), chk AS (
        -- stored duplicate (o_*), the room (base: its locked last_seq), membership
        SELECT x.*, o.room AS o_room, o.id AS o_id, o.seq AS o_seq, o.created_at AS o_at,
               r.last_seq AS base, r.room IS NOT NULL AS room_exists,
               mb.user_id IS NOT NULL AS member
          FROM inp x
          LEFT JOIN messages o
                 ON o.app = x.app AND o.sender = x.sender AND o.client_msg_id = x.cmid
          LEFT JOIN rooms r ON r.app = x.app AND r.room = x.room
          LEFT JOIN members mb
                 ON mb.app = x.app AND mb.room = x.room AND mb.user_id = x.sender
    ), win AS (
        -- win_i: the occurrence of this client_msg_id that is stored (NULL: none)
        SELECT c.*, min(c.i) FILTER (WHERE c.member AND c.o_seq IS NULL)
                        OVER (PARTITION BY c.app, c.sender, c.cmid) AS win_i
          FROM chk c
    ), num AS (
        -- the stored rows' seq (gap-free per room in ord order), id and created_at
        SELECT w.*, w.i = w.win_i AS stored,
               CASE WHEN w.i = w.win_i THEN w.base + count(*) FILTER (WHERE w.i = w.win_i)
                        OVER (PARTITION BY w.app, w.room ORDER BY w.i) END AS seq,
               CASE WHEN w.i = w.win_i THEN gen_random_uuid() END AS id,
               CASE WHEN w.i = w.win_i THEN clock_timestamp() END AS at
          FROM win w
    ), res AS MATERIALIZED (
        -- every occurrence with its winner's row (no join: windows over the batch)
        SELECT n.*,
               max(n.seq) FILTER (WHERE n.stored) OVER k AS w_seq,
               (array_agg(n.id) FILTER (WHERE n.stored) OVER k)[1] AS w_id,
               max(n.at) FILTER (WHERE n.stored) OVER k AS w_at,
               (array_agg(n.room) FILTER (WHERE n.stored) OVER k)[1] AS w_room
          FROM num n
        WINDOW k AS (PARTITION BY n.app, n.sender, n.cmid)
    ), ins AS (
        INSERT INTO messages (id, app, room, seq, sender, sender_name, client_msg_id, type,
                              body, reply_to, created_at)
        SELECT s.id, s.app, s.room, s.seq, s.sender, coalesce(s.name, ''), s.cmid, s.typ,
               s.body, s.reply_to, s.at
          FROM res s
         WHERE s.stored
         ORDER BY s.i
    ), upd_rooms AS (
        UPDATE rooms r SET last_seq = g.seq, last_activity_at = clock_timestamp()
          FROM (SELECT s.app, s.room, max(s.seq) AS seq FROM res s WHERE s.stored
                 GROUP BY s.app, s.room) g
         WHERE r.app = g.app AND r.room = g.room
    ), upd_members AS (
        UPDATE members mb SET last_read_seq = greatest(mb.last_read_seq, g.seq)
          FROM (SELECT s.app, s.room, s.sender, max(s.seq) AS seq FROM res s WHERE s.stored
                 GROUP BY s.app, s.room, s.sender) g
         WHERE mb.app = g.app AND mb.room = g.room AND mb.user_id = g.sender
    )
    SELECT s.i,
           CASE WHEN s.o_seq IS NOT NULL THEN 'duplicate'
                WHEN s.stored THEN 'ok'
                WHEN s.i > s.win_i THEN 'duplicate'
                WHEN s.room_exists THEN 'forbidden'
                ELSE 'not_found' END,
           CASE WHEN s.o_seq IS NOT NULL THEN s.o_room
                WHEN s.i >= s.win_i THEN s.w_room
                ELSE s.room END,
           CASE WHEN s.o_seq IS NOT NULL THEN s.o_id WHEN s.i >= s.win_i THEN s.w_id END,
           CASE WHEN s.o_seq IS NOT NULL THEN s.o_seq WHEN s.i >= s.win_i THEN s.w_seq END,
           -- natter_ts, written out: a call per row is not inlined (to_char is stable)
           to_char(CASE WHEN s.o_seq IS NOT NULL THEN s.o_at
                        WHEN s.i >= s.win_i THEN s.w_at END AT TIME ZONE 'UTC',
                   'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
      FROM res s
     ORDER BY s.i;
END
$$;
