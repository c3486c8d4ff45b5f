// batch_linger.test.mjs — NATTER_BATCH_LINGER_MS: a partition starts a batch at most
// once per interval, so a steady trickle of sends is committed in a few transactions
// instead of one each; a send to an idle partition is fetched at once, not held for the
// interval. One partition, so every send goes through the same one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom, sleep } from './lib/cluster.mjs';

const LINGER_MS = 1000;
const c = useCluster({ env: { NATTER_PARTITIONS: '1', NATTER_BATCH_LINGER_MS: String(LINGER_MS),
  NATTER_REQUEST_TIMEOUT_MS: '30000' } });

test('a trickle of sends is committed in few batches, in order, each acked once', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('linger');
  const alice = await c.client(0, 'alice');
  await alice.subscribe(`room.${room}`);
  await sleep(LINGER_MS);              // the join's batch, if any, has lingered out
  const before = await c.metric('persister', 'natter_persister_batches_total');
  // 20 sends 25 ms apart: half a second in all. Without the linger each is its own
  // batch (a commit here takes a few ms); with it, the first goes alone, the rest wait
  // for the interval and go together.
  const acks = [];
  for (let i = 0; i < 20; i++) {
    acks.push(alice.request('send_message', `room.${room}`, { message: `m${i}`, client_msg_id: `linger-${i}` }));
    await sleep(25);
  }
  const evs = await Promise.all(acks);
  const batches = await c.metric('persister', 'natter_persister_batches_total') - before;
  for (const [i, ev] of evs.entries()) {
    assert.equal(ev.event, 'ack', JSON.stringify(ev));
    assert.equal(ev.data.client_msg_id, `linger-${i}`);
    assert.equal(ev.data.seq, i + 1, 'seqs follow the send order');
  }
  assert.ok(batches >= 2 && batches <= 3, `20 sends in 0.5 s took ${batches} batches (want 2–3: one alone, then the rest)`);
  const rows = await c.query("SELECT count(*)::int AS n FROM messages WHERE app = 'default' AND room = $1", [room]);
  assert.equal(rows[0].n, 20);
  alice.close();
});

test('a send to an idle partition is fetched at once, not held for the interval', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('idle');
  const bob = await c.client(0, 'bob');
  await bob.subscribe(`room.${room}`);
  await sleep(LINGER_MS + 500);        // idle: every earlier batch's interval is over
  const t0 = Date.now();
  const ev = await bob.request('send_message', `room.${room}`, { message: 'hello', client_msg_id: 'idle-1' });
  const took = Date.now() - t0;
  assert.equal(ev.event, 'ack', JSON.stringify(ev));
  // Generous even under ASan: held for the interval it would take about 1,000 ms.
  assert.ok(took < LINGER_MS / 2, `the ack took ${took} ms`);
  bob.close();
});
