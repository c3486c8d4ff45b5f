// rooms_rest.test.mjs — the REST room calls: POST /api/rooms (as create_room),
// POST /api/rooms/{id}/members and DELETE /api/rooms/{id}/members/{user}
// (owner, room admin or app admin; anyone may remove themselves), with
// member_joined / member_left reaching subscribers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom, waitUntil, sleep } from './lib/cluster.mjs';

const MEMBER_EVENTS_MAX = 3;     // rooms with more members get no member_joined / member_left
const c = useCluster({ env: { NATTER_MEMBER_EVENTS_ROOM_MAX: String(MEMBER_EVENTS_MAX) } });

const errorOf = async (cl, action, channel, data) => {
  const ev = await cl.request(action, channel, data);
  assert.equal(ev.event, 'error', `${action} ${channel ?? ''}: expected an error, got ${JSON.stringify(ev)}`);
  return ev.data;
};

test('POST /api/rooms creates a room like create_room', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('rc');
  const tok = c.token('rc-owner');
  const r = await c.http(0, 'POST', '/api/rooms', { token: tok, body: { room_id: room, name: 'Rest', visibility: 'public', members: ['rc-a'] } });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(r.json, { room_id: room });
  const roles = await c.query('SELECT user_id, role FROM members WHERE room = $1 ORDER BY user_id', [room]);
  assert.deepEqual(roles, [{ user_id: 'rc-a', role: 'member' }, { user_id: 'rc-owner', role: 'owner' }]);
  const [row] = await c.query('SELECT name, visibility, owner FROM rooms WHERE room = $1', [room]);
  assert.deepEqual(row, { name: 'Rest', visibility: 'public', owner: 'rc-owner' });

  const dup = await c.http(1, 'POST', '/api/rooms', { token: tok, body: { room_id: room, visibility: 'public' } });
  assert.equal(dup.status, 400, dup.text);
  assert.deepEqual(dup.json.error, { code: 'bad_request', message: `room ${room} already exists` });

  const gen = await c.http(0, 'POST', '/api/rooms', { token: tok, body: { visibility: 'private' } });
  assert.equal(gen.status, 201, gen.text);
  assert.match(gen.json.room_id, /^[A-Za-z0-9_-]{1,64}$/);

  for (const body of [{}, { visibility: 'secret' }, { visibility: 'public', access_code: 'abcd' },
    { visibility: 'private', room_id: 'bad id!' }, { visibility: 'private', room_id: 'dm_x' },
    { visibility: 'private', members: ['ok', 'not ok'] }]) {
    const bad = await c.http(0, 'POST', '/api/rooms', { token: tok, body });
    assert.equal(bad.status, 400, `${JSON.stringify(body)}: ${bad.text}`);
    assert.equal(bad.json.error.code, 'bad_request');
  }
  const notObj = await c.http(0, 'POST', '/api/rooms', { token: tok, body: [1] });
  assert.equal(notObj.status, 400, notObj.text);
  const noTok = await c.http(0, 'POST', '/api/rooms', { body: { visibility: 'public' } });
  assert.equal(noTok.status, 401, noTok.text);
  assert.equal(noTok.json.error.code, 'unauthorized');
});

test('owner adds and removes members over REST; events; non-owners refused', { timeout: 90_000 }, async () => {
  const room = uniqueRoom('rm');
  const ch = `room.${room}`;
  const ownerTok = c.token('rm-owner');
  const created = await c.http(0, 'POST', '/api/rooms', { token: ownerTok, body: { room_id: room, visibility: 'private', access_code: 'let me in' } });
  assert.equal(created.status, 201, created.text);

  const owner = await c.client(0, 'rm-owner');
  await owner.subscribe(ch);
  const guest = await c.client(1, 'rm-guest');
  assert.deepEqual(await errorOf(guest, 'subscribe', ch), { code: 'forbidden', message: `room ${room} is private` });

  const add = await c.http(1, 'POST', `/api/rooms/${room}/members`, { token: ownerTok, body: { user_id: 'rm-guest' } });
  assert.equal(add.status, 200, add.text);
  assert.deepEqual(add.json, { room_id: room, user_id: 'rm-guest', added: true });
  const joined = await owner.next((e) => e.event === 'member_joined' && e.data?.room_id === room);
  assert.deepEqual(joined, { event: 'member_joined', channel: ch, data: { room_id: room, user_id: 'rm-guest', name: 'rm-guest' } });
  const again = await c.http(0, 'POST', `/api/rooms/${room}/members`, { token: ownerTok, body: { user_id: 'rm-guest' } });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.added, false);

  // the added member needs no access code
  const sub = await guest.subscribe(ch);
  assert.equal(sub.room_id, room);

  // a plain member (or outsider) may not add anyone
  for (const who of ['rm-guest', 'rm-outsider']) {
    const no = await c.http(0, 'POST', `/api/rooms/${room}/members`, { token: c.token(who), body: { user_id: 'rm-friend' } });
    assert.equal(no.status, 403, no.text);
    assert.deepEqual(no.json.error, { code: 'forbidden', message: "only the room's owner or an admin may add members" });
    const noDel = await c.http(0, 'DELETE', `/api/rooms/${room}/members/rm-owner`, { token: c.token(who) });
    assert.equal(noDel.status, 403, noDel.text);
  }
  assert.deepEqual((await c.query('SELECT user_id FROM members WHERE room = $1 ORDER BY user_id', [room])).map((r) => r.user_id),
    ['rm-guest', 'rm-owner']);

  // an admin of the app may add; an admin of another app may not
  const otherAdmin = await c.http(0, 'POST', `/api/rooms/${room}/members`, { token: c.token('rm-boss', { app: 'rm-other', role: 'admin' }), body: { user_id: 'rm-late' } });
  assert.equal(otherAdmin.status, 404, otherAdmin.text);
  const admin = await c.http(0, 'POST', `/api/rooms/${room}/members`, { token: c.token('rm-boss', { role: 'admin' }), body: { user_id: 'rm-late' } });
  assert.equal(admin.status, 200, admin.text);
  assert.equal(admin.json.added, true);
  await guest.next((e) => e.event === 'member_joined' && e.data?.user_id === 'rm-late');

  // DELETE removes: member_left, and the removed user cannot subscribe again
  const del = await c.http(1, 'DELETE', `/api/rooms/${room}/members/rm-late`, { token: ownerTok });
  assert.equal(del.status, 200, del.text);
  assert.deepEqual(del.json, { room_id: room, user_id: 'rm-late', removed: true });
  const left = await owner.next((e) => e.event === 'member_left' && e.data?.room_id === room);
  assert.deepEqual(left.data, { room_id: room, user_id: 'rm-late', name: 'rm-late' });
  const late = await c.client(0, 'rm-late');
  assert.deepEqual(await errorOf(late, 'subscribe', ch), { code: 'forbidden', message: `room ${room} is private` });
  const gone = await c.http(0, 'DELETE', `/api/rooms/${room}/members/rm-late`, { token: ownerTok });
  assert.equal(gone.status, 404, gone.text);
  assert.equal(gone.json.error.code, 'not_found');

  // a member may remove themselves (leave), via the POST fallback too
  await guest.ack('unsubscribe', ch);
  const self = await c.http(0, 'POST', `/api/rooms/${room}/members/rm-guest/delete`, { token: c.token('rm-guest') });
  assert.equal(self.status, 200, self.text);
  assert.equal(self.json.removed, true);
  await owner.next((e) => e.event === 'member_left' && e.data?.user_id === 'rm-guest');
  const guest2 = await c.client(1, 'rm-guest');
  assert.equal((await errorOf(guest2, 'subscribe', ch)).code, 'forbidden');
  assert.deepEqual((await c.query('SELECT user_id FROM members WHERE room = $1', [room])).map((r) => r.user_id), ['rm-owner']);
});

test('members calls: bad ids 400, missing room 404, no token 401', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('rb');
  const tok = c.token('rb-owner');
  assert.equal((await c.http(0, 'POST', '/api/rooms', { token: tok, body: { room_id: room, visibility: 'public' } })).status, 201);

  for (const body of [{}, { user_id: 'not ok' }, { user_id: 7 }, { user_id: 'x'.repeat(65) }]) {
    const r = await c.http(0, 'POST', `/api/rooms/${room}/members`, { token: tok, body });
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.error.code, 'bad_request');
  }
  const badRoom = await c.http(0, 'POST', '/api/rooms/bad%20room/members', { token: tok, body: { user_id: 'u1' } });
  assert.equal(badRoom.status, 400, badRoom.text);
  const badUser = await c.http(0, 'DELETE', `/api/rooms/${room}/members/${'y'.repeat(65)}`, { token: tok });
  assert.equal(badUser.status, 400, badUser.text);

  const missing = await c.http(0, 'POST', `/api/rooms/${room}-missing/members`, { token: tok, body: { user_id: 'u1' } });
  assert.equal(missing.status, 404, missing.text);
  assert.deepEqual(missing.json.error, { code: 'not_found', message: `room ${room}-missing does not exist` });
  const missingDel = await c.http(0, 'DELETE', `/api/rooms/${room}-missing/members/u1`, { token: tok });
  assert.equal(missingDel.status, 404, missingDel.text);

  const noTok = await c.http(0, 'POST', `/api/rooms/${room}/members`, { body: { user_id: 'u1' } });
  assert.equal(noTok.status, 401, noTok.text);
  const noTokDel = await c.http(0, 'DELETE', `/api/rooms/${room}/members/rb-owner`);
  assert.equal(noTokDel.status, 401, noTokDel.text);
  const badTok = await c.http(0, 'DELETE', `/api/rooms/${room}/members/rb-owner`, { token: `${tok}x` });
  assert.equal(badTok.status, 401, badTok.text);
  assert.deepEqual((await c.query('SELECT user_id FROM members WHERE room = $1', [room])).map((r) => r.user_id), ['rb-owner']);
});

test('member_joined / member_left stop above NATTER_MEMBER_EVENTS_ROOM_MAX members', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('rbig');
  const ch = `room.${room}`;
  const first = await c.client(0, 'rb-0');
  await first.subscribe(ch);
  const isJoin = (u) => (e) => e.event === 'member_joined' && e.data?.user_id === u;
  const others = [];
  for (let i = 1; i <= MEMBER_EVENTS_MAX + 1; i++) {
    const cl = await c.client(i % 2, `rb-${i}`);
    await cl.subscribe(ch);
    others.push(cl);
  }
  // joins 2 and 3 make a room of at most MEMBER_EVENTS_MAX: announced
  await first.next(isJoin('rb-1'));
  await first.next(isJoin('rb-2'));
  // the 4th member and later ones: nothing, over WS and over REST
  const added = await c.http(0, 'POST', `/api/rooms/${room}/members`, { token: c.token('rb-admin', { role: 'admin' }), body: { user_id: 'rb-rest' } });
  assert.equal(added.json.added, true, added.text);
  await others[0].ack('leave', ch);
  await waitUntil(async () => (await c.query('SELECT 1 FROM members WHERE room = $1 AND user_id = $2', [room, 'rb-1'])).length === 0,
    { timeoutMs: 10_000, what: 'rb-1 no longer a member' });
  await sleep(200);                                   // an event would follow the commit at once
  const marker = await others[1].ack('send_message', ch, { message: 'after the joins', client_msg_id: `rb-${Date.now()}` });
  await first.next((e) => e.event === 'message' && e.data?.seq === marker.seq);
  const quiet = first.events.filter((e) => e.event === 'member_joined' && ['rb-3', 'rb-rest'].includes(e.data?.user_id) ||
    e.event === 'member_left' && e.data?.user_id === 'rb-1');
  assert.deepEqual(quiet, [], 'membership events in a room above the limit');
  assert.equal((await c.query('SELECT count(*)::int AS n FROM members WHERE room = $1', [room]))[0].n, MEMBER_EVENTS_MAX + 2);   // rb-0..rb-4 and rb-rest, less rb-1
  for (const cl of [first, ...others]) cl.close();
});
