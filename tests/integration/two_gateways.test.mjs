// two_gateways.test.mjs — done-when 1: two clients on different gateways in one room;
// each message arrives at both, once, with the same seq; the sender's ack carries
// id/seq and arrives only after the row exists in PostgreSQL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom } from './lib/cluster.mjs';

const c = useCluster();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

test('connected event names the verified user', async () => {
  const a = await c.client(0, 'alice', { name: 'Alice' });
  assert.equal(a.connected.user_id, 'alice');
  assert.equal(a.connected.app, 'default');
  assert.equal(typeof a.connected.connection_id, 'string');
  assert.ok(a.connected.connection_id.length > 0);
  assert.equal(typeof a.connected.ping_interval, 'number');
  a.close();
});

test('messages cross gateways once each, same seq on both sides, ack after commit', { timeout: 120_000 }, async () => {
  const room = uniqueRoom('tg');
  const channel = `room.${room}`;
  const alice = await c.client(0, 'alice', { name: 'Alice' });   // gw1
  const bob = await c.client(1, 'bob', { name: 'Bob' });         // gw2
  const sa = await alice.subscribe(channel);
  assert.equal(sa.room_id, room);
  assert.equal(sa.last_seq, 0);
  const sb = await bob.subscribe(channel);
  assert.equal(sb.room_id, room);

  const plan = [
    [alice, 'alice', 'hello from gw1'],
    [bob, 'bob', 'hello from gw2'],
    [alice, 'alice', 'second from alice'],
    [bob, 'bob', 'ünïcödé ✓ 🎉'],
    [alice, 'alice', 'third from alice'],
  ];
  const acks = [];
  for (const [i, [client, user, text]] of plan.entries()) {
    const cmid = `tg-${user}-${i}`;
    const ack = await client.ack('send_message', channel, { message: text, client_msg_id: cmid });
    // The ack means "committed": the row must already be visible, with the same id and seq.
    const rows = await c.query(
      'SELECT id::text AS id, seq, room, sender, body, client_msg_id FROM messages WHERE id = $1', [ack.id]);
    assert.equal(rows.length, 1, `row for acked message ${ack.id} must exist when the ack arrives`);
    assert.equal(Number(rows[0].seq), ack.seq);
    assert.equal(rows[0].room, room);
    assert.equal(rows[0].sender, user);
    assert.equal(rows[0].body, text);
    assert.equal(rows[0].client_msg_id, cmid);

    assert.match(ack.id, UUID);
    assert.equal(ack.room_id, room);
    assert.equal(ack.client_msg_id, cmid);
    assert.equal(ack.seq, i + 1, 'seqs of a new room start at 1 and have no gap');
    assert.ok(!Number.isNaN(Date.parse(ack.created_at)), `created_at is a date: ${ack.created_at}`);
    acks.push({ ...ack, user, text });
  }

  // A sentinel closes the sequence: duplicates of earlier messages would come before it.
  const last = await alice.ack('send_message', channel, { message: 'sentinel', client_msg_id: 'tg-sentinel' });
  for (const who of [alice, bob]) {
    await who.next((e) => e.event === 'message' && e.data?.id === last.id, 30_000);
  }
  // Both gateways took the room events on their loop thread (cnats's filter, bus.c)
  // and dropped none; the other processes expose their bus counters too.
  for (const gw of c.gatewayNames) {
    assert.ok(await c.metric(gw, 'natter_gateway_nats_loop_delivered_total') >= acks.length + 1, gw);
    assert.equal(await c.metric(gw, 'natter_gateway_nats_dropped_total'), 0, gw);
  }
  assert.equal(await c.metric('router', 'natter_router_nats_dropped_total'), 0);
  assert.equal(await c.metric('persister', 'natter_persister_nats_dropped_total'), 0);
  for (const who of [alice, bob]) {
    const got = who.messages(room).filter((e) => e.data.id !== last.id);
    assert.equal(got.length, acks.length, `${who.label} receives each message exactly once`);
    for (const [k, ack] of acks.entries()) {
      const ev = got[k];
      assert.equal(ev.channel, channel);
      assert.equal(ev.data.id, ack.id);
      assert.equal(ev.data.seq, ack.seq, 'live seq equals ack seq');
      assert.equal(ev.data.room_id, room);
      assert.equal(ev.data.sender_id, ack.user);
      assert.equal(ev.data.sender_name, ack.user === 'alice' ? 'Alice' : 'Bob');
      assert.equal(ev.data.message, ack.text);
      assert.equal(ev.data.message_type, 'text');
      assert.equal(ev.data.client_msg_id, ack.client_msg_id);
      assert.equal(ev.data.created_at, ack.created_at);
    }
  }
  assert.deepEqual(alice.duplicateReplies, []);
  assert.deepEqual(bob.duplicateReplies, []);
  alice.close();
  bob.close();
});

test('the sender id comes from the token, never from the frame', async () => {
  const room = uniqueRoom('spoof');
  const mallory = await c.client(0, 'mallory');
  const victim = await c.client(1, 'victim');
  await mallory.subscribe(`room.${room}`);
  await victim.subscribe(`room.${room}`);
  const ack = await mallory.ack('send_message', `room.${room}`,
    { message: 'i am victim', sender_id: 'victim', user_id: 'victim', sender_name: 'Victim' });
  const ev = await victim.next((e) => e.event === 'message' && e.data?.id === ack.id);
  assert.equal(ev.data.sender_id, 'mallory');
  const [row] = await c.query('SELECT sender FROM messages WHERE id = $1', [ack.id]);
  assert.equal(row.sender, 'mallory');
  mallory.close();
  victim.close();
});

test('first-frame auth works like the query token, on either gateway', async () => {
  const room = uniqueRoom('ff');
  const a = await c.client(1, 'carol', { auth: 'frame' });
  assert.equal(a.connected.user_id, 'carol');
  const b = await c.client(0, 'dave', { auth: 'frame' });
  await a.subscribe(`room.${room}`);
  await b.subscribe(`room.${room}`);
  const ack = await b.ack('send_message', `room.${room}`, { message: 'hi carol' });
  const ev = await a.next((e) => e.event === 'message' && e.data?.id === ack.id);
  assert.equal(ev.data.seq, 1);
  assert.equal(typeof ack.client_msg_id, 'string', 'the server fills client_msg_id when the client gave none');
  assert.ok(ack.client_msg_id.length > 0);
  a.close();
  b.close();
});

test('unsubscribe stops live delivery to that connection only', async () => {
  const room = uniqueRoom('unsub');
  const ch = `room.${room}`;
  const a = await c.client(0, 'erin');
  const b = await c.client(1, 'frank');
  await a.subscribe(ch);
  await b.subscribe(ch);
  await a.ack('unsubscribe', ch);
  const m1 = await b.ack('send_message', ch, { message: 'while erin is unsubscribed' });
  await b.next((e) => e.event === 'message' && e.data?.id === m1.id);
  const sub = await a.subscribe(ch);
  assert.equal(sub.last_seq, 1);
  const m2 = await b.ack('send_message', ch, { message: 'live again' });
  await a.next((e) => e.event === 'message' && e.data?.id === m2.id, 30_000);
  assert.deepEqual(a.messages(room).map((e) => e.data.seq), [2], 'nothing while unsubscribed, then live again');
  a.close();
  b.close();
});
