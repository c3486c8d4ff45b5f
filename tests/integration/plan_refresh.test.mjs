// plan_refresh.test.mjs — a write connection's cached plans do not outlive the table
// sizes they were made for. natter_post_batch runs with a generic plan, built once
// per session: built while messages is empty (statistics of an empty table), it
// costs "read every message of the app" the same as the unique-key lookup, and with
// 100,000 rows each batch then takes seconds. The persister drops its plans on a
// schedule after connecting and at once after a slow commit (pg.c), so at most one
// batch pays. Autovacuum is off for messages here: an ANALYZE would also replace the
// plan, and this is about not waiting for one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, bulkMessages, sendRounds, seqProblem, uniqueRoom } from './lib/cluster.mjs';

const c = useCluster({
  env: { NATTER_PARTITIONS: '1', NATTER_PG_WRITE_CONNS: '1', NATTER_REQUEST_TIMEOUT_MS: '60000' },
});

test('a plan made on an empty messages table costs at most one slow batch', { timeout: 180_000 }, async () => {
  await c.query('ALTER TABLE messages SET (autovacuum_enabled = off)');
  await c.query('ANALYZE messages');
  const room = uniqueRoom('plan');
  const alice = await c.client(0, 'alice');
  await alice.subscribe(`room.${room}`);
  await alice.ack('send_message', `room.${room}`, { message: 'first', client_msg_id: 'plan-0' });

  await bulkMessages(c, 100_000);   // someone else's, in the same app
  await sendRounds(alice, `room.${room}`, { prefix: 'plan' });
  const rows = await c.query('SELECT seq FROM messages WHERE room = $1 ORDER BY seq', [room]);
  assert.equal(rows.length, 801);
  assert.equal(seqProblem(rows.map((r) => Number(r.seq)), 1, 801), null);
  const slow = await c.metric('persister', 'natter_persister_slow_commits_total');
  assert.ok(slow <= 1, `${slow} commits took a second or more: the plan was not rebuilt`);
  alice.close();
});
