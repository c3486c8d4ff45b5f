// replay_max.test.mjs — issue #18 "a since_seq replay is paged, not unbounded": one
// subscribe replays at most NATTER_REPLAY_MAX messages (here 100). A client that missed
// more is told how far it got (too_large, naming the seq) with no subscription left behind,
// catches up with history pages, and then recovers the rest with a later since_seq.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sendMany, uniqueRoom, useCluster } from './lib/cluster.mjs';

const c = useCluster({ env: { NATTER_REPLAY_MAX: '100' } });

test('a replay past NATTER_REPLAY_MAX stops with too_large; history and a later since_seq complete it', { timeout: 120_000 }, async () => {
  const room = uniqueRoom('rm');
  const ch = `room.${room}`;
  const s = await c.client(0, 'rm_sender');
  await s.subscribe(ch);
  await sendMany(s, ch, Array.from({ length: 250 }, (_, i) => ({ message: `m${i + 1}`, cmid: `rm-${room}-${i}` })));

  const r = await c.client(1, 'rm_reader');
  const first = await r.request('subscribe', ch, { since_seq: 0 });
  assert.equal(first.event, 'error', JSON.stringify(first));
  assert.equal(first.data.code, 'too_large');
  const m = /(\d+) replayed up to seq (\d+)/.exec(first.data.message);
  assert.ok(m, first.data.message);
  assert.match(first.data.message, /NATTER_REPLAY_MAX/);
  const upTo = Number(m[2]);
  assert.ok(upTo >= 100 && upTo < 250, `replayed up to ${upTo}`);
  const got = r.messages(room).map((e) => e.data.seq);
  assert.deepEqual(got, Array.from({ length: upTo }, (_, i) => i + 1), 'the replayed part is complete and in order');
  // No subscription was left: a live message does not arrive.
  const live = await s.ack('send_message', ch, { message: 'while away' });
  await new Promise((res) => setTimeout(res, 500));
  assert.ok(!r.messages(room).some((e) => e.data.id === live.id));

  // Catch up with history pages, then subscribe from there: the rest, then live.
  let after = upTo;
  for (;;) {
    const h = await r.ack('history', ch, { after_seq: after, limit: 100 });
    if (!h.messages.length) break;
    after = h.messages.at(-1).seq;
    if (!h.has_more || after >= 200) break;
  }
  const ack = await r.subscribe(ch, { since_seq: after });
  assert.equal(ack.recovered, true);
  const rest = r.messages(room).map((e) => e.data.seq).filter((q) => q > upTo);
  assert.deepEqual(rest, Array.from({ length: 251 - after }, (_, i) => after + 1 + i), 'the rest, once each');
  s.close(); r.close();
});
