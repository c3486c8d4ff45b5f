-- 004_private_rooms.sql: create_room, direct-message rooms, bcrypt access codes and
-- the display name a member joined with (carried by member_left).
--
-- Access codes are stored as crypt(natter_code_key(code), gen_salt('bf', 8))
-- (pgcrypto, bcrypt with a per-room random salt) and checked with
-- crypt(key, hash) = hash inside PostgreSQL: bcrypt's cost dominates the time and
-- does not depend on how much of the code matches. The key is the hex sha256 of
-- the code, so all of a 128-character code counts (bcrypt reads 72 bytes).
-- A hash from before this migration (plain hex sha256) is still accepted.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

ALTER TABLE members ADD COLUMN name text;

CREATE FUNCTION natter_code_key(p_code text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT encode(sha256(convert_to(p_code, 'UTF8')), 'hex')
$$;

-- Does p_code open a room whose access_code_hash is p_hash?
CREATE FUNCTION natter_code_ok(p_code text, p_hash text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT p_code IS NOT NULL AND p_hash IS NOT NULL AND CASE
        WHEN p_hash LIKE '$2%' THEN crypt(natter_code_key(p_code), p_hash) = p_hash
        ELSE p_hash = natter_code_key(p_code)
    END
$$;

-- Creates p_room. status: 'ok', or 'exists' (nothing changed). The owner becomes
-- member with role owner, every user of p_members a member; all start with nothing unread.
CREATE FUNCTION natter_create(p_app text, p_room text, p_name text, p_visibility text,
                              p_owner text, p_members text[], p_access_code text,
                              OUT status text)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rooms (app, room, kind, visibility, name, owner, access_code_hash)
    VALUES (p_app, p_room, 'room', p_visibility, coalesce(p_name, p_room), p_owner,
            CASE WHEN p_access_code IS NULL THEN NULL
                 ELSE crypt(natter_code_key(p_access_code), gen_salt('bf', 8)) END)
    ON CONFLICT (app, room) DO NOTHING;
    IF NOT FOUND THEN
        status := 'exists';
        RETURN;
    END IF;
    INSERT INTO members (app, room, user_id, role)
    VALUES (p_app, p_room, p_owner, 'owner');
    INSERT INTO members (app, room, user_id, role)
    SELECT DISTINCT p_app, p_room, u, 'member' FROM unnest(coalesce(p_members, '{}')) AS u
     WHERE u <> p_owner
    ON CONFLICT (app, room, user_id) DO NOTHING;
    status := 'ok';
END
$$;

-- Finds or creates the direct-message room p_room of p_user and p_peer (kind dm,
-- private). The gateway derives p_room from the app and both ids (only those two
-- users can reach it), so both are (again, after a leave) its members; a member
-- added back starts with nothing unread. status: 'ok', or 'forbidden' when p_room
-- exists and is not a dm room.
CREATE FUNCTION natter_dm(p_app text, p_room text, p_user text, p_peer text, OUT status text)
LANGUAGE plpgsql AS $$
DECLARE
    v_last bigint;
BEGIN
    INSERT INTO rooms (app, room, kind, visibility, name, owner)
    VALUES (p_app, p_room, 'dm', 'private', NULL, NULL)
    ON CONFLICT (app, room) DO NOTHING;
    SELECT r.last_seq INTO v_last FROM rooms r
     WHERE r.app = p_app AND r.room = p_room AND r.kind = 'dm';
    IF NOT FOUND THEN
        status := 'forbidden';
        RETURN;
    END IF;
    INSERT INTO members (app, room, user_id, role, last_read_seq, last_delivered_seq)
    VALUES (p_app, p_room, p_user, 'member', v_last, v_last),
           (p_app, p_room, p_peer, 'member', v_last, v_last)
    ON CONFLICT (app, room, user_id) DO NOTHING;
    status := 'ok';
END
$$;

-- As in 001, and: ids starting with dm_ are never created here (they belong to
-- natter_dm); status 'wrong_code' when a code was given and does not match;
-- OUT joined: a new membership was created (member_joined is published).
DROP FUNCTION natter_join(text, text, text, text, text);
CREATE FUNCTION natter_join(p_app text, p_room text, p_user text, p_name text, p_access_code text,
                            OUT status text, OUT last_seq bigint, OUT last_read_seq bigint,
                            OUT unread bigint, OUT created boolean, OUT joined boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_vis  text;
    v_hash text;
BEGIN
    joined := false;
    created := false;
    IF p_room NOT LIKE 'dm\_%' THEN
        INSERT INTO rooms (app, room, kind, visibility, name, owner)
        VALUES (p_app, p_room, 'room', 'public', p_room, p_user)
        ON CONFLICT (app, room) DO NOTHING;
        created := FOUND;
    END IF;
    SELECT r.visibility, r.access_code_hash, r.last_seq INTO v_vis, v_hash, last_seq
      FROM rooms r WHERE r.app = p_app AND r.room = p_room;
    IF NOT FOUND THEN
        status := 'forbidden';
        RETURN;
    END IF;
    SELECT mb.last_read_seq INTO last_read_seq
      FROM members mb WHERE mb.app = p_app AND mb.room = p_room AND mb.user_id = p_user;
    IF NOT FOUND THEN
        IF v_vis = 'private' AND NOT natter_code_ok(p_access_code, v_hash) THEN
            status := CASE WHEN p_access_code IS NOT NULL AND v_hash IS NOT NULL
                           THEN 'wrong_code' ELSE 'forbidden' END;
            RETURN;
        END IF;
        INSERT INTO members (app, room, user_id, role, last_read_seq, last_delivered_seq, name)
        VALUES (p_app, p_room, p_user, CASE WHEN created THEN 'owner' ELSE 'member' END,
                last_seq, last_seq, p_name)
        ON CONFLICT (app, room, user_id) DO NOTHING;
        joined := FOUND;
        SELECT mb.last_read_seq INTO last_read_seq
          FROM members mb WHERE mb.app = p_app AND mb.room = p_room AND mb.user_id = p_user;
    ELSIF p_name IS NOT NULL THEN
        UPDATE members mb SET name = p_name
         WHERE mb.app = p_app AND mb.room = p_room AND mb.user_id = p_user
           AND mb.name IS DISTINCT FROM p_name;
    END IF;
    unread := greatest(last_seq - last_read_seq, 0);
    status := 'ok';
END
$$;
