// persist_batch.test.mjs — the persister stores a fetched batch with one
// natter_post_batch call (migration 006). With the persister stopped, sends pile up in
// JetStream and come back as one batch that holds: the same client_msg_id several
// times (resent from other connections after JetStream's duplicate window, so each
// resend is a new stream message), bodies with every character an array literal
// must escape, and a non-member's send next to members' sends. The first occurrence
// is stored, later ones (same text) are answered with its ack; only the non-member is refused; seqs
// stay gap-free in stream order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, seqProblem, sleep, uniqueRoom, waitUntil } from './lib/cluster.mjs';

// A 1 s duplicate window lets a resend of the same client_msg_id into the stream.
const c = useCluster({
  env: { NATTER_REQUEST_TIMEOUT_MS: '120000', NATTER_CLAIM_INTERVAL_MS: '1000' },
  procEnv: { persister: { NATTER_JS_DUPLICATE_WINDOW_S: '1' } },
});

const ackKey = (d) => ({ id: d.id, seq: d.seq, room_id: d.room_id, client_msg_id: d.client_msg_id, created_at: d.created_at });

const BODIES = [
  'say "hi"',
  'back\\slash and \\\\ double, \\" escaped quote',
  '{braces}, {"json": [1, 2, {"x": "y"}]}',
  'commas, , ,, and a trailing comma,',
  'line one\nline two\r\nline three\ttabbed',
  'NULL',
  '  leading and trailing spaces  ',
  '"',
  '\\',
  '{}',
  'emoji 😀🎉👍🏽 and 漢字, ünïcödé, עברית, 🏳️‍🌈',
  '\'single\' `back` $dollar$ $$ %s %d \\x00 \\u0000',
  // long: 4,500 code points mixing everything above
  ('"\\{},\n' + '😀'.repeat(3) + 'ab').repeat(375),
];

async function roomRows(room) {
  return c.query(
    'SELECT id::text AS id, seq, sender, client_msg_id, body, reply_to FROM messages WHERE app = $1 AND room = $2 ORDER BY seq',
    ['default', room]);
}

test('one batch: in-batch duplicates, bodies that need escaping, a non-member refused alone',
  { timeout: 180_000 }, async () => {
    const room = uniqueRoom('batch');
    const ch = `room.${room}`;
    const alice = await c.client(0, 'alice');
    const alice2 = await c.client(1, 'alice');      // same user, other connections
    const alice3 = await c.client(0, 'alice');
    const bob = await c.client(1, 'bob');
    const carol = await c.client(0, 'carol');
    const watcher = await c.client(1, 'watcher');
    for (const cl of [alice, alice2, alice3, bob, carol, watcher]) await cl.subscribe(ch);
    const warm = await alice.ack('send_message', ch, { message: 'before', client_msg_id: 'pb-warm' });
    assert.equal(warm.seq, 1);
    // carol stays subscribed on her gateway but is no longer a member in PostgreSQL:
    // the persister's membership check refuses her send.
    await c.query('DELETE FROM members WHERE app = $1 AND room = $2 AND user_id = $3', ['default', room, 'carol']);

    const exit = await c.stopProcess('persister');
    assert.equal(exit.code, 0, `persister exits 0 on SIGTERM (got ${JSON.stringify(exit)})`);
    const before = (await c.stream('NATTER_IN')).state.last_seq;

    const opts = { timeoutMs: 150_000 };
    const sends = [];       // {who, cmid, body, p}, in publish order
    const send = (cl, who, cmid, body, extra = {}) => {
      sends.push({ who, cmid, body, p: cl.request('send_message', ch, { message: body, client_msg_id: cmid, ...extra }, opts) });
    };
    send(alice, 'alice', 'pb-dup', 'first wins');
    BODIES.forEach((b, k) => send(bob, 'bob', `pb-body-${k}`, b, k === 0 ? { reply_to: 'pb-warm' } : {}));
    send(carol, 'carol', 'pb-carol', 'not a member any more');
    send(bob, 'bob', 'pb-after-carol', 'bob after carol');
    let published = 1 + BODIES.length + 2;
    await waitUntil(async () => (await c.stream('NATTER_IN')).state.last_seq >= before + published,
      { timeoutMs: 30_000, what: 'the first sends in stream NATTER_IN' });
    // Resends of pb-dup from the other connections, each after the duplicate window (a
    // resend has the same text: another text under a used id is a conflict, issue #20).
    for (const [cl, body] of [[alice2, 'second'], [alice3, 'third']]) {
      await sleep(1500);
      send(cl, 'alice', 'pb-dup', 'first wins');
      send(bob, 'bob', `pb-between-${body}`, `bob between ${body}`);
      published += 2;
      await waitUntil(async () => (await c.stream('NATTER_IN')).state.last_seq >= before + published,
        { timeoutMs: 30_000, what: `${published} sends in stream NATTER_IN` });
    }
    // Each resend is its own stream message (not dropped by JetStream's duplicate check).
    assert.equal((await c.stream('NATTER_IN')).state.last_seq, before + published);
    assert.equal((await roomRows(room)).length, 1, 'nothing stored while the persister is down');

    await c.startProcess('persister');
    const replies = await Promise.all(sends.map((s) => s.p));
    const byCmid = new Map();
    sends.forEach((s, i) => {
      const r = replies[i];
      if (s.who === 'carol') {
        assert.equal(r.event, 'error', JSON.stringify(r));
        assert.deepEqual(r.data, { code: 'forbidden', message: `not a member of room ${room}` });
        return;
      }
      assert.equal(r.event, 'ack', `${s.cmid}: ${JSON.stringify(r)}`);
      if (byCmid.has(s.cmid)) assert.deepEqual(ackKey(r.data), ackKey(byCmid.get(s.cmid)), `${s.cmid}: the first ack`);
      else byCmid.set(s.cmid, r.data);
    });

    // Stored: the warm-up plus one row per distinct member client_msg_id, seqs 1..n,
    // each sender's in the order sent (connections of different users race into the
    // stream), the first occurrence's body, every body byte-exact.
    const rows = await roomRows(room);
    const expected = ['pb-warm', ...new Set(sends.filter((s) => s.who !== 'carol').map((s) => s.cmid))];
    assert.deepEqual(rows.map((r) => r.client_msg_id).sort(), [...expected].sort());
    for (const who of ['alice', 'bob']) {
      const mine = [...new Set(sends.filter((s) => s.who === who).map((s) => s.cmid))];
      assert.deepEqual(rows.filter((r) => r.sender === who && r.client_msg_id !== 'pb-warm').map((r) => r.client_msg_id),
        mine, `${who}'s messages in the order sent`);
    }
    assert.equal(seqProblem(rows.map((r) => Number(r.seq)), 1, expected.length), null);
    const row = new Map(rows.map((r) => [r.client_msg_id, r]));
    assert.equal(row.get('pb-dup').body, 'first wins');
    BODIES.forEach((b, k) => assert.equal(row.get(`pb-body-${k}`).body, b, `body ${k} stored unchanged`));
    assert.equal(row.get('pb-body-0').reply_to, 'pb-warm');
    assert.equal(row.get('pb-body-1').reply_to, null);
    for (const [cmid, a] of byCmid) {
      assert.equal(row.get(cmid).id, a.id);
      assert.equal(Number(row.get(cmid).seq), a.seq);
    }
    assert.equal((await c.query('SELECT last_seq FROM rooms WHERE app = $1 AND room = $2', ['default', room]))[0].last_seq,
      String(expected.length));
    // A sender's own messages are read: last_read_seq is their highest seq.
    const marks = new Map((await c.query('SELECT user_id, last_read_seq FROM members WHERE app = $1 AND room = $2',
      ['default', room])).map((m) => [m.user_id, Number(m.last_read_seq)]));
    const highest = (who) => Math.max(...rows.filter((r) => r.sender === who).map((r) => Number(r.seq)));
    assert.equal(marks.get('alice'), highest('alice'));
    assert.equal(marks.get('bob'), highest('bob'));
    assert.equal(marks.has('carol'), false);

    // Live: every stored seq reaches the watcher once, in order, with the exact body.
    const got = await watcher.collect((e) => e.event === 'message' && e.data?.room_id === room, expected.length, 60_000);
    assert.deepEqual(got.map((e) => e.data.seq), Array.from({ length: expected.length }, (_, k) => k + 1));
    for (const e of got) assert.equal(e.data.message, row.get(e.data.client_msg_id).body);
    await sleep(500);
    assert.equal(watcher.messages(room).length, expected.length, 'no seq delivered twice');

    // Resending pb-dup now (stored) is answered with the same ack, still one row.
    const late = await alice.ack('send_message', ch, { message: 'first wins', client_msg_id: 'pb-dup' });
    assert.deepEqual(ackKey(late), ackKey(byCmid.get('pb-dup')));
    assert.equal((await roomRows(room)).length, expected.length);
  });

test('a batch over many rooms and senders: per-room seqs gap-free in send order', { timeout: 120_000 }, async () => {
  const rooms = Array.from({ length: 6 }, () => uniqueRoom('many'));
  const users = ['u1', 'u2', 'u3'];
  const clients = await Promise.all(users.map((u, i) => c.client(i % 2, u)));
  for (const cl of clients) for (const r of rooms) await cl.subscribe(`room.${r}`);
  await c.stopProcess('persister');
  const sends = [];
  for (let k = 0; k < 120; k++) {
    const u = k % users.length, r = rooms[(k * 7) % rooms.length];
    sends.push({ u, r, k, p: clients[u].request('send_message', `room.${r}`,
      { message: `m${k} "q" \\ {${k}}`, client_msg_id: `many-${k}` }, { timeoutMs: 120_000 }) });
  }
  await sleep(1000);
  await c.startProcess('persister');
  const replies = await Promise.all(sends.map((s) => s.p));
  replies.forEach((r, i) => assert.equal(r.event, 'ack', `${sends[i].k}: ${JSON.stringify(r)}`));
  for (const r of rooms) {
    const rows = await roomRows(r);
    assert.equal(seqProblem(rows.map((x) => Number(x.seq)), 1, rows.length), null);
    // One connection's sends to a room keep their order.
    for (let u = 0; u < users.length; u++) {
      const mine = sends.filter((s) => s.r === r && s.u === u).map((s) => `many-${s.k}`);
      assert.deepEqual(rows.filter((x) => x.sender === users[u]).map((x) => x.client_msg_id), mine);
    }
  }
  for (const cl of clients) cl.close();
});
