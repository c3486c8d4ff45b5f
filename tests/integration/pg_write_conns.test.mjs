// pg_write_conns.test.mjs — the persister commits partition p on write connection
// p mod NATTER_PG_WRITE_CONNS, which also holds p's advisory lock. Losing one write
// connection releases only its partitions; they are claimed again on the reconnected
// session and nothing sent meanwhile is lost or stored twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, sendMany, seqProblem, uniqueRoom, waitUntil } from './lib/cluster.mjs';

const c = useCluster({
  env: { NATTER_PARTITIONS: '4', NATTER_PG_WRITE_CONNS: '2', NATTER_CLAIM_INTERVAL_MS: '200',
    NATTER_REQUEST_TIMEOUT_MS: '60000' },
});

const writeSessions = () => c.query(
  "SELECT pid, application_name AS name FROM pg_stat_activity WHERE application_name LIKE 'natter-persister write %' ORDER BY 2");
// Partition p's advisory lock (natter_claim: key pair 0x6e6174, p), by holder.
const lockHolders = () => c.query(
  "SELECT l.objid::int AS p, a.application_name AS name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid " +
  "WHERE l.locktype = 'advisory' AND l.classid = x'6e6174'::int AND l.granted ORDER BY 1");

test('each partition is locked and committed on write connection p mod N; one lost connection loses only its partitions',
  { timeout: 120_000 }, async () => {
    await waitUntil(async () => (await writeSessions()).length === 2, { what: 'two write sessions' });
    await waitUntil(async () => (await lockHolders()).length === 4, { what: 'all four partitions locked' });
    const holders = await lockHolders();
    assert.deepEqual(holders.map((h) => [h.p, h.name]), [
      [0, 'natter-persister write 0'], [1, 'natter-persister write 1'],
      [2, 'natter-persister write 0'], [3, 'natter-persister write 1'],
    ]);

    // Enough rooms that every partition gets some.
    const rooms = Array.from({ length: 12 }, () => uniqueRoom('wc'));
    const alice = await c.client(0, 'alice');
    for (const r of rooms) await alice.subscribe(`room.${r}`);
    const round = async (tag) => {
      const per = await Promise.all(rooms.map((r) => sendMany(alice, `room.${r}`,
        Array.from({ length: 20 }, (_, k) => ({ message: `${tag} ${k}`, cmid: `${tag}-${r}-${k}` })),
        { window: 20, timeoutMs: 60_000 })));
      for (const replies of per) for (const ev of replies) assert.equal(ev.event, 'ack', JSON.stringify(ev));
    };
    await round('a');

    // Kill write connection 1's backend while sends are in flight.
    const victim = (await writeSessions()).find((s) => s.name === 'natter-persister write 1');
    const during = round('b');
    await c.query('SELECT pg_terminate_backend($1)', [victim.pid]);
    await during;
    await waitUntil(async () => (await lockHolders()).length === 4, { what: 'partitions 1 and 3 claimed again' });
    const after = await lockHolders();
    assert.equal(after.find((h) => h.p === 0).name, 'natter-persister write 0');
    assert.equal(after.find((h) => h.p === 1).name, 'natter-persister write 1');
    assert.notEqual((await writeSessions()).find((s) => s.name === 'natter-persister write 1').pid, victim.pid,
      'write connection 1 reconnected');
    await round('c');

    for (const r of rooms) {
      const rows = await c.query('SELECT seq FROM messages WHERE room = $1 ORDER BY seq', [r]);
      assert.equal(rows.length, 60, `room ${r}: every send stored once`);
      assert.equal(seqProblem(rows.map((x) => Number(x.seq)), 1, 60), null);
    }
    alice.close();
  });
