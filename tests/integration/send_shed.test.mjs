// send_shed.test.mjs — NATTER_MAX_INFLIGHT_SENDS bounds the sends one gateway has
// awaiting the store, over all its connections. With the persister stopped, gw1 takes
// three sends from three connections; the fourth, from a fourth connection (well under
// its own per-connection limit), is refused at once with `unavailable`, is not
// published and is not stored. gw2 has its own bound and still takes a send. Once the
// persister is back, the held sends are acked in one gap-free order, the gauge drops
// to 0 and the refused send goes through when retried with its client_msg_id.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, seqProblem, uniqueRoom, waitUntil } from './lib/cluster.mjs';

const c = useCluster({
  env: { NATTER_REQUEST_TIMEOUT_MS: '120000', NATTER_CLAIM_INTERVAL_MS: '1000' },
  procEnv: { gw1: { NATTER_MAX_INFLIGHT_SENDS: '3' }, gw2: { NATTER_MAX_INFLIGHT_SENDS: '3' } },
});

test('a gateway refuses sends over NATTER_MAX_INFLIGHT_SENDS while the store is behind', { timeout: 120_000 }, async () => {
  const room = uniqueRoom('shed');
  const ch = `room.${room}`;
  const users = ['u1', 'u2', 'u3', 'u4'];
  const gw1 = [];
  for (const u of users) gw1.push(await c.client(0, u));
  const other = await c.client(1, 'u5');
  for (const cl of [...gw1, other]) await cl.subscribe(ch);
  const warm = await gw1[0].ack('send_message', ch, { message: 'warm', client_msg_id: 'shed-0' });
  assert.equal(warm.seq, 1);
  await waitUntil(async () => (await c.metric('gw1', 'natter_gateway_sends_inflight')) === 0, { what: 'gw1 idle' });

  await c.stopProcess('persister');
  const held = gw1.slice(0, 3).map((cl, i) =>
    cl.request('send_message', ch, { message: `held ${i}`, client_msg_id: `shed-${i + 1}` }, { timeoutMs: 100_000 }));
  await waitUntil(async () => (await c.metric('gw1', 'natter_gateway_sends_inflight')) === 3,
    { what: 'three sends awaiting the store on gw1' });

  const refused = await gw1[3].request('send_message', ch, { message: 'one too many', client_msg_id: 'shed-4' });
  assert.equal(refused.event, 'error', JSON.stringify(refused));
  assert.equal(refused.data.code, 'unavailable');
  assert.match(refused.data.message, /overloaded: 3 sends on this gateway are awaiting storage/);
  assert.equal(await c.metric('gw1', 'natter_gateway_sends_shed_total'), 1);
  assert.equal(await c.metric('gw1', 'natter_gateway_sends_inflight'), 3, 'the refused send is not held');
  const otherSend = other.request('send_message', ch, { message: 'via gw2', client_msg_id: 'shed-5' }, { timeoutMs: 100_000 });
  await waitUntil(async () => (await c.metric('gw2', 'natter_gateway_sends_inflight')) === 1, { what: 'gw2 takes its own' });
  // the gauge rises when gw2 publishes; JetStream may store it a moment later
  await waitUntil(async () => (await c.stream('NATTER_IN')).state.messages >= 5, { what: 'gw2\'s send stored in the stream' });
  const stream = await c.stream('NATTER_IN');
  assert.equal(stream.state.messages, 5, `warm + 3 held + 1 via gw2 in the stream, the refused one not: ${JSON.stringify(stream.state)}`);

  await c.startProcess('persister');
  const acks = await Promise.all([...held, otherSend]);
  for (const a of acks) assert.equal(a.event, 'ack', JSON.stringify(a));
  const seqs = acks.map((a) => a.data.seq).sort((x, y) => x - y);
  assert.equal(seqProblem(seqs, 2, 5), null, `held sends: ${seqs}`);
  await waitUntil(async () => (await c.metric('gw1', 'natter_gateway_sends_inflight')) === 0, { what: 'gw1 drained' });
  const stored = await c.query('SELECT client_msg_id FROM messages WHERE room = $1 ORDER BY seq', [room]);
  assert.deepEqual(stored.map((r) => r.client_msg_id).filter((x) => x === 'shed-4'), [], 'the refused send was not stored');

  const retry = await gw1[3].ack('send_message', ch, { message: 'one too many', client_msg_id: 'shed-4' });
  assert.equal(retry.seq, 6);
  assert.equal(await c.metric('gw1', 'natter_gateway_sends_shed_total'), 1);
});
