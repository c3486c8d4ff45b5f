// receipts_unread.test.mjs — done-when 1 and 2 of issue 3: read receipts, unread
// counts (rooms.last_seq − members.last_read_seq) on every connection of a user,
// GET /api/me/unread, marks that only move forward, and a model check across many
// rooms with random reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, sendMany, uniqueRoom, waitUntil } from './lib/cluster.mjs';

const c = useCluster({ env: { NATTER_UNREAD_FLUSH_MS: '100', NATTER_MAX_PENDING_SENDS: '1024' } });

const unreadOf = (room) => (e) => e.event === 'unread' && e.data?.rooms && room in e.data.rooms;
const lastUnread = (cl, room) => {
  const evs = cl.all(unreadOf(room));
  return evs.length ? evs[evs.length - 1].data.rooms[room] : undefined;
};

test('read up to 3 of 5: receipt to the sender, unread 5 -> 2 on every connection of the reader', { timeout: 120_000 }, async () => {
  const room = uniqueRoom('rcpt');
  const ch = `room.${room}`;
  const a = await c.client(0, 'ua');
  const b1 = await c.client(0, 'ub');
  const b2 = await c.client(1, 'ub');
  const cc = await c.client(1, 'uc');
  await a.subscribe(ch);
  await b1.subscribe(ch);
  await cc.subscribe(ch);
  // b2 is subscribed to nothing: unread events go to the user, not the room.

  const acks = await sendMany(a, ch, Array.from({ length: 5 }, (_, k) => ({ message: `m${k}`, cmid: `a-${k}` })));
  assert.deepEqual(acks.map((e) => e.data.seq), [1, 2, 3, 4, 5]);

  for (const cl of [b1, b2, cc]) {
    await waitUntil(() => lastUnread(cl, room) === 5, { what: `${cl.label}: unread 5 for ${room}` });
  }
  assert.equal(lastUnread(a, room) ?? 0, 0, 'the sender has read its own messages');

  // C's own count passes through every value up to 5 when a flush falls between the
  // commits; from here on it is 5 or more, so a 2 could only be B's event.
  const cFrom = cc.all(unreadOf(room)).length;
  const ack = await b1.ack('read', ch, { seq: 3 });
  assert.deepEqual(ack, { last_read_seq: 3, unread: 2 });

  const receipt = await a.next((e) => e.event === 'receipt' && e.data?.room_id === room);
  assert.equal(receipt.channel, ch);
  assert.equal(receipt.data.user_id, 'ub');
  assert.equal(receipt.data.type, 'read');
  assert.equal(receipt.data.seq, 3);
  assert.ok(!Number.isNaN(Date.parse(receipt.data.at)), `at is a timestamp: ${receipt.data.at}`);

  for (const cl of [b1, b2]) {
    const ev = await cl.next((e) => unreadOf(room)(e) && e.data.rooms[room] === 2);
    assert.equal(ev.data.total, 2, `${cl.label}: total`);
  }
  const r = await c.http(0, 'GET', '/api/me/unread', { token: c.token('ub') });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.rooms[room], 2);
  assert.equal(r.json.total, 2);
  const rc = await c.http(1, 'GET', '/api/me/unread', { token: c.token('uc') });
  assert.equal(rc.json.rooms[room], 5);

  // A read behind the mark changes nothing: same ack, no receipt, no unread event.
  const before = { a: a.all((e) => e.event === 'receipt').length, b: b2.all(unreadOf(room)).length };
  assert.deepEqual(await b2.ack('read', ch, { seq: 1 }), { last_read_seq: 3, unread: 2 });
  // an unrelated later message flushes everything published before it
  await a.ack('send_message', ch, { message: 'after', client_msg_id: 'a-after' });
  await waitUntil(() => lastUnread(b2, room) === 3, { what: 'unread 3 after the 6th message' });
  assert.equal(a.all((e) => e.event === 'receipt' && e.data.user_id === 'ub').length, before.a, 'no receipt for a read behind the mark');
  const seen = b2.all(unreadOf(room)).slice(before.b).map((e) => e.data.rooms[room]);
  assert.deepEqual(seen, [3], `b2 unread events after the stale read: ${JSON.stringify(seen)}`);
  assert.equal(lastUnread(cc, room), 6);
  const cSeen = cc.all(unreadOf(room)).map((e) => e.data.rooms[room]);
  assert.ok(!cSeen.slice(cFrom).includes(2), `C never sees B's count (C's counts: ${JSON.stringify(cSeen)}, read at ${cFrom})`);
  assert.equal((await c.query('SELECT last_read_seq FROM members WHERE room = $1 AND user_id = $2', [room, 'ub']))[0].last_read_seq, '3');

  // read by message ids, delivered, and the REST read
  const hist = await b1.ack('history', ch, { after_seq: 0, limit: 10 });
  const id5 = hist.messages.find((m) => m.seq === 5).id;
  assert.deepEqual(await b1.ack('read', ch, { message_ids: [hist.messages[0].id, id5, 'not-an-id'] }), { last_read_seq: 5, unread: 1 });
  assert.deepEqual(await b1.ack('delivered', ch, { seq: 6 }), { last_delivered_seq: 6 });
  assert.deepEqual(await b1.ack('delivered', ch, { seq: 2 }), { last_delivered_seq: 6 });
  const dr = await a.next((e) => e.event === 'receipt' && e.data?.type === 'delivered' && e.data.room_id === room);
  assert.equal(dr.data.seq, 6);
  const pr = await c.http(1, 'POST', `/api/rooms/${room}/read`, { token: c.token('ub'), body: { seq: 6 } });
  assert.equal(pr.status, 200, pr.text);
  assert.deepEqual(pr.json, { last_read_seq: 6, unread: 0 });
  await waitUntil(() => lastUnread(b2, room) === 0, { what: 'unread 0 after the REST read' });

  // errors
  const bad = await b1.request('read', ch, { seq: -1 });
  assert.equal(bad.data.code, 'bad_request');
  const none = await b1.request('read', ch, {});
  assert.equal(none.data.code, 'bad_request');
  const notMember = await (await c.client(0, 'stranger')).request('read', ch, { seq: 1 });
  assert.equal(notMember.data.code, 'forbidden');
  const noRoom = await b1.request('read', `room.${uniqueRoom('none')}`, { seq: 1 });
  assert.equal(noRoom.data.code, 'not_found');
  const prBad = await c.http(0, 'POST', `/api/rooms/${room}/read`, { token: c.token('ub'), body: { seq: 'x' } });
  assert.equal(prBad.status, 400);

  // the chat list
  const list = await c.http(0, 'GET', '/api/rooms', { token: c.token('uc') });
  assert.equal(list.status, 200, list.text);
  const mine = list.json.find((x) => x.room_id === room);
  assert.ok(mine, JSON.stringify(list.json));
  assert.equal(mine.unread, 6);
  assert.equal(mine.last_seq, 6);
  assert.equal(mine.last_message.message, 'after');
  assert.equal(mine.last_message.seq, 6);
  assert.ok(mine.last_activity_at);
});

test('unread counts match a model across 50 rooms x 200 messages with random reads', { timeout: 240_000 }, async () => {
  const ROOMS = 50, PER_ROOM = 200, SENDERS = 5;
  const tag = uniqueRoom('m');
  const rooms = Array.from({ length: ROOMS }, (_, i) => `${tag}-${i}`);
  const readers = [];
  for (const [user, gw] of [['mr1', 0], ['mr2', 1], ['mr3', 1]]) readers.push({ user, cl: await c.client(gw, user) });
  const senders = [];
  for (let s = 0; s < SENDERS; s++) senders.push(await c.client(s % 2, `ms${s}`));
  // membership: every sender in its rooms, every reader in all rooms (then no live delivery)
  for (const [i, room] of rooms.entries()) {
    await senders[i % SENDERS].subscribe(`room.${room}`);
    for (const r of readers) {
      await r.cl.subscribe(`room.${room}`);
      await r.cl.ack('unsubscribe', `room.${room}`);
    }
  }
  let seed = 12345;
  const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  const acked = Object.fromEntries(rooms.map((r) => [r, 0]));
  const model = Object.fromEntries(readers.map((r) => [r.user, Object.fromEntries(rooms.map((x) => [x, 0]))]));
  const reads = [];
  const readProblems = [];
  const randomRead = (room) => {
    const r = readers[rnd(readers.length)];
    const seq = rnd(acked[room] + 1);
    reads.push(r.cl.ack('read', `room.${room}`, { seq }).then((a) => {
      const want = Math.max(model[r.user][room], seq);
      model[r.user][room] = want;
      if (a.last_read_seq < seq) readProblems.push(`${r.user} ${room}: read ${seq} acked ${a.last_read_seq}`);
    }));
  };

  await Promise.all(senders.map((s, si) => (async () => {
    const mine = rooms.filter((_, i) => i % SENDERS === si);
    for (let k = 0; k < PER_ROOM; k += 50) {
      await Promise.all(mine.map((room) => sendMany(s, `room.${room}`,
        Array.from({ length: 50 }, (_, j) => ({ message: `x${k + j}`, cmid: `${room}-${k + j}` })),
        { window: 50, onReply: (i, ev) => { if (ev.event === 'ack') acked[room] = Math.max(acked[room], ev.data.seq); if (rnd(10) === 0) randomRead(room); } })));
    }
  })()));
  // a final round of reads, some with message ids
  for (const room of rooms) {
    if (rnd(3) === 0) {
      const r = readers[rnd(readers.length)];
      const seq = 1 + rnd(PER_ROOM);
      const h = await r.cl.ack('history', `room.${room}`, { after_seq: seq - 1, limit: 1 });
      reads.push(r.cl.ack('read', `room.${room}`, { message_ids: [h.messages[0].id] }).then(() => {
        model[r.user][room] = Math.max(model[r.user][room], seq);
      }));
    }
  }
  await Promise.all(reads);
  assert.deepEqual(readProblems, []);
  assert.ok(reads.length > 100, `only ${reads.length} reads`);

  for (const r of readers) {
    const want = Object.fromEntries(rooms.map((x) => [x, PER_ROOM - model[r.user][x]]));
    const wantTotal = Object.values(want).reduce((a, b) => a + b, 0);
    const last = () => Object.fromEntries(rooms.map((x) => [x, lastUnread(r.cl, x)]));
    await waitUntil(() => JSON.stringify(last()) === JSON.stringify(want), { timeoutMs: 30_000, what: `${r.user}: last unread event per room equals the model` })
      .catch(() => assert.deepEqual(last(), want, `${r.user}: last unread event per room`));
    const evs = r.cl.all((e) => e.event === 'unread');
    assert.equal(evs[evs.length - 1].data.total, wantTotal, `${r.user}: total of the last unread event`);
    const res = await c.http(0, 'GET', '/api/me/unread', { token: c.token(r.user) });
    assert.equal(res.status, 200, res.text);
    const got = Object.fromEntries(rooms.map((x) => [x, res.json.rooms[x]]));
    assert.deepEqual(got, want, `${r.user}: GET /api/me/unread`);
    assert.equal(res.json.total, wantTotal);
    // coalesced: far fewer unread events than messages
    assert.ok(evs.length < ROOMS * PER_ROOM / 2, `${r.user}: ${evs.length} unread events for ${ROOMS * PER_ROOM} messages`);
  }
});
