-- 003_receipts.sql: read and delivered marks. Marks only move forward and never
-- past the room's last_seq; unread is rooms.last_seq - members.last_read_seq (O(1)).

-- Moves p_user's read mark in p_room to p_seq, or, when p_ids is not NULL, to the
-- largest seq among those message ids that belong to the room. status: 'ok',
-- 'not_found' (no room) or 'forbidden' (not a member). moved: the mark advanced.
CREATE FUNCTION natter_read(p_app text, p_room text, p_user text, p_seq bigint, p_ids text[],
                            OUT status text, OUT o_last_read_seq bigint, OUT o_unread bigint,
                            OUT moved boolean, OUT at_text text)
LANGUAGE plpgsql AS $$
DECLARE
    v_last bigint;
    v_old  bigint;
    v_seq  bigint := coalesce(p_seq, 0);
BEGIN
    moved := false;
    SELECT r.last_seq INTO v_last FROM rooms r WHERE r.app = p_app AND r.room = p_room;
    IF NOT FOUND THEN
        status := 'not_found';
        RETURN;
    END IF;
    SELECT mb.last_read_seq INTO v_old FROM members mb
     WHERE mb.app = p_app AND mb.room = p_room AND mb.user_id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        status := 'forbidden';
        RETURN;
    END IF;
    IF p_ids IS NOT NULL THEN
        SELECT coalesce(max(m.seq), 0) INTO v_seq FROM messages m
         WHERE m.id = ANY (p_ids::uuid[]) AND m.app = p_app AND m.room = p_room;
    END IF;
    o_last_read_seq := greatest(v_old, least(v_seq, v_last));
    IF o_last_read_seq > v_old THEN
        UPDATE members mb SET last_read_seq = o_last_read_seq
         WHERE mb.app = p_app AND mb.room = p_room AND mb.user_id = p_user;
        moved := true;
    END IF;
    o_unread := greatest(v_last - o_last_read_seq, 0);
    at_text := natter_ts(clock_timestamp());
    status := 'ok';
END
$$;

-- Moves p_user's delivered mark in p_room forward to p_seq (at most last_seq).
CREATE FUNCTION natter_delivered(p_app text, p_room text, p_user text, p_seq bigint,
                                 OUT status text, OUT o_last_delivered_seq bigint,
                                 OUT moved boolean, OUT at_text text)
LANGUAGE plpgsql AS $$
DECLARE
    v_last bigint;
    v_old  bigint;
BEGIN
    moved := false;
    SELECT r.last_seq INTO v_last FROM rooms r WHERE r.app = p_app AND r.room = p_room;
    IF NOT FOUND THEN
        status := 'not_found';
        RETURN;
    END IF;
    SELECT mb.last_delivered_seq INTO v_old FROM members mb
     WHERE mb.app = p_app AND mb.room = p_room AND mb.user_id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        status := 'forbidden';
        RETURN;
    END IF;
    o_last_delivered_seq := greatest(v_old, least(p_seq, v_last));
    IF o_last_delivered_seq > v_old THEN
        UPDATE members mb SET last_delivered_seq = o_last_delivered_seq
         WHERE mb.app = p_app AND mb.room = p_room AND mb.user_id = p_user;
        moved := true;
    END IF;
    at_text := natter_ts(clock_timestamp());
    status := 'ok';
END
$$;
