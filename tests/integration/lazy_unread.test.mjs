// lazy_unread.test.mjs — unread-count events are frames that may wait (gateway
// conn.c): queued without a write of their own, each goes out with the connection's
// next frame, in order before it, or NATTER_LAZY_FLUSH_MS after it was queued when
// nothing else comes. Here the lazy wait is 3 s and the unread flush 100 ms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, uniqueRoom, useCluster, waitUntil } from './lib/cluster.mjs';

const c = useCluster({ env: { NATTER_LAZY_FLUSH_MS: '3000', NATTER_UNREAD_FLUSH_MS: '100' } });

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
  const order = b.all((e) => unreadOf(room)(e) || messageOf(room, 2)(e));
  assert.deepEqual(order.map((e) => e.event), ['unread', 'message'], 'the waiting unread event went out first');
  assert.equal(order[0].data.rooms[room], 1);

  // 3: with nothing else for b, the lazy timer sends the unread event (2) on its own
  await waitUntil(() => b.all(unreadOf(room)).some((e) => e.data.rooms[room] === 2),
    { timeoutMs: 10_000, what: 'unread 2 sent by the lazy timer' });
  a.close();
  b.close();
});
