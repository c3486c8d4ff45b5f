// pull_gap.test.mjs — a pulled message lost between nats-server and the persister's
// loop (here: its NATS → loop queue full, NATTER_BUS_QUEUE=16) is never acked past.
// The persister sees the hole in the consumer's delivery sequence, or a 408 whose
// pending count says more was delivered than arrived, and sets the consumer up again
// from the committed point (persister/pull.c). Without that, the batch's AckAll
// acknowledged the lost messages in JetStream: they were never stored nor acked.
// The sends wait in JetStream while the persister is stopped, so that its first pull
// request brings them in one burst, far more than the queue holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seqProblem, uniqueRoom, useCluster, waitUntil } from './lib/cluster.mjs';

const c = useCluster({
  env: { NATTER_PARTITIONS: '1', NATTER_REQUEST_TIMEOUT_MS: '120000', NATTER_CLAIM_INTERVAL_MS: '1000' },
  procEnv: { persister: { NATTER_BUS_QUEUE: '16' } },
});

test('pulled messages dropped before the loop are fetched again: every send acked, stored once, in order',
  { timeout: 180_000 }, async () => {
    const room = uniqueRoom('gap');
    const ch = `room.${room}`;
    const users = ['alice', 'bob', 'carol', 'dave'];
    const clients = await Promise.all(users.map((u, i) => c.client(i % 2, u)));
    for (const cl of clients) await cl.subscribe(ch);

    const exit = await c.stopProcess('persister');
    assert.equal(exit.code, 0, `persister exits 0 on SIGTERM (got ${JSON.stringify(exit)})`);
    const before = (await c.stream('NATTER_IN')).state.last_seq;
    const PER = 100, N = PER * clients.length;
    const pending = [];
    for (let k = 0; k < PER; k++) {
      clients.forEach((cl, i) => {
        const cmid = `gap-${users[i]}-${k}`;
        pending.push(cl.request('send_message', ch, { message: `m ${k}`, client_msg_id: cmid }, { timeoutMs: 150_000 })
          .then((r) => ({ i, k, cmid, r })));
      });
    }
    await waitUntil(async () => (await c.stream('NATTER_IN')).state.last_seq >= before + N,
      { timeoutMs: 30_000, what: `${N} sends in stream NATTER_IN` });

    await c.startProcess('persister');
    const done = await Promise.all(pending);
    for (const { cmid, r } of done) assert.equal(r.event, 'ack', `${cmid}: ${JSON.stringify(r)}`);

    const dropped = await c.metric('persister', 'natter_persister_nats_dropped_total');
    assert.ok(dropped > 0, `the burst overflowed the persister's bus queue (dropped ${dropped})`);
    const gaps = await c.metric('persister', 'natter_persister_pull_gaps_total');
    assert.ok(gaps > 0, `the persister noticed the lost deliveries (gaps ${gaps})`);

    const rows = await c.query('SELECT seq, client_msg_id FROM messages WHERE app = $1 AND room = $2 ORDER BY seq',
      ['default', room]);
    assert.equal(rows.length, N, 'every send stored once');
    assert.equal(seqProblem(rows.map((r) => Number(r.seq)), 1, N), null);
    const seqOf = new Map(rows.map((r) => [r.client_msg_id, Number(r.seq)]));
    for (const { cmid, r } of done) assert.equal(r.data.seq, seqOf.get(cmid), `${cmid}: acked seq is the stored one`);
    users.forEach((u, i) => {
      const seqs = done.filter((d) => d.i === i).sort((a, b) => a.k - b.k).map((d) => seqOf.get(d.cmid));
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `${u}'s sends stored in the order sent`);
    });
    for (const cl of clients) cl.close();
  });
