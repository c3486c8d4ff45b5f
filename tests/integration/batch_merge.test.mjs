// batch_merge.test.mjs — a write connection has one transaction in flight; batches of
// its other partitions that become ready meanwhile wait and are committed together in
// the next one (one natter_post_batch call), in order and exactly once. A batch being
// retried after a failed transaction goes alone, so one that keeps failing does not
// hold back the partitions it was merged with. Four partitions on one write connection.
import { test } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { useCluster, sendMany, seqProblem, uniqueRoom, waitUntil, sleep, partitionOf, ownedPartitions } from './lib/cluster.mjs';

const c = useCluster({
  env: { NATTER_PARTITIONS: '4', NATTER_PG_WRITE_CONNS: '1', NATTER_REQUEST_TIMEOUT_MS: '60000' },
});

const writeWaiting = async () => (await c.query(
  "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'natter-persister write 0' " +
  "AND wait_event_type = 'Lock'"))[0].n;
const metrics = async () => ({
  batches: await c.metric('persister', 'natter_persister_batches_total'),
  txns: await c.metric('persister', 'natter_persister_transactions_total'),
});

// 40 rooms: every partition gets some (all in fewer than 4 partitions: p < 1e-4).
async function roomsJoined(user, n, tag) {
  const rooms = Array.from({ length: n }, () => uniqueRoom(tag));
  for (const r of rooms) await user.subscribe(`room.${r}`);
  return rooms;
}

const sendAll = (user, rooms, tag, opts = {}) => Promise.all(rooms.map((r) => sendMany(user, `room.${r}`,
  Array.from({ length: 3 }, (_, k) => ({ message: `${tag} ${k}`, cmid: `${tag}-${r}-${k}` })),
  { window: 3, timeoutMs: 60_000, ...opts })));

async function assertStoredInOrder(rooms) {
  for (const r of rooms) {
    const rows = await c.query('SELECT seq FROM messages WHERE room = $1 ORDER BY seq', [r]);
    assert.equal(seqProblem(rows.map((x) => Number(x.seq)), 1, 3), null, `room ${r}`);
  }
}

test('batches that wait for the connection go together in one transaction, in order, once',
  { timeout: 120_000 }, async () => {
    await waitUntil(async () => await ownedPartitions(c) === 4, { what: 'all four partitions owned' });
    const alice = await c.client(0, 'alice');
    const rooms = await roomsJoined(alice, 40, 'merge');
    await sleep(300);                   // the joins' own batches are done
    const before = await metrics();

    // Hold the partitions table: the first batch's `advance` waits for the lock, so
    // the other partitions' batches queue behind it on the one write connection.
    const locker = await c.pool.connect();
    let sends;
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE partitions IN SHARE MODE');
      sends = sendAll(alice, rooms, 'm');
      await waitUntil(async () => await writeWaiting() === 1, { what: 'the first transaction blocked' });
      await sleep(1000);                // the other partitions' first batches are fetched
      await locker.query('COMMIT');
    } finally {
      locker.release();
    }
    for (const replies of await sends) for (const ev of replies) assert.equal(ev.event, 'ack', JSON.stringify(ev));
    const after = await metrics();
    const batches = after.batches - before.batches, txns = after.txns - before.txns;
    // Each partition's first send comes alone (its pull was a long poll), then the rest
    // of its sends: at least 4 + 4 batches. The three first batches queued behind the
    // blocked one share a transaction at least, so at least two fewer transactions.
    assert.ok(batches >= 8, `${batches} batches`);
    assert.ok(txns <= batches - 2, `${batches} batches in ${txns} transactions`);
    await assertStoredInOrder(rooms);
    alice.close();
  });

test('a batch that keeps failing is retried alone: the batches it was merged with commit',
  { timeout: 120_000 }, async () => {
    const bob = await c.client(0, 'bob');
    const rooms = await roomsJoined(bob, 40, 'iso');
    // One room in each partition: the first is sent while the connection is blocked;
    // then one good room, the bad one and another good one queue behind it, in that
    // order, and are merged. Their retries start in queue order, in one loop turn.
    const pick = [0, 1, 2, 3].map((p) => rooms.find((r) => partitionOf(r) === p));
    assert.ok(pick.every(Boolean), 'a room in every partition');
    const [first, good1, bad, good2] = pick;
    const good = [good1, good2];
    await sleep(300);
    await c.query(`CREATE FUNCTION natter_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'natter test: room refused'; END $$`);
    await c.query(`CREATE TRIGGER natter_test_refuse BEFORE INSERT ON messages FOR EACH ROW
      WHEN (NEW.room = '${bad}') EXECUTE FUNCTION natter_test_refuse()`);
    const send = (r) => bob.request('send_message', `room.${r}`, { message: 'x', client_msg_id: `iso-${r}` },
      { timeoutMs: 90_000 });
    let badSend;
    try {
      const before = await c.metric('persister', 'natter_persister_batch_retries_total');
      const locker = await c.pool.connect();
      let sent;
      try {
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE partitions IN SHARE MODE');
        sent = [send(first)];
        await waitUntil(async () => await writeWaiting() === 1, { what: 'the first transaction blocked' });
        for (const r of [good1, bad, good2]) {
          if (r === bad) badSend = send(r);
          else sent.push(send(r));
          await sleep(300);             // fetched and queued before the next
        }
        await locker.query('COMMIT');
      } finally {
        locker.release();
      }
      // The merged transaction fails on the bad room; the two others, retried alone,
      // commit while the bad one keeps failing.
      for (const ev of await Promise.all(sent)) assert.equal(ev.event, 'ack', JSON.stringify(ev));
      assert.equal((await c.query('SELECT count(*)::int AS n FROM messages WHERE room = $1', [bad]))[0].n, 0);
      const retries = await c.metric('persister', 'natter_persister_batch_retries_total') - before;
      assert.ok(retries >= 2, `${retries} retries: the batches merged with the bad one were retried`);
      // Each good batch failed once (merged with the bad one), then went alone. Merged
      // again on the retry, the second good one would have failed with the bad one.
      const log = fs.readFileSync(path.join(c.logDir, 'persister.log'), 'utf8');
      for (const r of good) {
        const fails = log.split('\n').filter((l) => l.includes(`partition ${partitionOf(r)}: batch of 1 failed`)).length;
        assert.equal(fails, 1, `partition ${partitionOf(r)} (room ${r}) failed ${fails} times`);
      }
    } finally {
      await c.query('DROP TRIGGER IF EXISTS natter_test_refuse ON messages');
      await c.query('DROP FUNCTION IF EXISTS natter_test_refuse()');
    }
    // Once the trigger is gone its retry commits it.
    const ev = await badSend;
    assert.equal(ev.event, 'ack', JSON.stringify(ev));
    assert.equal(ev.data.seq, 1);
    for (const r of pick) {
      assert.equal((await c.query('SELECT count(*)::int AS n FROM messages WHERE room = $1', [r]))[0].n, 1, `room ${r}`);
    }
    bob.close();
  });
