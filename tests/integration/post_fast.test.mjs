// post_fast.test.mjs — natter_post_batch's fast path (migration 007) gives the results
// of the general path (006, now natter_post_batch_general) and leaves the same rows.
// Two twin sets of rooms with the same members get the same batches: one through
// natter_post_batch, the other through natter_post_batch_general. A usual batch must
// not reach the general path (pg_stat_xact_user_functions counts the calls); a batch
// with a stored duplicate, a repeat inside the batch, a non-member or a missing room
// must, and the fast path's partial work must be undone (the twins' rows compared).
// New message ids are UUIDv7 whose time part is the row's created_at millisecond.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom } from './lib/cluster.mjs';

const c = useCluster({ gateways: 1 });

const ROOMS = 6, USERS = 4;
const tag = uniqueRoom('pf');
const room = (side, k) => `${tag}-${side}-${k}`;
const user = (side, u) => `${tag}-${side}-u${u}`;

// One call of fn in its own transaction: its rows, and how often the general path ran.
// The function-call counts of pg_stat_xact_user_functions include calls of earlier
// transactions not yet flushed to the shared statistics (PostgreSQL 15), so the
// count is read before and after the call.
async function post(fn, side, msgs) {
  const cols = [[], [], [], [], [], [], [], []];
  for (const m of msgs) {
    const row = ['default', room(side, m.room), user(side, m.user), `User ${m.user}`, m.cmid, 'text', m.body, m.reply ?? null];
    row.forEach((v, k) => cols[k].push(v));
  }
  const calls = async (cl) => (await cl.query(`SELECT coalesce(sum(calls), 0)::int AS n
      FROM pg_stat_xact_user_functions WHERE funcname = 'natter_post_batch_general'`)).rows[0].n;
  const cl = await c.pool.connect();
  try {
    await cl.query('BEGIN');
    await cl.query(`SET LOCAL track_functions = 'pl'`);
    const before = await calls(cl);
    const rows = (await cl.query(`SELECT ord, status, room_id, msg_id::text AS id, msg_seq, created_at_text
        FROM ${fn}($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])`, cols)).rows;
    const general = await calls(cl) - before;
    await cl.query('COMMIT');
    return { rows, general };
  } catch (e) {
    await cl.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    cl.release();
  }
}

// A row without what differs between the twins (side in names, id, time).
const plain = (r, side) => ({ ord: r.ord, status: r.status, room: r.room_id?.replace(`-${side}-`, '-'),
  seq: r.msg_seq === null ? null : Number(r.msg_seq), id: r.id !== null, at: r.created_at_text !== null });

async function sideState(side) {
  const like = `${tag}-${side}-%`;
  const strip = (s) => s.replace(`-${side}-`, '-');
  const rooms = (await c.query('SELECT room, last_seq FROM rooms WHERE room LIKE $1 ORDER BY room', [like]))
    .map((r) => [strip(r.room), Number(r.last_seq)]);
  const members = (await c.query(`SELECT room, user_id, last_read_seq FROM members WHERE room LIKE $1
      ORDER BY room, user_id`, [like])).map((r) => [strip(r.room), strip(r.user_id), Number(r.last_read_seq)]);
  const messages = (await c.query(`SELECT room, seq, sender, sender_name, client_msg_id, type, body, reply_to
      FROM messages WHERE room LIKE $1 ORDER BY room, seq`, [like]))
    .map((m) => [strip(m.room), Number(m.seq), strip(m.sender), m.sender_name, m.client_msg_id, m.type, m.body, m.reply_to]);
  return { rooms, members, messages };
}

// The same batch to both twins; asserts equal results and rows, returns side a's call.
async function both(msgs, what) {
  // 007's natter_post_batch, which 008 wraps as natter_post_batch_unchecked (the wrapper
  // only turns some duplicates into conflicts: cmid_conflict.test.mjs)
  const a = await post('natter_post_batch_unchecked', 'a', msgs);
  const b = await post('natter_post_batch_general', 'b', msgs);
  assert.deepEqual(a.rows.map((r) => plain(r, 'a')), b.rows.map((r) => plain(r, 'b')), `${what}: results differ`);
  assert.deepEqual(await sideState('a'), await sideState('b'), `${what}: stored rows differ`);
  return a;
}

test('the fast path stores a usual batch as the general path would; others fall back unchanged', { timeout: 120_000 }, async () => {
  for (const side of ['a', 'b']) {
    for (let k = 1; k <= ROOMS; k++) {
      await c.query(`INSERT INTO rooms (app, room) VALUES ('default', $1)`, [room(side, k)]);
      // user 4 is not a member of the last room
      for (let u = 1; u <= (k === ROOMS ? USERS - 1 : USERS); u++) {
        await c.query(`INSERT INTO members (app, room, user_id) VALUES ('default', $1, $2)`, [room(side, k), user(side, u)]);
      }
    }
  }
  let n = 0;
  const msg = (r, u, extra = {}) => ({ room: r, user: u, cmid: `c${++n}`, body: `body ${n} "q" \\ 😀`, ...extra });

  // usual: 30 messages over 5 rooms, several per room and sender, one a reply
  const usual = [];
  for (let i = 0; i < 30; i++) usual.push(msg(1 + (i * 7) % 5, 1 + (i % USERS), i === 3 ? { reply: 'some-id' } : {}));
  const u = await both(usual, 'usual batch');
  assert.equal(u.general, 0, 'a usual batch went to the general path');
  assert.ok(u.rows.every((r) => r.status === 'ok'), JSON.stringify(u.rows));
  assert.deepEqual(u.rows.map((r) => r.ord), usual.map((_, i) => i + 1));

  // a second usual batch continues each room's seqs
  const more = [msg(1, 2), msg(2, 3), msg(1, 2), msg(ROOMS, 1)];
  const m2 = await both(more, 'second usual batch');
  assert.equal(m2.general, 0);

  const cases = [
    ['a stored duplicate', [msg(3, 1), { ...usual[5] }, msg(3, 2)]],
    ['a repeat inside the batch', [msg(2, 1), msg(4, 2), { ...msg(2, 3), cmid: `c${n - 1}`, user: 2 }, msg(4, 4)]],
    ['a non-member', [msg(ROOMS, 1), msg(ROOMS, 4), msg(ROOMS, 2)]],
    ['a missing room', [msg(1, 1), msg(ROOMS + 1, 1), msg(1, 3)]],
  ];
  for (const [what, batch] of cases) {
    const r = await both(batch, what);
    assert.equal(r.general, 1, `${what}: the general path did not run`);
    assert.ok(r.rows.some((x) => x.status !== 'ok'), `${what}: ${JSON.stringify(r.rows)}`);
  }

  // ids: version 7, time part = created_at's millisecond (fast and general path alike)
  const ids = await c.query(`SELECT id::text AS id, (extract(epoch FROM created_at) * 1000)::numeric AS ms
      FROM messages WHERE room LIKE $1`, [`${tag}-%`]);
  assert.ok(ids.length >= 2 * 40, `${ids.length} rows`);
  for (const { id, ms } of ids) {
    assert.equal(id[14], '7', `not a UUIDv7: ${id}`);
    assert.match(id[19], /[89ab]/, `variant bits: ${id}`);
    const t = parseInt(id.replace(/-/g, '').slice(0, 12), 16);
    assert.ok(Math.abs(t - Math.floor(Number(ms))) <= 1, `id ${id} time ${t} vs created_at ${ms}`);
  }
});
