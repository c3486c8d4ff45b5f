// lazy_events.test.mjs — unread-count events and announcements (presence,
// member_joined) are frames that may wait (gateway conn.c): queued without a write of
// their own, each goes out with the connection's next frame, in order before it, or
// NATTER_LAZY_FLUSH_MS after it was queued when nothing else comes. Here the lazy
// wait is 6 s and the unread flush 100 ms. A round of the lazy timer starts with the
// first frame that waits, so a frame queued later in it waits less: the checks that
// something still waits come 1 s after it was queued, well inside any round.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, uniqueRoom, useCluster, waitUntil } from './lib/cluster.mjs';

const c = useCluster({ env: { NATTER_LAZY_FLUSH_MS: '6000', NATTER_UNREAD_FLUSH_MS: '100' } });

const unreadOf = (room) => (e) => e.event === 'unread' && e.data?.rooms && room in e.data.rooms;
const messageOf = (room, seq) => (e) => e.event === 'message' && e.data?.room_id === room && e.data.seq === seq;

test('an unread event waits for the next frame to the connection, or for the lazy timer', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('lazy');
  const ch = `room.${room}`;
  const a = await c.client(1, 'lazy-a');
  const b = await c.client(0, 'lazy-b');
  await a.subscribe(ch);
  await b.subscribe(ch);

  // 1: b gets the message at once; its unread event (1) is computed within ~100 ms
  // but waits, since nothing else is written to b
  await a.ack('send_message', ch, { message: 'one', client_msg_id: 'lazy-1' });
  await b.next(messageOf(room, 1));
  await sleep(1000);
  assert.equal(b.all(unreadOf(room)).length, 0, 'the unread event waits for a frame or the lazy timer');

  // 2: the next frame to b carries it, ahead of the message
  await a.ack('send_message', ch, { message: 'two', client_msg_id: 'lazy-2' });
  await b.next(messageOf(room, 2));
  // (the next unread event may already follow it: any frame to b, a keepalive ping
  // too, carries what waits)
  const order = b.all((e) => unreadOf(room)(e) || messageOf(room, 2)(e));
  const upTo = order.slice(0, order.findIndex(messageOf(room, 2)) + 1);
  assert.deepEqual(upTo.map((e) => e.event), ['unread', 'message'], 'the waiting unread event went out first');
  assert.equal(order[0].data.rooms[room], 1);

  // 3: with nothing else for b, the lazy timer sends the unread event (2)
  await waitUntil(() => b.all(unreadOf(room)).some((e) => e.data.rooms[room] === 2),
    { timeoutMs: 20_000, what: 'unread 2 sent by the lazy timer' });
  a.close();
  b.close();
});

test('a member_joined and a presence announcement wait for the next frame to the connection', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('lazyj');
  const ch = `room.${room}`;
  const a = await c.client(1, 'lazyj-a');
  const b = await c.client(0, 'lazyj-b');
  await a.subscribe(ch);
  await b.subscribe(ch);
  await a.ack('send_message', ch, { message: 'one', client_msg_id: 'lazyj-1' });
  await b.next(messageOf(room, 1));
  // let b's unread event for message 1 go out with the lazy timer first
  await waitUntil(() => b.all(unreadOf(room)).length > 0, { timeoutMs: 20_000, what: 'unread 1 to b' });

  const joined = (e) => e.event === 'member_joined' && e.data?.room_id === room && e.data.user_id === 'lazyj-c';
  const online = (e) => e.event === 'presence' && e.data?.user_id === 'lazyj-c';
  const cc = await c.client(0, 'lazyj-c');
  await cc.subscribe(ch);
  await sleep(1000);
  assert.equal(b.all((e) => joined(e) || online(e)).length, 0, 'the announcements wait for a frame or the lazy timer');

  await a.ack('send_message', ch, { message: 'two', client_msg_id: 'lazyj-2' });
  await b.next(messageOf(room, 2));
  const seen = b.all((e) => joined(e) || online(e) || messageOf(room, 2)(e)).map((e) => e.event);
  assert.deepEqual(seen.slice(-1), ['message'], `the message comes last: ${seen}`);
  assert.ok(seen.includes('member_joined') && seen.includes('presence'), `both announcements went out with it: ${seen}`);
  for (const cl of [a, b, cc]) cl.close();
});
