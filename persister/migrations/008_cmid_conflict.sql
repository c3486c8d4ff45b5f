-- 008_cmid_conflict.sql: a client_msg_id used again for another message is a conflict.
--
-- The unique key (app, sender, client_msg_id) makes a resend return the stored row as
-- 'duplicate', and its sender gets the first message's ack. A client_msg_id reused for
-- a message to another room, or with another text, got that ack too: silently, the new
-- message was not stored. natter_post_batch now answers such a row 'conflict' (with the
-- stored row, so that the error can name it); a true resend (same room, same text)
-- stays 'duplicate'. Only duplicate rows are compared: the usual batch pays one CASE per
-- row.
ALTER FUNCTION natter_post_batch(text[], text[], text[], text[], text[], text[], text[], text[])
    RENAME TO natter_post_batch_unchecked;

CREATE FUNCTION natter_post_batch(p_app text[], p_room text[], p_sender text[], p_name text[],
                                  p_cmid text[], p_type text[], p_body text[], p_reply_to text[])
RETURNS TABLE (ord int, status text, room_id text, msg_id uuid, msg_seq bigint,
               created_at_text text)
LANGUAGE sql AS $$
    SELECT b.ord,
           CASE WHEN b.status = 'duplicate'
                 AND (b.room_id IS DISTINCT FROM p_room[b.ord]
                      OR (SELECT m.body FROM messages m WHERE m.id = b.msg_id)
                         IS DISTINCT FROM p_body[b.ord])
                THEN 'conflict' ELSE b.status END,
           b.room_id, b.msg_id, b.msg_seq, b.created_at_text
      FROM natter_post_batch_unchecked(p_app, p_room, p_sender, p_name, p_cmid, p_type, p_body,
                                       p_reply_to) b
$$;
