// persister_replicas.test.mjs — two persister replicas: partitions are owned by one
// replica at a time (PostgreSQL advisory locks), and when the owner is killed with -9
// mid-stream the other takes its partitions over: every room stays gap-free, each
// sender's messages stay in send order, and every message is stored and acked once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, sendMany, seqProblem, uniqueRoom, waitUntil } from './lib/cluster.mjs';

const PARTITIONS = 4;
const c = useCluster({
  persisters: 2,
  env: {
    NATTER_PARTITIONS: String(PARTITIONS),
    NATTER_CLAIM_INTERVAL_MS: '300',
    NATTER_MAX_PENDING_SENDS: '1024',
    NATTER_REQUEST_TIMEOUT_MS: '120000',
  },
});

const owned = (name) => c.metric(name, 'natter_persister_owned_partitions');

async function advisoryLocks() {
  const rows = await c.query(
    "SELECT pid, count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND granted GROUP BY pid");
  return rows;
}

test('a killed persister replica hands its partitions over: gap-free, in order, exactly once',
  { timeout: 180_000 }, async () => {
    // Every partition has exactly one owner among the two replicas.
    await waitUntil(async () => (await owned('persister')) + (await owned('persister2')) === PARTITIONS,
      { what: 'all partitions owned' });
    const locks = await advisoryLocks();
    assert.equal(locks.reduce((n, r) => n + r.n, 0), PARTITIONS, 'one advisory lock per partition');
    // Kill the replica that owns more partitions (the other may own none: then it is a hot standby).
    const victim = (await owned('persister')) >= (await owned('persister2')) ? 'persister' : 'persister2';
    const survivor = victim === 'persister' ? 'persister2' : 'persister';

    // Rooms spread over the partitions; three senders per room, pipelined.
    const rooms = Array.from({ length: 6 }, () => uniqueRoom('rep'));
    const users = ['ann', 'ben', 'cat'];
    const senders = [await c.client(0, 'ann'), await c.client(1, 'ben'), await c.client(0, 'cat')];
    senders.forEach((s, i) => { s.user = users[i]; });
    for (const s of senders) for (const r of rooms) await s.subscribe(`room.${r}`);

    const PER = 60;   // messages per sender per room
    let acked = 0;
    let killing = null;
    const streams = [];
    for (const s of senders) {
      for (const r of rooms) {
        const items = Array.from({ length: PER }, (_, k) => ({ message: `${s.user} ${k}`, cmid: `${s.user}-${r}-${k}` }));
        streams.push(sendMany(s, `room.${r}`, items, {
          window: 20,
          onReply: (_i, ev) => {
            if (ev.event === 'ack' && ++acked === 300 && !killing) killing = c.killProcess(victim);
          },
        }));
      }
    }
    await waitUntil(() => killing, { timeoutMs: 120_000, what: '300 acks before the kill' });
    await killing;
    const replies = await Promise.all(streams);
    for (const list of replies) for (const ev of list) assert.equal(ev.event, 'ack', JSON.stringify(ev));

    // The survivor owns everything now.
    await waitUntil(async () => (await owned(survivor)) === PARTITIONS, { what: `${survivor} to own every partition` });

    for (const r of rooms) {
      const rows = await c.query(
        'SELECT seq::int AS seq, sender, client_msg_id FROM messages WHERE app = $1 AND room = $2 ORDER BY seq',
        ['default', r]);
      assert.equal(seqProblem(rows.map((x) => x.seq), 1, senders.length * PER), null, `room ${r}`);
      for (const s of senders) {
        const mine = rows.filter((x) => x.sender === s.user).map((x) => Number(x.client_msg_id.split('-').pop()));
        assert.deepEqual(mine, Array.from({ length: PER }, (_, k) => k), `${s.user} in ${r}: send order`);
      }
    }
    // Acks carry the stored seq, once per client_msg_id.
    const all = replies.flat().map((ev) => `${ev.data.room_id}/${ev.data.seq}`);
    assert.equal(new Set(all).size, all.length, 'no two acks share a room seq');
  });
