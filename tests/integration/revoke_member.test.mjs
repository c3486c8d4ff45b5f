// revoke_member.test.mjs — issue #18 "a member removed from a private room keeps receiving
// it": after DELETE /api/rooms/{id}/members/{user} the removed user's open sockets, on every
// gateway, get member_left with their own user_id and then nothing more from the room (no
// message, typing or presence), and the router no longer lists them live — also in a room
// too large for member events (NATTER_MEMBER_EVENTS_ROOM_MAX).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom, sleep, waitUntil } from './lib/cluster.mjs';

const c = useCluster({ env: { NATTER_MEMBER_EVENTS_ROOM_MAX: '3' } });

async function privateRoom(owner, members) {
  const room = uniqueRoom('rv');
  const r = await c.http(0, 'POST', '/api/rooms', { token: c.token(owner), body: { room_id: room, visibility: 'private', members } });
  assert.equal(r.status, 201, r.text);
  return room;
}

async function onlineUsers(room, asker) {
  const o = await c.http(0, 'GET', `/api/rooms/${room}/online`, { token: c.token(asker) });
  assert.equal(o.status, 200, o.text);
  return o.json.users.map((u) => u.user_id).sort();
}

for (const [label, extra] of [['a small room', []], ['a room too large for member events', ['rv-x1', 'rv-x2', 'rv-x3']]]) {
  test(`removal cuts the member off at once on every gateway: ${label}`, { timeout: 90_000 }, async () => {
    const room = await privateRoom('rv-owner', ['rv-bob', ...extra]);
    const ch = `room.${room}`;
    const owner = await c.client(0, 'rv-owner');
    const bob1 = await c.client(0, 'rv-bob');
    const bob2 = await c.client(1, 'rv-bob');
    for (const x of [owner, bob1, bob2]) await x.subscribe(ch);
    await owner.ack('send_message', ch, { message: 'before' });
    for (const b of [bob1, bob2]) await b.next((e) => e.event === 'message' && e.data.message === 'before');
    await waitUntil(async () => (await onlineUsers(room, 'rv-owner')).includes('rv-bob'), { what: 'bob live' });

    const del = await c.http(1, 'DELETE', `/api/rooms/${room}/members/rv-bob`, { token: c.token('rv-owner') });
    assert.equal(del.status, 200, del.text);
    const t0 = Date.now();
    for (const b of [bob1, bob2]) {
      const left = await b.next((e) => e.event === 'member_left' && e.data?.room_id === room, 5000);
      assert.equal(left.data.user_id, 'rv-bob', 'the removed user hears their own removal');
    }
    assert.ok(Date.now() - t0 < 2000, `cut off within a second or so (${Date.now() - t0} ms)`);
    const cut = { b1: bob1.events.length, b2: bob2.events.length };

    // Nothing more from the room: messages, typing, presence.
    await owner.ack('send_message', ch, { message: 'after' });
    await owner.ack('typing', ch, { is_typing: true });
    await owner.ack('presence', undefined, { status: 'busy' });
    await sleep(1500);
    for (const [b, n] of [[bob1, cut.b1], [bob2, cut.b2]]) {
      const later = b.events.slice(n).filter((e) => e.data?.room_id === room || e.channel === ch ||
        (e.event === 'presence' && e.data?.user_id === 'rv-owner'));
      assert.deepEqual(later, [], `${b.label} got nothing more from the room`);
      assert.equal(b.all((e) => e.event === 'member_left' && e.data?.room_id === room).length, 1, 'member_left once');
    }
    // The router no longer counts bob live, and bob cannot come back.
    await waitUntil(async () => !(await onlineUsers(room, 'rv-owner')).includes('rv-bob'), { timeoutMs: 5000, what: 'bob not live' });
    const again = await bob1.request('subscribe', ch, {});
    assert.equal(again.data?.code, 'forbidden', JSON.stringify(again));
    for (const x of [owner, bob1, bob2]) x.close();
  });
}
