// stale_stats.test.mjs — statistics that call a full messages table empty cost at most
// a few slow batches (the one that finds them, one or two started before the ANALYZE
// is done), not every batch. An ANALYZE that finds messages with a page but no committed row
// (here: while the first insert is still open) records reltuples = 0 on relpages = 1,
// and the planner then takes the table for empty whatever its size, until the next
// ANALYZE: natter_post_batch looked its stored duplicates up by reading the whole
// unique index for every message of a batch (seen in the chat-mix benchmark: 21 s per
// batch of 500). Replanning does not help, since the new plan uses the same
// statistics; after a slow commit the persister also refreshes them (ANALYZE of the
// tables natter_post_batch reads). Autovacuum is off for messages here, so nothing
// else would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { useCluster, bulkMessages, sendRounds, seqProblem, uniqueRoom } from './lib/cluster.mjs';

const c = useCluster({
  env: { NATTER_PARTITIONS: '1', NATTER_PG_WRITE_CONNS: '1', NATTER_REQUEST_TIMEOUT_MS: '60000' },
});

test('statistics that call messages empty cost at most three slow batches', { timeout: 240_000 }, async () => {
  await c.query('ALTER TABLE messages SET (autovacuum_enabled = off)');
  // An open insert: the table has a page but no committed row when ANALYZE looks.
  const open = new pg.Client({ connectionString: c.pgUrl });
  await open.connect();
  await open.query('BEGIN');
  await open.query(`INSERT INTO rooms (app, room) VALUES ('default', 'stats-open')`);
  await open.query(`INSERT INTO messages (app, room, seq, sender, client_msg_id, body)
                    VALUES ('default', 'stats-open', 1, 'nobody', 'stats-open-1', 'x')`);
  await c.query('ANALYZE messages');
  await open.query('ROLLBACK');
  await open.end();
  const [st] = await c.query(`SELECT reltuples, relpages FROM pg_class WHERE relname = 'messages'`);
  assert.equal(Number(st.reltuples), 0, JSON.stringify(st));
  assert.ok(Number(st.relpages) >= 1, JSON.stringify(st));

  await bulkMessages(c, 100_000);   // someone else's, in the same app

  const room = uniqueRoom('stats');
  const alice = await c.client(0, 'alice');
  await alice.subscribe(`room.${room}`);
  await sendRounds(alice, `room.${room}`, { rounds: 8, prefix: 'stats', timeoutMs: 200_000 });
  const rows = await c.query('SELECT seq FROM messages WHERE room = $1 ORDER BY seq', [room]);
  assert.equal(rows.length, 1600);
  assert.equal(seqProblem(rows.map((r) => Number(r.seq)), 1, 1600), null);
  const slow = await c.metric('persister', 'natter_persister_slow_commits_total');
  assert.ok(slow <= 3, `${slow} commits took a second or more: the statistics were not refreshed`);
  alice.close();
});
