// slow_client.test.mjs — done-when 6: a client that stops reading while 10,000 messages
// flow is disconnected when its send queue limit is hit; the other clients receive
// everything, in seq order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, sendMany, uniqueRoom } from './lib/cluster.mjs';

// The queue must hold one burst for a healthy client: the persister publishes a whole
// committed batch at once, and a batch is at most the sender's window (50 x ~1.3 KB).
const QUEUE_BYTES = 262144;
const WINDOW = 50;
const c = useCluster({ env: { NATTER_SEND_QUEUE_BYTES: String(QUEUE_BYTES) } });

const N = 10_000;
const BODY = 1000;     // ~10 MB in total: far more than the kernel socket buffers hold

test('a client that stops reading is disconnected; the others get all 10,000 messages in order', { timeout: 300_000 }, async () => {
  const room = uniqueRoom('slow');
  const ch = `room.${room}`;
  const slow = await c.client(0, 'sloth');
  const fast1 = await c.client(0, 'hare');        // same gateway as the slow one
  const fast2 = await c.client(1, 'fox');         // the other gateway
  const sender = await c.client(1, 'talker');     // sends through the other gateway
  for (const cl of [slow, fast1, fast2, sender]) await cl.subscribe(ch);

  slow.pause();   // stops reading: its kernel buffers fill, then the gateway's queue

  const pad = 'x'.repeat(BODY - 12);
  const items = Array.from({ length: N }, (_, k) => ({ message: `${String(k).padStart(8, '0')} ${pad}`, cmid: `slow-${k}` }));
  const replies = await sendMany(sender, ch, items, { window: WINDOW, timeoutMs: 120_000 });
  assert.equal(replies.length, N);

  for (const cl of [fast1, fast2, sender]) {
    const got = await cl.collect((e) => e.event === 'message' && e.data?.room_id === room, N, 180_000);
    for (let k = 0; k < N; k++) {
      if (got[k].data.seq !== k + 1) assert.fail(`${cl.label}: event #${k} has seq ${got[k].data.seq}, expected ${k + 1}`);
    }
    assert.ok(cl.isOpen, `${cl.label} stays connected`);
  }

  // Reading again lets the slow client see what the gateway did: it closed the socket.
  slow.resume();
  const closed = await slow.waitClose(60_000);
  const received = slow.messages(room).length;
  assert.ok(received < N, `the slow client was cut off (received ${received} of ${N}, close ${JSON.stringify(closed)})`);
  console.log(`slow client: received ${received} of ${N} before the close, close code ${closed.code}`);

  // The gateway that dropped it still serves.
  const again = await c.client(0, 'sloth');
  const sub = await again.subscribe(ch);
  assert.equal(sub.last_seq, N);
  for (const cl of [fast1, fast2, sender, again]) cl.close();
});
