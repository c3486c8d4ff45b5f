// pg_read_conns.test.mjs — the persister answers RPCs (join, history, read marks…) on
// NATTER_PG_READ_CONNS connections, each user's on the one its (app, user) hashes to:
// a join held up in PostgreSQL holds up only the requests that share its connection,
// so another user's join goes through meanwhile, and the blocked user's next request
// is answered after the blocked one (one user's requests stay in order).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, uniqueRoom, useCluster, waitUntil } from './lib/cluster.mjs';

const N = 4;
const c = useCluster({ env: { NATTER_PG_READ_CONNS: String(N), NATTER_REQUEST_TIMEOUT_MS: '60000' } });

// The persister's read connection of a user: FNV-1a of "<app>/<user>" (common/util.c
// nt_partition) modulo the connection count.
function connOf(user, n = N) {
  let h = 2166136261;
  for (const ch of Buffer.from(`default/${user}`)) h = Math.imul(h ^ ch, 16777619) >>> 0;
  return h % n;
}

const readWaiting = async () => (await c.query(
  "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'natter-persister read %' " +
  "AND wait_event_type = 'Lock'"))[0].n;

test('a join held up in PostgreSQL holds up only its own user\'s requests', { timeout: 120_000 }, async () => {
  const conns = await c.query(
    "SELECT application_name AS name FROM pg_stat_activity WHERE application_name LIKE 'natter-persister read %' ORDER BY 1");
  assert.deepEqual(conns.map((r) => r.name), Array.from({ length: N }, (_, k) => `natter-persister read ${k}`));

  const tag = uniqueRoom('u');
  const ua = `${tag}-a`;
  let k = 0;
  while (connOf(`${tag}-b${k}`) === connOf(ua)) k++;
  const ub = `${tag}-b${k}`;
  const room = uniqueRoom('rc'), room2 = uniqueRoom('rc2');
  const owner = await c.client(0, `${tag}-owner`);
  await owner.subscribe(`room.${room}`);
  const a = await c.client(0, ua);
  const b = await c.client(1, ub);

  // An uncommitted members row for (room, ua): ua's join waits for this transaction.
  const hold = await c.pool.connect();
  try {
    await hold.query('BEGIN');
    await hold.query("INSERT INTO members (app, room, user_id, role, last_read_seq, last_delivered_seq) " +
      "VALUES ('default', $1, $2, 'member', 0, 0)", [room, ua]);
    const order = [];
    const joinA = a.subscribe(`room.${room}`).then((r) => { order.push('room'); return r; });
    await waitUntil(async () => await readWaiting() === 1, { what: `${ua}'s join waiting for the lock` });
    const joinA2 = a.subscribe(`room.${room2}`).then((r) => { order.push('room2'); return r; });
    // another user's join, on another connection, is not held up
    const t0 = Date.now();
    const joinB = await b.subscribe(`room.${room}`);
    assert.equal(joinB.room_id ?? room, room);
    assert.ok(Date.now() - t0 < 10_000, 'the other user\'s join answered while the first is held');
    await sleep(300);
    assert.deepEqual(order, [], `${ua}'s requests wait behind the held join (got ${order})`);
    await hold.query('ROLLBACK');
    await Promise.all([joinA, joinA2]);
    assert.deepEqual(order, ['room', 'room2'], 'one user\'s requests answered in order');
  } finally {
    await hold.query('ROLLBACK').catch(() => {});
    hold.release();
  }
  const rows = await c.query('SELECT room, user_id FROM members WHERE user_id = ANY($1) ORDER BY user_id, room',
    [[ua, ub]]);
  assert.deepEqual(rows.map((r) => `${r.user_id} ${r.room}`).sort(),
    [`${ua} ${room}`, `${ua} ${room2}`, `${ub} ${room}`].sort());
  for (const cl of [owner, a, b]) cl.close();
});
