// server_api.test.mjs — done-when 7 of issue 3 and the rest of the server API
// (docs/protocol.md "Server API (for an application's backend)"): notify reaches every
// connection of the named users on both gateways and nobody else; publish reaches a
// room's subscribers on both gateways with the custom event; bearer NATTER_API_KEY
// (wrong/missing -> 401); reserved event names -> 400; disconnect closes every
// connection of a user with 4003; a notify right after "connected" is not missed, and
// nothing reaches a connection before its "connected"; stats counts what is open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom, waitUntil, sleep } from './lib/cluster.mjs';

// gw3 runs without NATTER_API_KEY: its server API answers 503.
const c = useCluster({
  gateways: 3,
  env: { NATTER_HEARTBEAT_MS: '1000' },
  procEnv: { gw3: { NATTER_API_KEY: '' } },
});

const opened = [];
async function client(gw, user, opts) {
  const cl = await c.client(gw, user, opts);
  opened.push(cl);
  return cl;
}
async function closeAll() {
  await Promise.all(opened.splice(0).map((cl) => cl.close()));
}
function api(method, path, body, { key, gw = 0 } = {}) {
  return c.http(gw, method, path, { body, headers: { Authorization: `Bearer ${key ?? c.apiKey}` } });
}
const isNotification = (e) => e.event === 'notification';

test('notify reaches every connection of the named users and nobody else', async () => {
  const tag = uniqueRoom('n');
  const ann = [await client(0, `${tag}_ann`), await client(1, `${tag}_ann`)];
  const bob = [await client(1, `${tag}_bob`)];
  const others = [await client(0, `${tag}_cat`), await client(1, `${tag}_dan`)];

  const r = await api('POST', '/api/server/notify',
    { user_ids: [`${tag}_ann`, `${tag}_bob`], data: { kind: 'invoice_paid', amount: 42 } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { ok: true, users: 2 });

  for (const cl of [...ann, ...bob]) {
    const ev = await cl.next(isNotification);
    assert.deepEqual(ev.data, { kind: 'invoice_paid', amount: 42 });
  }
  // the named users got theirs; the others had the same chance and got nothing
  await sleep(500);
  for (const cl of others) assert.equal(cl.all(isNotification).length, 0, cl.label);
  for (const cl of [...ann, ...bob]) assert.equal(cl.all(isNotification).length, 1, cl.label);

  // an explicit app scopes the users: app "default" users are not reached from app "other"
  const r2 = await api('POST', '/api/server/notify', { app: 'other', user_ids: [`${tag}_ann`], data: { x: 1 } });
  assert.equal(r2.status, 200, r2.text);
  await sleep(300);
  for (const cl of ann) assert.equal(cl.all(isNotification).length, 1, cl.label);

  for (const [body, re] of [
    [{ user_ids: [], data: {} }, /user_ids/],
    [{ user_ids: ['a b'], data: {} }, /user_ids\[0\]/],
    [{ user_ids: Array.from({ length: 1001 }, (_, i) => `u${i}`), data: {} }, /user_ids/],
    [{ user_ids: ['a'] }, /data/],
    [{ user_ids: ['a'], data: {}, app: 'bad app' }, /app/],
  ]) {
    const e = await api('POST', '/api/server/notify', body);
    assert.equal(e.status, 400, JSON.stringify(body).slice(0, 80));
    assert.equal(e.json.error.code, 'bad_request');
    assert.match(e.json.error.message, re);
  }
  await closeAll();
});

test('publish reaches the room subscribers on both gateways with the custom event', async () => {
  const room = uniqueRoom('pub');
  const a = await client(0, 'pub_a');
  const b = await client(1, 'pub_b');
  const out = await client(1, 'pub_out');
  await a.subscribe(`room.${room}`);
  await b.subscribe(`room.${room}`);

  const r = await api('POST', '/api/server/publish',
    { channel: `room.${room}`, event: 'order_shipped', data: { order: 7 } }, { gw: 1 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { ok: true });
  for (const cl of [a, b]) {
    const ev = await cl.next((e) => e.event === 'order_shipped');
    assert.equal(ev.channel, `room.${room}`);
    assert.deepEqual(ev.data, { order: 7 });
  }
  // the chat.room.<id> alias is the same room
  const r2 = await api('POST', '/api/server/publish', { channel: `chat.room.${room}`, event: 'e2', data: 'text' });
  assert.equal(r2.status, 200, r2.text);
  for (const cl of [a, b]) assert.equal((await cl.next((e) => e.event === 'e2')).data, 'text');

  // user.<id>: every connection of that user
  const r3 = await api('POST', '/api/server/publish', { channel: 'user.pub_out', event: 'private_thing', data: { n: 1 } });
  assert.equal(r3.status, 200, r3.text);
  const ev = await out.next((e) => e.event === 'private_thing');
  assert.equal(ev.channel, 'user.pub_out');
  await sleep(300);
  assert.equal(a.all((e) => e.event === 'private_thing').length, 0);
  assert.equal(out.all((e) => e.event === 'order_shipped').length, 0);

  for (const name of ['message', 'ack', 'error', 'connected', 'receipt', 'unread', 'presence',
    'typing', 'member_joined', 'member_left']) {
    const e = await api('POST', '/api/server/publish', { channel: `room.${room}`, event: name, data: {} });
    assert.equal(e.status, 400, name);
    assert.equal(e.json.error.code, 'bad_request');
    assert.match(e.json.error.message, new RegExp(`'${name}'`));
  }
  for (const [body, re] of [
    [{ channel: `room.${room}`, event: '', data: {} }, /event/],
    [{ channel: `room.${room}`, event: 'x'.repeat(65), data: {} }, /event/],
    [{ channel: `room.${room}`, data: {} }, /event/],
    [{ channel: 'nowhere', event: 'x', data: {} }, /channel/],
    [{ channel: 'room.a b', event: 'x', data: {} }, /channel/],
  ]) {
    const e = await api('POST', '/api/server/publish', body);
    assert.equal(e.status, 400, JSON.stringify(body));
    assert.match(e.json.error.message, re);
  }
  const big = await api('POST', '/api/server/publish', { channel: `room.${room}`, event: 'big', data: 'x'.repeat(70000) });
  assert.equal(big.status, 413);
  const bad = await c.http(0, 'POST', '/api/server/publish', { headers: { Authorization: `Bearer ${c.apiKey}`, 'Content-Type': 'application/json' }, body: undefined });
  assert.equal(bad.status, 400);
  await closeAll();
});

test('the API key is required and compared exactly', async () => {
  const body = { channel: 'room.k', event: 'x', data: {} };
  for (const [method, path] of [['POST', '/api/server/publish'], ['POST', '/api/server/notify'],
    ['POST', '/api/server/users/u1/disconnect'], ['GET', '/api/server/stats']]) {
    const wrong = await api(method, path, method === 'POST' ? body : undefined, { key: `${c.apiKey}x` });
    assert.equal(wrong.status, 401, `${path} wrong key`);
    assert.equal(wrong.json.error.code, 'unauthorized');
    const short = await api(method, path, method === 'POST' ? body : undefined, { key: c.apiKey.slice(0, -1) });
    assert.equal(short.status, 401, `${path} short key`);
    const missing = await c.http(0, method, path, { body: method === 'POST' ? body : undefined });
    assert.equal(missing.status, 401, `${path} missing key`);
    assert.equal(missing.json.error.code, 'unauthorized');
    // a client JWT is not the API key
    const jwt = await c.http(1, method, path, { token: c.token('someone'), body: method === 'POST' ? body : undefined });
    assert.equal(jwt.status, 401, `${path} jwt`);
  }
  const nf = await api('GET', '/api/server/nothing');
  assert.equal(nf.status, 404);
});

test('without NATTER_API_KEY the server API is disabled (503)', async () => {
  for (const [method, path] of [['POST', '/api/server/publish'], ['POST', '/api/server/notify'],
    ['POST', '/api/server/users/u1/disconnect'], ['GET', '/api/server/stats']]) {
    for (const key of [c.apiKey, '']) {
      const r = await api(method, path, method === 'POST' ? { channel: 'room.k', event: 'x', data: {} } : undefined, { key, gw: 2 });
      assert.equal(r.status, 503, path);
      assert.equal(r.json.error.code, 'unavailable');
      assert.match(r.json.error.message, /NATTER_API_KEY is not set/);
    }
  }
});

test('disconnect closes every connection of the user on both gateways with 4003', async () => {
  const tag = uniqueRoom('d');
  const victim = [await client(0, `${tag}_v`), await client(1, `${tag}_v`), await client(1, `${tag}_v`)];
  const keep = [await client(0, `${tag}_k`), await client(1, `${tag}_k`)];

  const r = await api('POST', `/api/server/users/${tag}_v/disconnect`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { ok: true });
  for (const cl of victim) assert.equal((await cl.waitClose()).code, 4003, cl.label);

  // the others are still connected and served
  const room = uniqueRoom('dk');
  for (const cl of keep) {
    assert.equal(cl.closeInfo, null, cl.label);
    await cl.subscribe(`room.${room}`);
  }
  // another app's user of the same id is not touched
  const otherApp = await client(0, `${tag}_w`, { app: 'other' });
  const r2 = await api('POST', `/api/server/users/${tag}_w/disconnect`, { app: 'default' });
  assert.equal(r2.status, 200, r2.text);
  const r3 = await api('POST', `/api/server/users/${tag}_w/disconnect?app=default`);
  assert.equal(r3.status, 200, r3.text);
  await sleep(300);
  assert.equal(otherApp.closeInfo, null);
  const r4 = await api('POST', `/api/server/users/${tag}_w/disconnect?app=other`);
  assert.equal(r4.status, 200, r4.text);
  assert.equal((await otherApp.waitClose()).code, 4003);

  const bad = await api('POST', '/api/server/users/a%20b/disconnect');
  assert.equal(bad.status, 400);
  await closeAll();
});

// "connected" means the user's subject is subscribed at NATS: a server API call made
// on another gateway right after it reaches the new connection (no sleep between).
test('a notify sent right after connected reaches a new user on another gateway', async () => {
  const tag = uniqueRoom('h');
  for (let i = 0; i < 40; i++) {
    const cl = await client(i % 2, `${tag}_${i}`);
    const r = await api('POST', '/api/server/notify', { user_ids: [`${tag}_${i}`], data: { i } },
      { gw: 1 - (i % 2) });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual((await cl.next(isNotification, 5000)).data, { i });
  }
  await closeAll();
});

// A new user's "connected" waits for NATS to confirm its subscription; whatever is
// meant for the connection meanwhile (here the reply to a ping sent in the same TCP
// segment as auth, which the gateway answers in that same loop turn) is held until
// "connected" and its ack are out.
test('nothing reaches a new connection before connected', async () => {
  const tag = uniqueRoom('o');
  for (let i = 0; i < 10; i++) {
    const user = `${tag}_${i}`;
    const cl = await client(i % 2, user, { auth: 'none' });
    const sock = cl.ws._socket;
    sock.cork();
    cl.send({ action: 'auth', data: { token: c.token(user) }, ref: 'a' });
    cl.send({ action: 'ping', ref: 'p' });
    sock.uncork();
    const names = () => cl.events.map((e) => (e.event === 'ack' ? `ack ${e.ref}` : e.event));
    await waitUntil(() => names().includes('ack p'), { what: `the ping's ack on ${user}` });
    // connected comes first; later events (e.g. the user's own presence) may interleave
    assert.equal(names()[0], 'connected', `${user}: ${JSON.stringify(cl.events)}`);
    assert.deepEqual(names().filter((n) => ['ack a', 'pong', 'ack p'].includes(n)), ['ack a', 'pong', 'ack p'],
      `${user}: ${JSON.stringify(cl.events)}`);
  }
  await closeAll();
});

test('stats counts the open connections, users, rooms and gateways', async () => {
  const stats = async () => {
    const r = await api('GET', '/api/server/stats', undefined, { gw: 1 });
    assert.equal(r.status, 200, r.text);
    return r.json;
  };
  await closeAll();   // what a failed earlier test left open
  await waitUntil(async () => (await stats()).connections === 0, { what: 'no connections left' });

  const room1 = uniqueRoom('st'), room2 = uniqueRoom('st');
  const x0 = await client(0, 'st_x'), x1 = await client(1, 'st_x');
  const y = await client(0, 'st_y'), z = await client(1, 'st_z');
  await x0.subscribe(`room.${room1}`);
  await y.subscribe(`room.${room1}`);
  await z.subscribe(`room.${room2}`);

  const want = (s) => s.connections === 4 && s.users === 3 && s.rooms === 2 &&
    s.gateways.length === 3 && s.gateways.reduce((n, g) => n + g.connections, 0) === 4 &&
    s.gateways.filter((g) => g.connections === 2).length === 2;
  let last;
  await waitUntil(async () => want(last = await stats()), { what: 'stats for 4 connections' });
  const names = last.gateways.map((g) => g.id).sort();
  c.gatewayNames.forEach((n, i) => assert.ok(names[i].startsWith(`${n}-`), names[i]));
  for (const g of last.gateways) assert.match(g.last_heartbeat_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

  await x1.close();
  await waitUntil(async () => { last = await stats(); return last.connections === 3; }, { what: 'stats for 3 connections' });
  assert.equal(last.users, 3);
  await closeAll();
  await waitUntil(async () => { last = await stats(); return last.connections === 0; }, { what: 'stats for 0 connections' });
  assert.equal(last.users, 0);
  assert.equal(last.rooms, 0);
});
