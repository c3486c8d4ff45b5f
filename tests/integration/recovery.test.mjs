// recovery.test.mjs — done-when 5 of issue 3 (docs/protocol.md "Recovery"): a client drops,
// 100 messages arrive, it reconnects to the OTHER gateway with since_seq and gets
// exactly the missed messages in order, then live ones, with no gap and no repeat,
// while a sender keeps sending throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, sendMany, uniqueRoom, waitUntil, sleep } from './lib/cluster.mjs';

const c = useCluster({ env: { NATTER_MAX_PENDING_SENDS: '1024' } });

const seqsOf = (cl, room) => cl.messages(room).map((e) => e.data.seq);

function contiguous(seqs, from) {
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== from + i) return `position ${i}: expected seq ${from + i}, got ${seqs[i]} (around ${JSON.stringify(seqs.slice(Math.max(0, i - 3), i + 3))})`;
  }
  return null;
}

test('reconnect to the other gateway with since_seq: the missed messages in order, then live, no gap, no repeat', { timeout: 180_000 }, async () => {
  const room = uniqueRoom('rec');
  const ch = `room.${room}`;
  const sender = await c.client(0, 'sender');
  await sender.subscribe(ch);
  const x1 = await c.client(0, 'reader');
  await x1.subscribe(ch);

  let acked = 0;
  let stop = false;
  let k = 0;
  const sending = (async () => {
    while (!stop) {
      const items = Array.from({ length: 5 }, () => ({ message: `m${k}`, cmid: `c${k++}` }));
      await sendMany(sender, ch, items, { window: 5, onReply: (i, ev) => { acked = Math.max(acked, ev.data.seq); } });
      await sleep(5);
    }
  })();

  await waitUntil(() => seqsOf(x1, room).length >= 20, { what: 'the reader sees live messages' });
  x1.terminate();
  await x1.closed;
  const seen = seqsOf(x1, room);
  assert.equal(contiguous(seen, 1), null);
  const lastSeen = seen[seen.length - 1];

  await waitUntil(() => acked >= lastSeen + 100, { what: '100 messages after the drop', timeoutMs: 60_000 });
  const x2 = await c.client(1, 'reader');
  const ack = await x2.subscribe(ch, { since_seq: lastSeen });
  assert.equal(ack.recovered, true);
  assert.equal(ack.room_id, room);
  assert.ok(ack.last_seq >= lastSeen + 100, `ack last_seq ${ack.last_seq}`);

  // live messages keep arriving after the replay
  const target = acked + 50;
  await waitUntil(() => acked >= target, { what: '50 more messages after the reconnect', timeoutMs: 60_000 });
  stop = true;
  await sending;
  const final = acked;
  await waitUntil(() => { const s = seqsOf(x2, room); return s.length && s[s.length - 1] >= final; }, { what: `the reader gets up to seq ${final}`, timeoutMs: 60_000 });
  await sleep(300);   // any late duplicate would show up here

  const got = seqsOf(x2, room);
  assert.equal(contiguous(got, lastSeen + 1), null, 'no gap, no repeat, in order');
  assert.equal(got[got.length - 1], final);
  assert.ok(got.length >= 150, `${got.length} messages after the reconnect`);
  // the first 100 are exactly the missed ones, and the stored ids match
  const rows = await c.query('SELECT seq, id::text FROM messages WHERE room = $1 AND seq > $2 ORDER BY seq LIMIT 100', [room, lastSeen]);
  const first = x2.messages(room).slice(0, 100);
  assert.deepEqual(first.map((e) => [e.data.seq, e.data.id, e.channel]), rows.map((r) => [Number(r.seq), r.id, ch]));
  assert.ok(first.every((e) => e.data.sender_id === 'sender' && typeof e.data.message === 'string'));
});

test('since_seq at the head replays nothing; a bad since_seq is refused', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('rec0');
  const ch = `room.${room}`;
  const a = await c.client(0, 'ra');
  await a.subscribe(ch);
  await sendMany(a, ch, [{ message: 'one', cmid: 'o1' }, { message: 'two', cmid: 'o2' }]);
  const b = await c.client(1, 'rb');
  const ack = await b.subscribe(ch, { since_seq: 2 });
  assert.equal(ack.recovered, true);
  assert.equal(ack.last_seq, 2);
  await a.ack('send_message', ch, { message: 'three', client_msg_id: 'o3' });
  await waitUntil(() => seqsOf(b, room).length === 1, { what: 'the live message' });
  assert.deepEqual(seqsOf(b, room), [3]);
  const plain = await (await c.client(1, 'rc')).subscribe(ch);
  assert.equal(plain.recovered, false);
  const bad = await b.request('subscribe', `room.${uniqueRoom('x')}`, { since_seq: -4 });
  assert.equal(bad.data.code, 'bad_request');
});
