// bad_input.test.mjs — done-when 5: malformed JSON, unknown action, missing fields, wrong
// types, a 70 KiB frame, a 5001-char message, invalid/expired/alg:none tokens, bad room
// names: each gets the documented error or close code, the gateway keeps serving, and
// nothing is stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, useCluster, uniqueRoom } from './lib/cluster.mjs';

const AUTH_TIMEOUT_MS = 1500;
const c = useCluster({ env: { NATTER_AUTH_TIMEOUT_MS: String(AUTH_TIMEOUT_MS) } });

let stored = 0;   // messages this file legitimately stored

function assertError(ev, code, what) {
  assert.equal(ev.event, 'error', `${what}: ${JSON.stringify(ev)}`);
  assert.equal(ev.data?.code, code, `${what}: ${JSON.stringify(ev)}`);
  assert.equal(typeof ev.data?.message, 'string', `${what}: error has a human message`);
}

async function stillServes(cl, what) {
  cl.send({ action: 'ping' });
  await cl.next((e) => e.event === 'pong', 15_000);
  assert.ok(cl.isOpen, `${what}: connection still open`);
}

test('frames that are not a valid request get bad_request and the connection keeps working', { timeout: 120_000 }, async () => {
  const room = uniqueRoom('bi');
  const ch = `room.${room}`;
  const cl = await c.client(0, 'alice');
  await cl.subscribe(ch);

  // No usable ref: the error comes without one.
  for (const raw of ['{"action":', 'not json at all', '[1,2,3]', '"just a string"', '42', 'null', '{}']) {
    cl.sendRaw(raw);
    const ev = await cl.next((e) => e.event === 'error', 15_000);
    assertError(ev, 'bad_request', `frame ${raw}`);
    await stillServes(cl, `after ${raw}`);
  }

  // With a ref: answered on that ref.
  const cases = [
    ['unknown action', { action: 'fly', channel: ch }],
    ['missing action', { channel: ch, data: { message: 'x' } }],
    ['action of the wrong type', { action: 42, channel: ch }],
    ['message is a number', { action: 'send_message', channel: ch, data: { message: 42 } }],
    ['message is null', { action: 'send_message', channel: ch, data: { message: null } }],
    ['data is a string', { action: 'send_message', channel: ch, data: 'hello' }],
    ['data is an array', { action: 'send_message', channel: ch, data: ['hello'] }],
    ['channel is a number', { action: 'send_message', channel: 7, data: { message: 'x' } }],
    ['client_msg_id is an object', { action: 'send_message', channel: ch, data: { message: 'x', client_msg_id: { a: 1 } } }],
    ['client_msg_id longer than 64', { action: 'send_message', channel: ch, data: { message: 'x', client_msg_id: 'c'.repeat(65) } }],
    ['send_message without data', { action: 'send_message', channel: ch }],
    ['send_message without message', { action: 'send_message', channel: ch, data: {} }],
    ['send_message without channel', { action: 'send_message', data: { message: 'x' } }],
    ['subscribe without channel', { action: 'subscribe' }],
    ['empty message', { action: 'send_message', channel: ch, data: { message: '' } }],
  ];
  for (const [what, frame] of cases) {
    const ref = `bad-${what.replace(/\W+/g, '-')}`;
    cl.send({ ...frame, ref });
    const ev = await cl.next((e) => e.event === 'error' && e.ref === ref, 15_000);
    assertError(ev, 'bad_request', what);
  }

  // A ref that is neither a short string nor an integer.
  for (const ref of [{ a: 1 }, 'r'.repeat(65), [1], 1.5]) {
    cl.send({ action: 'subscribe', channel: ch, ref });
    const ev = await cl.next((e) => e.event === 'error', 15_000);
    assertError(ev, 'bad_request', `ref ${JSON.stringify(ref)}`);
  }
  await stillServes(cl, 'after the bad requests');
  cl.close();
});

test('room names outside [A-Za-z0-9_-]{1,64} are bad_request for subscribe and send', async () => {
  const cl = await c.client(1, 'bob');
  const bad = ['room.', 'room.a b', `room.${'a'.repeat(65)}`, 'room.a/b', 'room.ä', 'room.a.b', 'room', 'lobby.x', ''];
  for (const channel of bad) {
    const sub = await cl.request('subscribe', channel, {});
    assertError(sub, 'bad_request', `subscribe ${JSON.stringify(channel)}`);
    const send = await cl.request('send_message', channel, { message: 'x' });
    assertError(send, 'bad_request', `send_message ${JSON.stringify(channel)}`);
  }
  // The longest valid name is fine.
  const ok = await cl.subscribe(`room.${'a'.repeat(64)}`);
  assert.equal(ok.room_id, 'a'.repeat(64));
  cl.close();
});

test('message length: 5001 chars is too_large, 5000 multi-byte chars are accepted', async () => {
  const room = uniqueRoom('len');
  const ch = `room.${room}`;
  const cl = await c.client(0, 'carol');
  await cl.subscribe(ch);
  const long = await cl.request('send_message', ch, { message: 'x'.repeat(5001) });
  assertError(long, 'too_large', '5001-char message');
  const ok = await cl.ack('send_message', ch, { message: 'é'.repeat(5000) });   // 10,000 bytes
  assert.equal(ok.seq, 1);
  stored++;
  await stillServes(cl, 'after too_large');
  cl.close();
});

test('a 70 KiB frame closes the connection with 1009', async () => {
  const cl = await c.client(0, 'dave');
  cl.sendRaw(JSON.stringify({ action: 'send_message', channel: `room.${uniqueRoom('big')}`, data: { message: 'x'.repeat(70 * 1024) } }));
  const { code } = await cl.waitClose(15_000);
  assert.equal(code, 1009);
});

test('a binary frame closes with 1003, invalid UTF-8 with 1007', async () => {
  const bin = await c.client(1, 'erin');
  bin.sendRaw(Buffer.from(JSON.stringify({ action: 'ping' })), { binary: true });
  assert.equal((await bin.waitClose(15_000)).code, 1003);

  const utf = await c.client(1, 'erin');
  utf.sendRaw(Buffer.from([0x7b, 0x22, 0x61, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });   // {"a\xff\xfe"}
  assert.equal((await utf.waitClose(15_000)).code, 1007);
});

async function expectUnauthorized(cl, what) {
  const ev = await cl.next((e) => e.event === 'error', 15_000).catch((e) => {
    throw new Error(`${what}: no error event (${e.message})`);
  });
  assertError(ev, 'unauthorized', what);
  const { code } = await cl.waitClose(15_000);
  assert.equal(code, 4001, `${what}: close code`);
  assert.equal(cl.all((e) => e.event === 'connected').length, 0, `${what}: never connected`);
}

test('refused tokens via ?token=: error unauthorized, then close 4001', async () => {
  for (const [why, token] of Object.entries(c.badTokens('mallory'))) {
    const cl = await Client.open(c.wsUrl(0, `?token=${encodeURIComponent(token)}`), { label: `query ${why}` });
    await expectUnauthorized(cl, `?token= ${why}`);
  }
});

test('refused tokens via first-frame auth: error unauthorized, then close 4001', async () => {
  for (const [why, token] of Object.entries(c.badTokens('mallory'))) {
    const cl = await Client.open(c.wsUrl(1), { label: `frame ${why}` });
    cl.send({ action: 'auth', data: { token } });
    await expectUnauthorized(cl, `auth frame ${why}`);
  }
  // An auth frame without a token at all.
  const cl = await Client.open(c.wsUrl(1), { label: 'frame without token' });
  cl.send({ action: 'auth', data: {} });
  await expectUnauthorized(cl, 'auth frame without token');
});

test('no auth within NATTER_AUTH_TIMEOUT_MS: close 4001', async () => {
  const cl = await Client.open(c.wsUrl(0), { label: 'silent' });
  const { code } = await cl.waitClose(AUTH_TIMEOUT_MS + 15_000);
  assert.equal(code, 4001);
  assert.equal(cl.all((e) => e.event === 'connected').length, 0);
});

test('HTTP with a refused token: 401 unauthorized', async () => {
  const room = uniqueRoom('http');
  for (const [why, token] of Object.entries(c.badTokens('mallory'))) {
    const r = await c.http(0, 'GET', `/api/rooms/${room}/messages`, { token });
    assert.equal(r.status, 401, `${why}: ${r.text}`);
    assert.equal(r.json?.error?.code, 'unauthorized', `${why}: ${r.text}`);
  }
  const none = await c.http(1, 'GET', `/api/rooms/${room}/messages`);
  assert.equal(none.status, 401);
});

test('after all of it both gateways still serve and the bad frames stored nothing', async () => {
  for (const gw of [0, 1]) {
    const r = await c.http(gw, 'GET', '/readyz');
    assert.equal(r.status, 200);
  }
  const room = uniqueRoom('after');
  const a = await c.client(0, 'frank');
  const b = await c.client(1, 'grace');
  await a.subscribe(`room.${room}`);
  await b.subscribe(`room.${room}`);
  const ack = await a.ack('send_message', `room.${room}`, { message: 'still here' });
  stored++;
  await b.next((e) => e.event === 'message' && e.data?.id === ack.id, 30_000);
  const [{ n }] = await c.query('SELECT count(*)::int AS n FROM messages');
  assert.equal(n, stored, 'only the valid messages were stored');
  a.close();
  b.close();
});
