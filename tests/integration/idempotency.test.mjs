// idempotency.test.mjs — done-when 3: resending the same client_msg_id (after the first
// ack, back-to-back before it, from another connection of the same user) returns the
// first ack and leaves one row and one broadcast.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom, seqProblem } from './lib/cluster.mjs';

const c = useCluster();

const ackKey = (d) => ({ id: d.id, seq: d.seq, room_id: d.room_id, client_msg_id: d.client_msg_id, created_at: d.created_at });

async function rowsFor(sender, cmid) {
  return c.query(
    'SELECT id::text AS id, seq, body FROM messages WHERE app = $1 AND sender = $2 AND client_msg_id = $3',
    ['default', sender, cmid]);
}

test('the same client_msg_id returns the first ack and stores one row', { timeout: 120_000 }, async () => {
  const room = uniqueRoom('idem');
  const ch = `room.${room}`;
  const alice = await c.client(0, 'alice');
  const alice2 = await c.client(1, 'alice');      // same user, other gateway
  const watcher = await c.client(1, 'watcher');
  await alice.subscribe(ch);
  await alice2.subscribe(ch);
  await watcher.subscribe(ch);

  // 1. Resend after the first ack (same connection): the first ack. With a different body
  //    it is not a resend but another message under a used id: conflict, naming the first
  //    (issue #20; it used to get the first ack, silently).
  const first = await alice.ack('send_message', ch, { message: 'once', client_msg_id: 'cm-after' });
  const again = await alice.ack('send_message', ch, { message: 'once', client_msg_id: 'cm-after' });
  const changed = await alice.request('send_message', ch, { message: 'edited?', client_msg_id: 'cm-after' });
  assert.deepEqual(ackKey(again), ackKey(first));
  assert.equal(changed.event, 'error', JSON.stringify(changed));
  assert.equal(changed.data.code, 'conflict');
  assert.match(changed.data.message, new RegExp(first.id));

  // 2. From another connection of the same user, on the other gateway.
  const other = await alice2.ack('send_message', ch, { message: 'once', client_msg_id: 'cm-after' });
  assert.deepEqual(ackKey(other), ackKey(first));

  // 3. Twice back-to-back, before the first ack, then a third time concurrently from gw2.
  const concurrent = await Promise.all([
    alice.request('send_message', ch, { message: 'twice', client_msg_id: 'cm-burst' }),
    alice.request('send_message', ch, { message: 'twice', client_msg_id: 'cm-burst' }),
    alice2.request('send_message', ch, { message: 'twice', client_msg_id: 'cm-burst' }),
  ]);
  for (const r of concurrent) assert.equal(r.event, 'ack', JSON.stringify(r));
  assert.deepEqual(ackKey(concurrent[1].data), ackKey(concurrent[0].data));
  assert.deepEqual(ackKey(concurrent[2].data), ackKey(concurrent[0].data));

  // 4. The key is (app, sender, client_msg_id): another user's same id is another message.
  const bob = await c.client(0, 'bob');
  await bob.subscribe(ch);
  const bobs = await bob.ack('send_message', ch, { message: 'mine', client_msg_id: 'cm-after' });
  assert.notEqual(bobs.id, first.id);

  // 5. Many resends of many ids, interleaved.
  const burst = [];
  for (let k = 0; k < 20; k++) {
    for (let r = 0; r < 3; r++) burst.push(alice.request('send_message', ch, { message: `m${k}`, client_msg_id: `cm-many-${k}` }));
  }
  const replies = await Promise.all(burst);
  for (let k = 0; k < 20; k++) {
    const trio = replies.slice(k * 3, k * 3 + 3);
    for (const r of trio) assert.equal(r.event, 'ack', JSON.stringify(r));
    assert.equal(new Set(trio.map((r) => r.data.id)).size, 1, `cm-many-${k}: one id`);
    assert.equal(new Set(trio.map((r) => r.data.seq)).size, 1, `cm-many-${k}: one seq`);
  }

  // PostgreSQL: exactly one row per (sender, client_msg_id), with the first body.
  const once = await rowsFor('alice', 'cm-after');
  assert.equal(once.length, 1);
  assert.equal(once[0].id, first.id);
  assert.equal(Number(once[0].seq), first.seq);
  assert.equal(once[0].body, 'once');
  assert.equal((await rowsFor('alice', 'cm-burst')).length, 1);
  assert.equal((await rowsFor('bob', 'cm-after')).length, 1);
  for (let k = 0; k < 20; k++) assert.equal((await rowsFor('alice', `cm-many-${k}`)).length, 1);

  const all = await c.query('SELECT seq FROM messages WHERE room = $1', [room]);
  const expected = 1 + 1 + 1 + 20;
  assert.equal(all.length, expected);
  assert.equal(seqProblem(all.map((r) => Number(r.seq)), 1, expected), null);

  // One broadcast per stored message: a sentinel closes the stream, then count.
  const last = await bob.ack('send_message', ch, { message: 'sentinel', client_msg_id: 'cm-sentinel' });
  await watcher.next((e) => e.event === 'message' && e.data?.id === last.id, 30_000);
  const seen = watcher.messages(room).map((e) => e.data.seq);
  assert.deepEqual(seen, Array.from({ length: expected + 1 }, (_, k) => k + 1),
    'the watcher sees every seq exactly once, in order');

  for (const cl of [alice, alice2, watcher, bob]) { assert.deepEqual(cl.duplicateReplies, []); cl.close(); }
});
