// nats_restart.test.mjs — nats-server restarted under a running cluster (same port and
// JetStream store): every natter process reconnects on its own, the gateways' room and
// user subscriptions come back (cnats resubscribes; the gateway takes their messages on
// its loop thread again), a send made once everything is ready is acked, stored once
// and delivered on both gateways, and the server API reaches users connected before
// and after the restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { useCluster, uniqueRoom, waitUntil } from './lib/cluster.mjs';

// info: the reconnects are logged at that level
const c = useCluster({ env: { NATTER_LOG_LEVEL: 'info' } });
const reconnects = (name) =>
  fs.readFileSync(path.join(c.logDir, `${name}.log`), 'utf8').split('nats: reconnected').length - 1;

for (const kill of [false, true]) {
  test(`nats-server ${kill ? 'killed (-9)' : 'stopped'} and started again: subscriptions, sends, acks and notify work again`,
    { timeout: 120_000 }, async () => {
      const room = uniqueRoom('nr');
      const ch = `room.${room}`;
      const alice = await c.client(0, `${room}_alice`);
      const bob = await c.client(1, `${room}_bob`);
      await alice.subscribe(ch);
      await bob.subscribe(ch);
      const first = await alice.ack('send_message', ch, { message: 'before', client_msg_id: 'nr-0' });
      assert.equal(first.seq, 1);
      await bob.next((e) => e.event === 'message' && e.data.seq === 1);

      const names = ['router', 'persister', ...c.gatewayNames];
      const before = names.map(reconnects);
      await c.restartNats({ kill });
      await waitUntil(async () => names.every((n, i) => reconnects(n) > before[i]) && c.allReady(),
        { timeoutMs: 30_000, what: 'every natter process reconnected and ready after the restart' });

      // The same idempotency key may be retried until the persister's consumer is back.
      let ack;
      await waitUntil(async () => {
        const r = await alice.request('send_message', ch, { message: 'after', client_msg_id: 'nr-1' }, { timeoutMs: 10_000 })
          .catch((e) => ({ event: 'timeout', e }));
        if (r.event === 'ack') ack = r.data;
        return !!ack;
      }, { timeoutMs: 60_000, intervalMs: 500, what: 'an ack for a send after the restart' });
      assert.equal(ack.seq, 2);
      const got = await bob.next((e) => e.event === 'message' && e.data.seq === 2);
      assert.equal(got.data.message, 'after');
      const rows = await c.query('SELECT seq FROM messages WHERE room = $1 ORDER BY seq', [room]);
      assert.deepEqual(rows.map((r) => Number(r.seq)), [1, 2]);

      // user subjects: one connected before the restart, one after
      const carol = await c.client(1, `${room}_carol`);
      for (const [cl, user] of [[bob, `${room}_bob`], [carol, `${room}_carol`]]) {
        const r = await c.http(0, 'POST', '/api/server/notify', {
          body: { user_ids: [user], data: { after: true } }, headers: { Authorization: `Bearer ${c.apiKey}` } });
        assert.equal(r.status, 200, r.text);
        assert.deepEqual((await cl.next((e) => e.event === 'notification', 10_000)).data, { after: true });
      }
      await Promise.all([alice.close(), bob.close(), carol.close()]);
    });
}
