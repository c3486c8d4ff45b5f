// pull_consumer.test.mjs — the persister's JetStream pull (persister/pull.c): its
// consumer deleted under it, while idle and in the middle of a stream of sends, is
// noticed (409 "Consumer Deleted" on the open pull request, or no responders to the
// next one) and set up again from the partition's committed stream sequence; every
// send is acked, stored once, in order. One partition, so every send is on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { natsSession, sendMany, seqProblem, sleep, uniqueRoom, useCluster, waitUntil } from './lib/cluster.mjs';

const c = useCluster({ env: { NATTER_PARTITIONS: '1' } });

const items = (from, n) => Array.from({ length: n }, (_, k) => ({ message: `m${from + k}`, cmid: `pull-${from + k}` }));

test('the consumer deleted under the persister is set up again: every send acked, stored once, in order',
  { timeout: 120_000 }, async () => {
    const room = uniqueRoom('pull');
    const alice = await c.client(0, 'alice');
    await alice.subscribe(`room.${room}`);
    const nats = natsSession(c.ports.nats);
    const del = () => nats.request('$JS.API.CONSUMER.DELETE.NATTER_IN.natter_p0', '');
    const setups = () => c.metric('persister', 'natter_persister_consumer_setups_total');
    // the partition's first consumer (set up once the persister claims it)
    await waitUntil(async () => await setups() >= 1, { what: 'the first consumer set up' });
    const setupsBefore = await setups();
    try {
      await sendMany(alice, `room.${room}`, items(0, 50));
      // idle: the persister's long poll is open when the consumer goes (answered
      // with 409); without one, the next pull request is not answered at all
      await sleep(700);
      const idle = await del();
      assert.equal(idle.success, true, JSON.stringify(idle));
      await sendMany(alice, `room.${room}`, items(50, 50));
      // busy: deleted while sends are being stored, after the first 40 acks
      let acked = 0, deleted = null;
      await sendMany(alice, `room.${room}`, items(100, 200), {
        window: 20,
        onReply: () => { if (++acked === 40) deleted = del(); },
      });
      const busy = await deleted;
      assert.equal(busy.success, true, JSON.stringify(busy));
      await sendMany(alice, `room.${room}`, items(300, 50));
      assert.equal(await setups() - setupsBefore, 2, 'the consumer was set up again after each deletion');
      const info = await nats.request('$JS.API.CONSUMER.INFO.NATTER_IN.natter_p0', '');
      assert.equal(info.error, undefined, `the consumer is back: ${JSON.stringify(info.error)}`);
      assert.equal(info.config.ack_policy, 'all');
      assert.equal(info.config.filter_subject, 'natter.in.*.0');
      // everything stored is acked back to the consumer (AckAll on each batch's last)
      await waitUntil(async () => {
        const i = await nats.request('$JS.API.CONSUMER.INFO.NATTER_IN.natter_p0', '');
        return i.num_ack_pending === 0 && i.num_pending === 0;
      }, { what: 'the recreated consumer has nothing pending or unacked' });
    } finally {
      nats.close();
    }
    const rows = await c.query('SELECT seq, client_msg_id FROM messages WHERE app = $1 AND room = $2 ORDER BY seq',
      ['default', room]);
    assert.equal(seqProblem(rows.map((r) => Number(r.seq)), 1, 350), null);
    assert.deepEqual(rows.map((r) => r.client_msg_id), items(0, 350).map((it) => it.cmid), 'stored in send order');
    alice.close();
  });
