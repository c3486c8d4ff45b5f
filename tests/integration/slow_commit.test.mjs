// slow_commit.test.mjs — a batch whose commit takes a second or more is counted
// (natter_persister_slow_commits_total) and logged with its partition and write
// connection, and its send is acked only once the commit is done; the lag sums
// (persister: gateway receipt to publication; gateway: frame to ack) include the wait. The commit is made
// slow for real: another PostgreSQL session holds the room's row lock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { useCluster, uniqueRoom, sleep } from './lib/cluster.mjs';

const c = useCluster({ env: { NATTER_REQUEST_TIMEOUT_MS: '30000' } });

test('a commit held up by a row lock is counted and logged; its ack waits for it', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('slow');
  const alice = await c.client(0, 'alice');
  await alice.subscribe(`room.${room}`);
  await alice.ack('send_message', `room.${room}`, { message: 'first', client_msg_id: 'slow-1' });
  assert.equal(await c.metric('persister', 'natter_persister_slow_commits_total'), 0, 'no slow commit before the lock');
  const lagBefore = await c.metric('persister', 'natter_persister_publish_lag_ms_total');
  const gw = c.gatewayNames[0];
  const ackMsBefore = await c.metric(gw, 'natter_gateway_ack_latency_ms_total');

  const holder = await c.pool.connect();
  let acked = false;
  let reply;
  try {
    await holder.query('BEGIN');
    await holder.query("SELECT 1 FROM rooms WHERE app = 'default' AND room = $1 FOR UPDATE", [room]);
    reply = alice.request('send_message', `room.${room}`, { message: 'second', client_msg_id: 'slow-2' })
      .then((ev) => { acked = true; return ev; });
    await sleep(1500);
    assert.equal(acked, false, 'no ack while the commit cannot finish');
  } finally {
    await holder.query('COMMIT').catch(() => {});
    holder.release();
  }
  const ev = await reply;
  assert.equal(ev.event, 'ack', JSON.stringify(ev));
  assert.equal(ev.data.seq, 2);

  assert.equal(await c.metric('persister', 'natter_persister_slow_commits_total'), 1);
  // The held-up message alone waited 1.5 s from the gateway to its publication.
  assert.ok(await c.metric('persister', 'natter_persister_publish_lag_ms_total') - lagBefore >= 1400);
  assert.ok(await c.metric(gw, 'natter_gateway_ack_latency_ms_total') - ackMsBefore >= 1400);
  const log = fs.readFileSync(path.join(c.logDir, 'persister.log'), 'utf8');
  assert.match(log, /partition \d+: a batch of 1 took \d{4,} ms to commit on write connection \d+/);
  alice.close();
});
