// batch_grid.test.mjs — the partitions' batches start on one shared linger grid, so
// under steady load the batches of the partitions that share a write connection
// become ready in the same loop iteration and go in one transaction, instead of each
// partition committing alone at its own phase. Four partitions on one write
// connection; the senders start 25 ms apart, which would keep per-partition phases
// apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, sendMany, seqProblem, uniqueRoom, waitUntil, sleep, partitionOf, ownedPartitions } from './lib/cluster.mjs';

const c = useCluster({
  env: { NATTER_PARTITIONS: '4', NATTER_PG_WRITE_CONNS: '1', NATTER_BATCH_LINGER_MS: '100' },
});

const metrics = async () => ({
  batches: await c.metric('persister', 'natter_persister_batches_total'),
  txns: await c.metric('persister', 'natter_persister_transactions_total'),
});

test('under steady load the partitions of a write connection share its transactions',
  { timeout: 120_000 }, async () => {
    await waitUntil(async () => await ownedPartitions(c) === 4, { what: 'all four partitions owned' });
    const alice = await c.client(0, 'alice');
    const rooms = [];
    while (rooms.length < 4) {
      const r = uniqueRoom('grid');
      if (!rooms.some((x) => partitionOf(x) === partitionOf(r))) rooms.push(r);
    }
    for (const r of rooms) await alice.subscribe(`room.${r}`);
    await sleep(300);                   // the joins' own batches are done
    const before = await metrics();

    // 100 sends per room, 10 in flight: every partition has messages waiting at each
    // of its batch starts for about ten periods.
    const n = 100;
    const sends = rooms.map(async (r, k) => {
      await sleep(25 * k);
      return sendMany(alice, `room.${r}`,
        Array.from({ length: n }, (_, i) => ({ message: `g ${i}`, cmid: `grid-${r}-${i}` })),
        { window: 10, timeoutMs: 60_000 });
    });
    for (const replies of await Promise.all(sends)) for (const ev of replies) assert.equal(ev.event, 'ack', JSON.stringify(ev));

    const after = await metrics();
    const batches = after.batches - before.batches, txns = after.txns - before.txns;
    // Each partition's first batch comes from a long poll, alone; the rest, on the
    // grid, mostly four to a transaction. Each partition on its own phase would put
    // nearly every batch in a transaction of its own.
    assert.ok(batches >= 4 * 8, `${batches} batches`);
    assert.ok(txns <= 0.6 * batches, `${batches} batches in ${txns} transactions`);
    for (const r of rooms) {
      const rows = await c.query('SELECT seq FROM messages WHERE room = $1 ORDER BY seq', [r]);
      assert.equal(seqProblem(rows.map((x) => Number(x.seq)), 1, n), null, `room ${r}`);
    }
    alice.close();
  });
