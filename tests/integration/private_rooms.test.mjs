// private_rooms.test.mjs — done-when 6 of issue 3: private rooms refuse non-members
// (subscribe, history over WS and REST, send), access codes, create_room, app
// isolation (docs/security.md, "Threat model"), the sender id is always the token's
// sub; direct messages (dm.<user>) and member_joined / member_left events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom, waitUntil } from './lib/cluster.mjs';

const c = useCluster({ env: { NATTER_UNREAD_FLUSH_MS: '100' } });

const errorOf = async (cl, action, channel, data) => {
  const ev = await cl.request(action, channel, data);
  assert.equal(ev.event, 'error', `${action} ${channel ?? ''}: expected an error, got ${JSON.stringify(ev)}`);
  return ev.data;
};

test('create_room private: members admitted, non-members refused everywhere', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('priv');
  const ch = `room.${room}`;
  const owner = await c.client(0, 'p-owner');
  const member = await c.client(1, 'p-member');
  const outsider = await c.client(1, 'p-outsider');

  const ack = await owner.ack('create_room', undefined, { room_id: room, name: 'Secret', visibility: 'private', members: ['p-member'] });
  assert.deepEqual(ack, { room_id: room });
  const rows = await c.query('SELECT kind, visibility, owner, name FROM rooms WHERE room = $1', [room]);
  assert.deepEqual(rows, [{ kind: 'room', visibility: 'private', owner: 'p-owner', name: 'Secret' }]);
  const roles = await c.query('SELECT user_id, role FROM members WHERE room = $1 ORDER BY user_id', [room]);
  assert.deepEqual(roles, [{ user_id: 'p-member', role: 'member' }, { user_id: 'p-owner', role: 'owner' }]);

  // the creator is not subscribed by create_room
  const dup = await errorOf(owner, 'create_room', undefined, { room_id: room, visibility: 'public' });
  assert.equal(dup.code, 'bad_request');
  assert.equal(dup.message, `room ${room} already exists`);

  await owner.subscribe(ch);
  const sub = await member.subscribe(ch);
  assert.equal(sub.room_id, room);
  await owner.ack('send_message', ch, { message: 'for members only', client_msg_id: 'p1' });
  await member.next((e) => e.event === 'message' && e.data?.room_id === room);

  const e1 = await errorOf(outsider, 'subscribe', ch);
  assert.deepEqual(e1, { code: 'forbidden', message: `room ${room} is private` });
  const e2 = await errorOf(outsider, 'history', ch, {});
  assert.equal(e2.code, 'forbidden');
  const rest = await c.http(1, 'GET', `/api/rooms/${room}/messages`, { token: c.token('p-outsider') });
  assert.equal(rest.status, 403, rest.text);
  const restOk = await c.http(1, 'GET', `/api/rooms/${room}/messages`, { token: c.token('p-member') });
  assert.equal(restOk.status, 200, restOk.text);
  // Who is online / typing in a private room is for members only, over REST too.
  for (const what of ['online', 'typing']) {
    const no = await c.http(0, 'GET', `/api/rooms/${room}/${what}`, { token: c.token('p-outsider') });
    assert.equal(no.status, 403, `${what}: ${no.text}`);
    const yes = await c.http(0, 'GET', `/api/rooms/${room}/${what}`, { token: c.token('p-member') });
    assert.equal(yes.status, 200, `${what}: ${yes.text}`);
    if (what === 'online') assert.ok(JSON.parse(yes.text).users.some((u) => u.user_id === 'p-member'));
    const none = await c.http(0, 'GET', `/api/rooms/no-such-room-${room}/${what}`, { token: c.token('p-member') });
    assert.equal(none.status, 404, `${what}: ${none.text}`);
  }
  const e3 = await errorOf(outsider, 'send_message', ch, { message: 'let me in' });
  assert.equal(e3.code, 'forbidden');
  const stored = await c.query('SELECT body FROM messages WHERE room = $1', [room]);
  assert.deepEqual(stored.map((r) => r.body), ['for members only']);
  assert.equal(outsider.all((e) => e.event === 'message').length, 0);
});

test('access codes: wrong refused, right admits; stored hashed', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('code');
  const ch = `room.${room}`;
  const owner = await c.client(0, 'k-owner');
  const guest = await c.client(1, 'k-guest');
  await owner.ack('create_room', undefined, { room_id: room, visibility: 'private', access_code: 'open sesame' });
  const [row] = await c.query('SELECT access_code_hash FROM rooms WHERE room = $1', [room]);
  assert.ok(row.access_code_hash && !row.access_code_hash.includes('open sesame'));
  assert.match(row.access_code_hash, /^\$2[abxy]\$/, 'bcrypt (pgcrypto crypt)');

  assert.deepEqual(await errorOf(guest, 'subscribe', ch, { access_code: 'open sesamE' }),
    { code: 'forbidden', message: 'wrong access code' });
  assert.deepEqual(await errorOf(guest, 'subscribe', ch),
    { code: 'forbidden', message: `room ${room} is private` });
  const ok = await guest.subscribe(ch, { access_code: 'open sesame' });
  assert.equal(ok.room_id, room);
  // a member now: history and send work, and a re-subscribe needs no code
  await guest.ack('history', ch, {});
  await guest.ack('send_message', ch, { message: 'hi', client_msg_id: 'k1' });
  await guest.ack('unsubscribe', ch);
  await guest.subscribe(ch);

  const bad = await errorOf(owner, 'create_room', undefined, { visibility: 'private', access_code: 'abc' });
  assert.equal(bad.code, 'bad_request');
  const pub = await errorOf(owner, 'create_room', undefined, { visibility: 'public', access_code: 'abcd' });
  assert.equal(pub.code, 'bad_request');
  const gen = await owner.ack('create_room', undefined, { visibility: 'public' });
  assert.match(gen.room_id, /^[A-Za-z0-9_-]{1,64}$/);
});

test('apps are isolated: same room id and same user id in apps a and b', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('iso');
  const ch = `room.${room}`;
  const inA = await c.client(0, 'iso-user', { app: 'a' });
  const inB = await c.client(1, 'iso-user', { app: 'b' });
  const otherB = await c.client(0, 'iso-other', { app: 'b' });
  await inA.subscribe(ch);
  await inB.subscribe(ch);
  await otherB.subscribe(ch);
  await otherB.ack('send_message', ch, { message: 'only in b', client_msg_id: 'iso-b1' });
  await inB.next((e) => e.event === 'message' && e.data?.message === 'only in b');
  // a's marker message arrives after anything b could have leaked on the same path
  await inA.ack('send_message', ch, { message: 'marker in a', client_msg_id: 'iso-a1' });
  await inA.next((e) => e.event === 'message' && e.data?.message === 'marker in a');
  assert.deepEqual(inA.all((e) => e.event === 'message').map((e) => e.data.message), ['marker in a']);
  const hist = await inA.ack('history', ch, {});
  assert.deepEqual(hist.messages.map((m) => m.message), ['marker in a']);
  const restA = await c.http(0, 'GET', `/api/rooms/${room}/messages`, { token: c.token('iso-user', { app: 'a' }) });
  assert.equal(restA.status, 200, restA.text);
  assert.ok(!restA.text.includes('only in b'));

  // same user id in both apps are different users: iso-user is a member of b's
  // private room; in a, the same id opens a's own (new, public) room of that id.
  const privB = uniqueRoom('isop');
  const chB = `room.${privB}`;
  const ownerB = await c.client(1, 'iso-owner', { app: 'b' });
  await ownerB.ack('create_room', undefined, { room_id: privB, visibility: 'private', members: ['iso-user'] });
  await ownerB.subscribe(chB);
  await inB.subscribe(chB);
  const subA = await inA.subscribe(chB);
  assert.equal(subA.last_seq, 0);
  await ownerB.ack('send_message', chB, { message: 'private in b', client_msg_id: 'iso-b2' });
  await inB.next((e) => e.event === 'message' && e.data?.message === 'private in b');
  await inA.ack('send_message', chB, { message: 'public in a', client_msg_id: 'iso-a2' });
  await inA.next((e) => e.event === 'message' && e.data?.message === 'public in a');
  assert.ok(!inA.all((e) => e.event === 'message').some((e) => e.data.message.includes('in b')));
  const rows = await c.query(
    'SELECT r.app, r.visibility, m.user_id, m.role FROM rooms r JOIN members m ON m.app = r.app AND m.room = r.room' +
    ' WHERE r.room = $1 ORDER BY r.app, m.user_id', [privB]);
  assert.deepEqual(rows, [
    { app: 'a', visibility: 'public', user_id: 'iso-user', role: 'owner' },
    { app: 'b', visibility: 'private', user_id: 'iso-owner', role: 'owner' },
    { app: 'b', visibility: 'private', user_id: 'iso-user', role: 'member' },
  ]);
  const msgs = await c.query('SELECT app, sender, body FROM messages WHERE room = $1 ORDER BY app', [privB]);
  assert.deepEqual(msgs, [{ app: 'a', sender: 'iso-user', body: 'public in a' }, { app: 'b', sender: 'iso-owner', body: 'private in b' }]);
  // and an outsider of b is refused b's private room while a's user of the same id is not b's member
  const outsiderB = await c.client(0, 'iso-out', { app: 'b' });
  assert.equal((await errorOf(outsiderB, 'subscribe', chB)).code, 'forbidden');
});

test('the stored sender is the token sub, whatever the frame claims', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('forge');
  const ch = `room.${room}`;
  const mallory = await c.client(0, 'mallory');
  const watcher = await c.client(1, 'watcher');
  await mallory.subscribe(ch);
  await watcher.subscribe(ch);
  await mallory.ack('send_message', ch, { message: 'forged', client_msg_id: 'f1', sender_id: 'alice', sender: 'alice', user_id: 'alice', sender_name: 'Alice' },
    { extra: { sender_id: 'alice', user_id: 'alice' } });
  const ev = await watcher.next((e) => e.event === 'message' && e.data?.room_id === room);
  assert.equal(ev.data.sender_id, 'mallory');
  const rows = await c.query('SELECT sender FROM messages WHERE room = $1', [room]);
  assert.deepEqual(rows, [{ sender: 'mallory' }]);
});

test('direct messages: dm.<user> without subscribing; both members, unread for the receiver', { timeout: 60_000 }, async () => {
  const alice = await c.client(0, 'dm-alice');
  const bob = await c.client(1, 'dm-bob');
  const eve = await c.client(1, 'dm-eve');
  const subB = await bob.subscribe('dm.dm-alice');
  assert.match(subB.room_id, /^dm_[0-9a-f]{30}$/);
  const room = subB.room_id;

  const self = await errorOf(alice, 'subscribe', 'dm.dm-alice');
  assert.equal(self.code, 'bad_request');

  const ack = await alice.ack('send_message', 'dm.dm-bob', { message: 'hello bob', client_msg_id: 'dm1' });
  assert.equal(ack.room_id, room, 'both sides map to the same room');
  const ev = await bob.next((e) => e.event === 'message' && e.data?.room_id === room);
  assert.equal(ev.channel, `room.${room}`);
  assert.equal(ev.data.sender_id, 'dm-alice');
  assert.equal(ev.data.message, 'hello bob');

  const members = await c.query('SELECT user_id FROM members WHERE room = $1 ORDER BY user_id', [room]);
  assert.deepEqual(members.map((r) => r.user_id), ['dm-alice', 'dm-bob']);
  const [kind] = await c.query('SELECT kind, visibility FROM rooms WHERE room = $1', [room]);
  assert.deepEqual(kind, { kind: 'dm', visibility: 'private' });

  await waitUntil(() => bob.all((e) => e.event === 'unread' && e.data?.rooms?.[room] === 1).length > 0,
    { what: 'bob: unread 1 in the dm' });
  const ua = await c.http(0, 'GET', '/api/me/unread', { token: c.token('dm-alice') });
  assert.equal(ua.json.rooms[room], 0, 'the sender has read its own message');
  const ub = await c.http(1, 'GET', '/api/me/unread', { token: c.token('dm-bob') });
  assert.equal(ub.json.rooms[room], 1);
  // bob answers on dm.dm-alice; alice sees it in history of dm.dm-bob
  await bob.ack('send_message', 'dm.dm-alice', { message: 'hi alice', client_msg_id: 'dm2' });
  const h = await alice.ack('history', 'dm.dm-bob', {});
  assert.deepEqual(h.messages.map((m) => m.message), ['hello bob', 'hi alice']);
  await waitUntil(() => alice.all((e) => e.event === 'unread' && e.data?.rooms?.[room] === 1).length > 0,
    { what: 'alice: unread 1 in the dm' });

  // a third user cannot get in by the room id, nor post or read
  assert.deepEqual(await errorOf(eve, 'subscribe', `room.${room}`), { code: 'forbidden', message: `room ${room} is private` });
  assert.equal((await errorOf(eve, 'history', `room.${room}`, {})).code, 'forbidden');
  assert.equal((await c.http(1, 'GET', `/api/rooms/${room}/messages`, { token: c.token('dm-eve') })).status, 403);
  const eveRoom = await eve.subscribe('dm.dm-alice');
  assert.notEqual(eveRoom.room_id, room);
});

test('member_joined / member_left reach existing subscribers; a re-subscribe is not a join', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('mem');
  const ch = `room.${room}`;
  const owner = await c.client(0, 'm-owner');
  const listed = await c.client(1, 'm-listed', { name: 'Listed' });
  const newcomer = await c.client(1, 'm-new', { name: 'New Comer' });
  await owner.ack('create_room', undefined, { room_id: room, visibility: 'public', members: ['m-listed'] });
  await owner.subscribe(ch);
  await listed.subscribe(ch);              // already a member: no member_joined
  await newcomer.subscribe(ch);
  const joined = await owner.next((e) => e.event === 'member_joined' && e.data?.room_id === room);
  assert.deepEqual(joined, { event: 'member_joined', channel: ch, data: { room_id: room, user_id: 'm-new', name: 'New Comer' } });
  await newcomer.ack('leave', ch);
  const left = await owner.next((e) => e.event === 'member_left' && e.data?.room_id === room);
  assert.deepEqual(left.data, { room_id: room, user_id: 'm-new', name: 'New Comer' });
  await listed.next((e) => e.event === 'member_left' && e.data?.room_id === room);
  assert.deepEqual(owner.all((e) => e.event === 'member_joined' && e.data?.room_id === room).map((e) => e.data.user_id), ['m-new']);
});
