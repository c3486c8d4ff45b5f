-- 001_init.sql: rooms, members, messages, partitions and the per-message write logic.

CREATE TABLE rooms (
    app              text        NOT NULL,
    room             text        NOT NULL,
    kind             text        NOT NULL DEFAULT 'room' CHECK (kind IN ('room', 'dm')),
    visibility       text        NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'private')),
    name             text,
    owner            text,
    access_code_hash text,       -- hex sha256 of the access code, NULL when none
    last_seq         bigint      NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_activity_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (app, room)
);

CREATE TABLE members (
    app                text        NOT NULL,
    room               text        NOT NULL,
    user_id            text        NOT NULL,
    role               text        NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    last_read_seq      bigint      NOT NULL DEFAULT 0,
    last_delivered_seq bigint      NOT NULL DEFAULT 0,
    joined_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (app, room, user_id),
    FOREIGN KEY (app, room) REFERENCES rooms (app, room) ON DELETE CASCADE
);
CREATE INDEX members_by_user ON members (app, user_id);

CREATE TABLE messages (
    app           text        NOT NULL,
    room          text        NOT NULL,
    seq           bigint      NOT NULL,
    id            uuid        NOT NULL DEFAULT gen_random_uuid(),
    sender        text        NOT NULL,
    sender_name   text        NOT NULL DEFAULT '',
    client_msg_id text        NOT NULL,
    type          text        NOT NULL DEFAULT 'text',
    body          text        NOT NULL,
    reply_to      text,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (app, room, seq),
    UNIQUE (app, sender, client_msg_id)
);
CREATE INDEX messages_by_id ON messages (id);

CREATE TABLE partitions (
    p          int    PRIMARY KEY,
    stream_seq bigint NOT NULL DEFAULT 0   -- last NATTER_IN sequence committed for p
);

-- RFC 3339 UTC with milliseconds, the timestamp format of every client event.
CREATE FUNCTION natter_ts(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- Takes partition p for this session (advisory lock (0x6e6174, p)) and returns
-- its committed stream sequence, or NULL when another session owns it.
CREATE FUNCTION natter_claim(p_part int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
BEGIN
    IF NOT pg_try_advisory_lock(7233908, p_part) THEN
        RETURN NULL;
    END IF;
    INSERT INTO partitions (p, stream_seq) VALUES (p_part, 0) ON CONFLICT (p) DO NOTHING;
    SELECT pt.stream_seq INTO v_seq FROM partitions pt WHERE pt.p = p_part;
    RETURN v_seq;
END
$$;

-- Stores one message. status: 'ok' (stored), 'duplicate' (the first row for this
-- client_msg_id is returned), 'not_found' (no such room), 'forbidden' (sender
-- not a member). The rooms row lock serialises seq assignment per room.
CREATE FUNCTION natter_post(p_app text, p_room text, p_sender text, p_name text, p_cmid text,
                            p_type text, p_body text, p_reply_to text,
                            OUT status text, OUT room_id text, OUT msg_id uuid,
                            OUT msg_seq bigint, OUT created_at_text text)
LANGUAGE plpgsql AS $$
DECLARE
    v_at timestamptz;
BEGIN
    SELECT m.room, m.id, m.seq, m.created_at INTO room_id, msg_id, msg_seq, v_at
      FROM messages m
     WHERE m.app = p_app AND m.sender = p_sender AND m.client_msg_id = p_cmid;
    IF FOUND THEN
        status := 'duplicate';
        created_at_text := natter_ts(v_at);
        RETURN;
    END IF;
    room_id := p_room;
    PERFORM 1 FROM members mb WHERE mb.app = p_app AND mb.room = p_room AND mb.user_id = p_sender;
    IF NOT FOUND THEN
        PERFORM 1 FROM rooms r WHERE r.app = p_app AND r.room = p_room;
        status := CASE WHEN FOUND THEN 'forbidden' ELSE 'not_found' END;
        RETURN;
    END IF;
    UPDATE rooms r SET last_seq = r.last_seq + 1, last_activity_at = clock_timestamp()
     WHERE r.app = p_app AND r.room = p_room
    RETURNING r.last_seq INTO msg_seq;
    IF NOT FOUND THEN
        status := 'not_found';
        RETURN;
    END IF;
    INSERT INTO messages (app, room, seq, sender, sender_name, client_msg_id, type, body, reply_to)
    VALUES (p_app, p_room, msg_seq, p_sender, coalesce(p_name, ''), p_cmid, p_type, p_body, p_reply_to)
    RETURNING messages.id, messages.created_at INTO msg_id, v_at;
    UPDATE members mb SET last_read_seq = greatest(mb.last_read_seq, msg_seq)
     WHERE mb.app = p_app AND mb.room = p_room AND mb.user_id = p_sender;
    status := 'ok';
    created_at_text := natter_ts(v_at);
END
$$;

-- Makes p_user a member of p_room. A missing room is created public with p_user
-- as owner; a private room admits only existing members or the right access code.
-- A new member starts with nothing unread. status: 'ok' or 'forbidden'.
CREATE FUNCTION natter_join(p_app text, p_room text, p_user text, p_name text, p_access_code text,
                            OUT status text, OUT last_seq bigint, OUT last_read_seq bigint,
                            OUT unread bigint, OUT created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_vis  text;
    v_hash text;
BEGIN
    INSERT INTO rooms (app, room, kind, visibility, name, owner)
    VALUES (p_app, p_room, 'room', 'public', p_room, p_user)
    ON CONFLICT (app, room) DO NOTHING;
    created := FOUND;
    SELECT r.visibility, r.access_code_hash, r.last_seq INTO v_vis, v_hash, last_seq
      FROM rooms r WHERE r.app = p_app AND r.room = p_room;
    SELECT mb.last_read_seq INTO last_read_seq
      FROM members mb WHERE mb.app = p_app AND mb.room = p_room AND mb.user_id = p_user;
    IF NOT FOUND THEN
        IF v_vis = 'private' AND NOT (p_access_code IS NOT NULL AND v_hash IS NOT NULL
               AND v_hash = encode(sha256(convert_to(p_access_code, 'UTF8')), 'hex')) THEN
            status := 'forbidden';
            RETURN;
        END IF;
        INSERT INTO members (app, room, user_id, role, last_read_seq, last_delivered_seq)
        VALUES (p_app, p_room, p_user, CASE WHEN created THEN 'owner' ELSE 'member' END,
                last_seq, last_seq)
        ON CONFLICT (app, room, user_id) DO NOTHING;
        SELECT mb.last_read_seq INTO last_read_seq
          FROM members mb WHERE mb.app = p_app AND mb.room = p_room AND mb.user_id = p_user;
    END IF;
    unread := greatest(last_seq - last_read_seq, 0);
    status := 'ok';
END
$$;

-- May p_user read p_room? 'ok', 'not_found', or 'forbidden' (private, not a member).
CREATE FUNCTION natter_room_access(p_app text, p_room text, p_user text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT CASE
                    WHEN r.visibility = 'public' THEN 'ok'
                    WHEN EXISTS (SELECT 1 FROM members mb
                                  WHERE mb.app = p_app AND mb.room = p_room AND mb.user_id = p_user)
                        THEN 'ok'
                    ELSE 'forbidden'
                END
           FROM rooms r WHERE r.app = p_app AND r.room = p_room),
        'not_found')
$$;
