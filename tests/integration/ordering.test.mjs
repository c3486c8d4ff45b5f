// ordering.test.mjs — done-when 2: 1,000 messages from 3 pipelining senders into one
// room get seqs 1..1000 with no gap, each sender's messages keep its send order, live
// delivery follows seq order, and history (WS and HTTP, pages of 100) returns the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, sendMany, seqProblem, uniqueRoom } from './lib/cluster.mjs';

// Every sender pipelines all of its messages at once: allow that many pending sends.
const c = useCluster({ env: { NATTER_MAX_PENDING_SENDS: '1024' } });

const TOTAL = 1000;
const SENDERS = [['s1', 0, 334], ['s2', 1, 333], ['s3', 0, 333]];   // user, gateway, count

test('1,000 pipelined messages from 3 senders: one gap-free order everywhere', { timeout: 240_000 }, async () => {
  const room = uniqueRoom('order');
  const channel = `room.${room}`;
  const senders = [];
  for (const [user, gw] of SENDERS) {
    const cl = await c.client(gw, user);
    await cl.subscribe(channel);
    senders.push(cl);
  }
  const observer = await c.client(1, 'watcher');
  await observer.subscribe(channel);

  // All three send concurrently; each keeps its own order on its own connection.
  const results = await Promise.all(SENDERS.map(([user, , n], i) => {
    const items = Array.from({ length: n }, (_, k) => ({ message: `${user} #${k}`, cmid: `${user}-${k}` }));
    return sendMany(senders[i], channel, items, { window: n });
  }));

  const bySeq = new Map();
  for (const [i, replies] of results.entries()) {
    const [user] = SENDERS[i];
    const seqs = replies.map((r) => r.data.seq);
    for (let k = 1; k < seqs.length; k++) {
      assert.ok(seqs[k] > seqs[k - 1], `${user}: message #${k} (seq ${seqs[k]}) must come after #${k - 1} (seq ${seqs[k - 1]})`);
    }
    replies.forEach((r, k) => {
      assert.equal(r.data.client_msg_id, `${user}-${k}`);
      assert.ok(!bySeq.has(r.data.seq), `seq ${r.data.seq} acked twice`);
      bySeq.set(r.data.seq, { id: r.data.id, user, message: `${user} #${k}`, cmid: `${user}-${k}` });
    });
  }
  assert.equal(seqProblem([...bySeq.keys()], 1, TOTAL), null);

  // Live delivery: every subscriber sees 1..1000 in order, each id matching its ack.
  for (const cl of [...senders, observer]) {
    const got = await cl.collect((e) => e.event === 'message' && e.data?.room_id === room, TOTAL, 120_000);
    got.forEach((e, k) => {
      assert.equal(e.data.seq, k + 1, `${cl.label}: live event #${k} has seq ${e.data.seq}`);
      assert.equal(e.data.id, bySeq.get(k + 1).id);
    });
  }

  const check = (msgs, from, label) => msgs.forEach((m, k) => {
    const want = bySeq.get(from + k);
    assert.equal(m.seq, from + k, `${label}: position ${k}`);
    assert.equal(m.id, want.id, `${label}: id of seq ${m.seq}`);
    assert.equal(m.sender_id, want.user);
    assert.equal(m.message, want.message);
    assert.equal(m.client_msg_id, want.cmid);
  });

  // WS history, forward with after_seq, pages of 100.
  const ws = [];
  for (let after = 0, page = 0; ; page++) {
    const h = await observer.ack('history', channel, { after_seq: after, limit: 100 });
    assert.ok(Array.isArray(h.messages));
    assert.ok(h.messages.length <= 100);
    check(h.messages, after + 1, `WS history page ${page}`);
    ws.push(...h.messages);
    if (ws.length >= TOTAL) { assert.equal(h.has_more, false, 'last page says has_more false'); break; }
    assert.equal(h.messages.length, 100, `page ${page} is full`);
    assert.equal(h.has_more, true, `page ${page} says has_more`);
    after = h.messages.at(-1).seq;
    assert.ok(page < 20, 'history paging does not end');
  }
  assert.equal(ws.length, TOTAL);

  // WS history without bounds: the newest 50 (the default limit), ascending.
  const newest = await observer.ack('history', channel, {});
  assert.equal(newest.messages.length, 50);
  check(newest.messages, TOTAL - 49, 'WS history default');
  assert.equal(newest.has_more, true);

  // HTTP history, backward with before_seq, pages of 100: same messages, ascending within a page.
  const token = c.token('watcher');
  const pages = [];
  for (let before = null, page = 0; ; page++) {
    const q = before === null ? 'limit=100' : `before_seq=${before}&limit=100`;
    const r = await c.http(1, 'GET', `/api/rooms/${room}/messages?${q}`, { token });
    assert.equal(r.status, 200, r.text);
    const msgs = r.json.messages;
    assert.equal(msgs.length, 100, `HTTP page ${page}`);
    check(msgs, (before ?? TOTAL + 1) - 100, `HTTP history page ${page}`);
    pages.unshift(msgs);
    before = msgs[0].seq;
    if (before === 1) { assert.equal(r.json.has_more, false); break; }
    assert.equal(r.json.has_more, true);
    assert.ok(page < 20, 'history paging does not end');
  }
  assert.deepEqual(pages.flat().map((m) => m.id), ws.map((m) => m.id));

  // PostgreSQL agrees.
  const rows = await c.query('SELECT seq, id::text AS id FROM messages WHERE room = $1 ORDER BY seq', [room]);
  assert.equal(rows.length, TOTAL);
  rows.forEach((r, k) => { assert.equal(Number(r.seq), k + 1); assert.equal(r.id, bySeq.get(k + 1).id); });

  for (const cl of [...senders, observer]) { assert.deepEqual(cl.duplicateReplies, []); cl.close(); }
});
