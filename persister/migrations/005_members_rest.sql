-- 005_members_rest.sql: adding and removing room members over REST
-- (POST /api/rooms/{id}/members, DELETE /api/rooms/{id}/members/{user}).
--
-- The actor may change membership when it is the room's owner or admin
-- (members.role) or when its token has role admin in the room's app
-- (p_actor_admin, checked by the gateway); any user may remove themselves.
-- Direct-message rooms only allow removing oneself, or an app admin.

-- Adds p_user to p_room with nothing unread. status: 'ok' (added), 'noop'
-- (already a member), 'forbidden' or 'not_found' (no such room).
CREATE FUNCTION natter_add_member(p_app text, p_room text, p_actor text, p_actor_admin boolean,
                                  p_user text, OUT status text)
LANGUAGE plpgsql AS $$
DECLARE
    v_kind text;
    v_last bigint;
BEGIN
    SELECT r.kind, r.last_seq INTO v_kind, v_last FROM rooms r
     WHERE r.app = p_app AND r.room = p_room;
    IF NOT FOUND THEN
        status := 'not_found';
        RETURN;
    END IF;
    IF v_kind = 'dm' OR NOT (p_actor_admin OR EXISTS (
            SELECT 1 FROM members mb WHERE mb.app = p_app AND mb.room = p_room
               AND mb.user_id = p_actor AND mb.role IN ('owner', 'admin'))) THEN
        status := 'forbidden';
        RETURN;
    END IF;
    INSERT INTO members (app, room, user_id, role, last_read_seq, last_delivered_seq)
    VALUES (p_app, p_room, p_user, 'member', v_last, v_last)
    ON CONFLICT (app, room, user_id) DO NOTHING;
    status := CASE WHEN FOUND THEN 'ok' ELSE 'noop' END;
END
$$;

-- Removes p_user from p_room. status: 'ok' (removed; name is the display name
-- the member joined with), 'noop' (not a member), 'forbidden' or 'not_found'.
CREATE FUNCTION natter_remove_member(p_app text, p_room text, p_actor text, p_actor_admin boolean,
                                     p_user text, OUT status text, OUT name text)
LANGUAGE plpgsql AS $$
DECLARE
    v_kind text;
BEGIN
    SELECT r.kind INTO v_kind FROM rooms r WHERE r.app = p_app AND r.room = p_room;
    IF NOT FOUND THEN
        status := 'not_found';
        RETURN;
    END IF;
    IF NOT (p_actor_admin OR p_actor = p_user OR (v_kind = 'room' AND EXISTS (
            SELECT 1 FROM members mb WHERE mb.app = p_app AND mb.room = p_room
               AND mb.user_id = p_actor AND mb.role IN ('owner', 'admin')))) THEN
        status := 'forbidden';
        RETURN;
    END IF;
    DELETE FROM members mb WHERE mb.app = p_app AND mb.room = p_room AND mb.user_id = p_user
    RETURNING mb.name INTO name;
    status := CASE WHEN FOUND THEN 'ok' ELSE 'noop' END;
END
$$;
