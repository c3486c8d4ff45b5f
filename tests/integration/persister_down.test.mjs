// persister_down.test.mjs — done-when 4: with the persister stopped, sends are accepted
// into JetStream but not acked; after it restarts every message is stored once and acked.
// With the persister killed (kill -9) mid-stream, nothing acked is lost and nothing is
// stored twice, and every send is eventually acked on the connection that made it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, sendMany, seqProblem, sleep, uniqueRoom, waitUntil } from './lib/cluster.mjs';

// Pending sends must survive a persister outage: a long request timeout, a fast claim.
const c = useCluster({ env: { NATTER_REQUEST_TIMEOUT_MS: '120000', NATTER_CLAIM_INTERVAL_MS: '1000' } });

async function roomRows(room) {
  return c.query(
    'SELECT id::text AS id, seq, sender, client_msg_id FROM messages WHERE room = $1 ORDER BY seq', [room]);
}

async function noDuplicateKeys() {
  const dups = await c.query(
    'SELECT app, sender, client_msg_id, count(*) AS n FROM messages GROUP BY 1, 2, 3 HAVING count(*) > 1');
  assert.deepEqual(dups, [], 'no (app, sender, client_msg_id) stored twice');
}

test('persister stopped: sends wait in JetStream unacked; after restart all are stored once and acked',
  { timeout: 180_000 }, async () => {
    const room = uniqueRoom('down');
    const ch = `room.${room}`;
    const alice = await c.client(0, 'alice');
    const bob = await c.client(1, 'bob');
    await alice.subscribe(ch);
    await bob.subscribe(ch);
    const warm = await alice.ack('send_message', ch, { message: 'before the outage', client_msg_id: 'pd-0' });
    assert.equal(warm.seq, 1);

    const exit = await c.stopProcess('persister');
    assert.equal(exit.code, 0, `persister exits 0 on SIGTERM (got ${JSON.stringify(exit)})`);
    const before = await c.stream('NATTER_IN');
    assert.ok(before, 'stream NATTER_IN exists');

    const N = 20;
    const pending = [];
    for (let k = 1; k <= N; k++) {
      const cl = k % 2 ? alice : bob;
      pending.push(cl.request('send_message', ch, { message: `during outage ${k}`, client_msg_id: `pd-${k}` },
        { timeoutMs: 150_000 }).then((r) => ({ k, r })));
    }
    const settled = [];
    pending.forEach((p) => p.then((x) => settled.push(x), () => {}));

    // Accepted by JetStream…
    await waitUntil(async () => (await c.stream('NATTER_IN'))?.state?.last_seq >= before.state.last_seq + N,
      { timeoutMs: 30_000, what: `${N} new messages in stream NATTER_IN` });
    // …but nothing is answered and nothing is stored while the persister is down.
    await sleep(2000);
    assert.deepEqual(settled, [], 'no ack and no error while the persister is down');
    assert.equal((await roomRows(room)).length, 1, 'nothing stored while the persister is down');
    assert.equal(alice.messages(room).length + bob.messages(room).length, 2, 'nothing broadcast');

    await c.startProcess('persister');
    const done = await Promise.all(pending);
    for (const { k, r } of done) assert.equal(r.event, 'ack', `pd-${k}: ${JSON.stringify(r)}`);

    const rows = await roomRows(room);
    assert.equal(rows.length, N + 1);
    assert.equal(seqProblem(rows.map((r) => Number(r.seq)), 1, N + 1), null);
    const byCmid = new Map(rows.map((r) => [r.client_msg_id, r]));
    for (const { k, r } of done) {
      const row = byCmid.get(`pd-${k}`);
      assert.ok(row, `pd-${k} stored`);
      assert.equal(row.id, r.data.id);
      assert.equal(Number(row.seq), r.data.seq);
    }
    // Each client's own sends keep their order.
    for (const parity of [1, 0]) {
      const seqs = done.filter(({ k }) => k % 2 === parity).map(({ r }) => r.data.seq);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    }
    // Live delivery after recovery: every seq once, in order.
    const got = await bob.collect((e) => e.event === 'message' && e.data?.room_id === room, N + 1, 60_000);
    assert.deepEqual(got.map((e) => e.data.seq), Array.from({ length: N + 1 }, (_, k) => k + 1));
    await noDuplicateKeys();
    alice.close();
    bob.close();
  });

test('persister killed with -9 mid-stream: nothing acked is lost, nothing stored twice, all acked in the end',
  { timeout: 180_000 }, async () => {
    const room = uniqueRoom('kill');
    const ch = `room.${room}`;
    const sender = await c.client(1, 'carol');
    await sender.subscribe(ch);
    const N = 500;
    const items = Array.from({ length: N }, (_, k) => ({ message: `steady ${k}`, cmid: `kill-${k}` }));
    const acks = new Map();     // cmid -> ack data, recorded the moment each ack arrives
    let killing = null;
    let ackedAtKill = null;
    const stream = sendMany(sender, ch, items, {
      window: 64,
      timeoutMs: 60_000,          // per send; generous: a restart plus a claim takes seconds
      onReply: (i, ev) => {
        if (ev.event !== 'ack') return;
        acks.set(items[i].cmid, ev.data);
        if (acks.size === 150) {  // mid-stream: SIGKILL goes out right now, batches in flight
          ackedAtKill = new Map(acks);
          killing = c.killProcess('persister');
        }
      },
    });

    await waitUntil(() => killing, { timeoutMs: 120_000, what: '150 acks before the kill' });
    const killed = await killing;
    assert.equal(killed.signal, 'SIGKILL');

    // Everything acked before the kill is in PostgreSQL, once, with the acked seq.
    const rowsAtKill = new Map((await roomRows(room)).map((r) => [r.client_msg_id, r]));
    for (const [cmid, a] of ackedAtKill) {
      const row = rowsAtKill.get(cmid);
      assert.ok(row, `${cmid} was acked, so it must be stored`);
      assert.equal(Number(row.seq), a.seq);
      assert.equal(row.id, a.id);
    }

    await sleep(500);
    await c.startProcess('persister');
    const replies = await stream.catch(async (e) => {
      // Say precisely what is missing: sends never acked, and whether they were stored.
      const stored = new Set((await roomRows(room)).map((r) => r.client_msg_id));
      const missing = items.map((it) => it.cmid).filter((cmid) => !acks.has(cmid));
      const inPg = missing.filter((cmid) => stored.has(cmid));
      assert.fail(`${missing.length} sends never acked after the restart (${inPg.length} of them are stored ` +
        `in PostgreSQL: ${inPg.slice(0, 5).join(', ')}…); first error: ${e.message}`);
    });
    assert.equal(replies.length, N);
    assert.equal(acks.size, N, 'every message is acked in the end');

    const rows = await roomRows(room);
    assert.equal(rows.length, N, 'every message stored once');
    assert.equal(seqProblem(rows.map((r) => Number(r.seq)), 1, N), null);
    const byCmid = new Map(rows.map((r) => [r.client_msg_id, r]));
    for (const [cmid, a] of acks) {
      const row = byCmid.get(cmid);
      assert.ok(row, `${cmid} stored`);
      assert.equal(row.id, a.id, `${cmid}: acked id is the stored id`);
      assert.equal(Number(row.seq), a.seq, `${cmid}: acked seq is the stored seq`);
    }
    // One connection's sends keep their order across the crash.
    const seqs = items.map((it) => acks.get(it.cmid).seq);
    for (let k = 1; k < N; k++) assert.ok(seqs[k] > seqs[k - 1], `kill-${k} after kill-${k - 1}`);
    assert.deepEqual(sender.duplicateReplies, [], 'each ref answered exactly once');
    await noDuplicateKeys();
    sender.close();
  });
