// room_ack.test.mjs — a send's ack rides on its room's message event: the gateway
// holds the room's subject for every send awaiting its ack (a dm send without a
// subscription subscribes it), so the ack arrives even when the connection
// unsubscribes before the commit, and the subject is dropped once the ack is sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom, waitUntil } from './lib/cluster.mjs';

const c = useCluster({ env: { NATTER_REQUEST_TIMEOUT_MS: '30000' } });

const roomSubjects = (gw) => c.metric(gw, 'natter_gateway_room_subjects');

test('unsubscribed before the commit: the ack still arrives, then the room subject is dropped',
  { timeout: 90_000 }, async () => {
    const gw = c.gatewayNames[0];
    const room = uniqueRoom('rack');
    const alice = await c.client(0, 'alice');
    await alice.subscribe(`room.${room}`);
    await alice.ack('send_message', `room.${room}`, { message: 'before', client_msg_id: 'rack-1' });
    const held = await roomSubjects(gw);

    await c.stopProcess('persister');
    const reply = alice.request('send_message', `room.${room}`, { message: 'in flight', client_msg_id: 'rack-2' },
      { timeoutMs: 60_000 });
    await alice.ack('unsubscribe', `room.${room}`);
    assert.equal(await roomSubjects(gw), held, 'the pending send keeps the room subject');
    await c.startProcess('persister');

    const ev = await reply;
    assert.equal(ev.event, 'ack', JSON.stringify(ev));
    assert.equal(ev.data.seq, 2);
    assert.equal(ev.data.client_msg_id, 'rack-2');
    await waitUntil(async () => (await roomSubjects(gw)) === held - 1, { what: 'room subject dropped after the ack' });
    assert.equal(alice.messages(room).filter((m) => m.data.seq === 2).length, 0,
      'the message itself is not delivered to a connection that unsubscribed');
    alice.close();
  });

test('a dm send without a subscription holds the dm room subject until its ack', { timeout: 90_000 }, async () => {
  const gw = c.gatewayNames[0];
  const carol = await c.client(0, 'carol');
  const dave = await c.client(1, 'dave');
  const first = await carol.ack('send_message', 'dm.dave', { message: 'hi dave', client_msg_id: 'dm-1' });
  assert.ok(first.room_id.startsWith('dm_'));
  await waitUntil(async () => (await roomSubjects(gw)) === 0, { what: 'no room subject held' });

  // The dm send asks the persister for the room first, so hold the commit up instead
  // of stopping the persister: another session locks every partition's row.
  const holder = await c.pool.connect();
  let reply;
  try {
    await holder.query('BEGIN');
    await holder.query('SELECT p FROM partitions FOR UPDATE');
    reply = carol.request('send_message', 'dm.dave', { message: 'again', client_msg_id: 'dm-2' }, { timeoutMs: 60_000 });
    await waitUntil(async () => (await roomSubjects(gw)) === 1, { what: 'the dm room subject held by the pending send' });
  } finally {
    await holder.query('COMMIT').catch(() => {});
    holder.release();
  }
  const ev = await reply;
  assert.equal(ev.event, 'ack', JSON.stringify(ev));
  assert.equal(ev.data.room_id, first.room_id);
  assert.equal(ev.data.seq, 2);
  await waitUntil(async () => (await roomSubjects(gw)) === 0, { what: 'dm room subject released after the ack' });
  const rows = await c.query('SELECT body FROM messages WHERE room = $1 ORDER BY seq', [first.room_id]);
  assert.deepEqual(rows.map((r) => r.body), ['hi dave', 'again']);
  carol.close();
  dave.close();
});
