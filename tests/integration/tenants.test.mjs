// tenants.test.mjs — issue #18 done-when 4 and "per-tenant secrets": with NATTER_APPS each
// listed app's tokens verify only with its jwt_secret and its server API key reaches only
// it, so a user of app A cannot read, write, subscribe or see presence in app B with any
// token or API key of A. Apps NATTER_APPS does not list keep NATTER_JWT_SECRET and
// NATTER_API_KEY exactly as before; a disabled app is refused; a bad list is exit 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, freePorts, runOnce, signJwt, sleep, uniqueRoom, useCluster, waitUntil } from './lib/cluster.mjs';

const APPS = [
  { id: 'acme', key: 'acme-key', secret: 'acme-pusher-secret', jwt_secret: 'acme-jwt-secret', api_key: 'acme-api-key' },
  { id: 'beta', jwt_secret: 'beta-jwt-secret', api_key: 'beta-api-key' },
  { id: 'off', jwt_secret: 'off-jwt-secret', enabled: false },
];
// Half the gateways read the list from a file (@path), half from the variable.
const appsFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'natter-apps-')), 'apps.json');
fs.writeFileSync(appsFile, JSON.stringify(APPS));
const c = useCluster({ env: { NATTER_APPS: JSON.stringify(APPS) }, procEnv: { gw2: { NATTER_APPS: `@${appsFile}` } } });

const now = () => Math.floor(Date.now() / 1000);
const tok = (sub, app, secret, header = {}) =>
  signJwt({ alg: 'HS256', typ: 'JWT', ...header }, { sub, app, iat: now(), exp: now() + 600 }, secret);
const api = (key, method, p, body, gw = 0) => c.http(gw, method, p, { body, headers: { Authorization: `Bearer ${key}` } });

async function connectResult(gw, token) {
  const cl = await Client.open(c.wsUrl(gw, `?token=${encodeURIComponent(token)}`));
  const ev = await cl.next((e) => e.event === 'connected' || e.event === 'error', 10_000);
  cl.terminate();
  return ev.event === 'connected' ? 'ok' : ev.data.message;
}

test('each app\'s tokens verify with its own secret only; unlisted apps keep the global one', async () => {
  for (const gw of [0, 1]) {
    assert.equal(await connectResult(gw, tok('u1', 'acme', 'acme-jwt-secret')), 'ok');
    assert.equal(await connectResult(gw, tok('u1', 'beta', 'beta-jwt-secret')), 'ok');
    assert.equal(await connectResult(gw, tok('u1', 'acme', c.secret)), 'bad signature', 'the global secret no longer makes acme tokens');
    assert.equal(await connectResult(gw, tok('u1', 'beta', 'acme-jwt-secret')), 'bad signature', 'acme\'s secret cannot mint beta tokens');
    assert.equal(await connectResult(gw, tok('u1', 'acme', 'beta-jwt-secret')), 'bad signature');
    assert.equal(await connectResult(gw, tok('u1', 'off', 'off-jwt-secret')), 'app disabled');
    assert.equal(await connectResult(gw, tok('u1', 'acme', 'acme-jwt-secret', { kid: 'beta' })), 'kid names another app');
    assert.equal(await connectResult(gw, tok('u1', 'acme', 'acme-jwt-secret', { kid: 'acme' })), 'ok');
    // Existing deployments: any app not listed, and the default app, with NATTER_JWT_SECRET.
    assert.equal(await connectResult(gw, tok('u1', 'legacy', c.secret)), 'ok');
    assert.equal(await connectResult(gw, c.token('u1')), 'ok');
    assert.equal(await connectResult(gw, tok('u1', 'legacy', 'acme-jwt-secret')), 'bad signature');
  }
  const rest = await c.http(0, 'GET', '/api/me/unread', { token: tok('u1', 'acme', c.secret) });
  assert.equal(rest.status, 401);
});

test('a user of one app cannot read, write, subscribe or see presence in another', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('shared');
  const ch = `room.${room}`;
  const a = await c.client(0, 'ana', { token: tok('ana', 'acme', 'acme-jwt-secret') });
  const b = await c.client(1, 'bo', { token: tok('bo', 'beta', 'beta-jwt-secret') });
  await a.subscribe(ch);
  await b.subscribe(ch);                                   // the same name: another app's room
  const sent = await a.ack('send_message', ch, { message: 'acme only' });
  const bsent = await b.ack('send_message', ch, { message: 'beta only' });
  assert.equal(sent.seq, 1);
  assert.equal(bsent.seq, 1, 'two rooms, each with its own seq');
  await sleep(500);
  assert.deepEqual(b.messages(room).map((m) => m.data.message), ['beta only']);
  assert.deepEqual(a.messages(room).map((m) => m.data.message), ['acme only']);
  const hist = await b.ack('history', ch, {});
  assert.deepEqual(hist.messages.map((m) => m.message), ['beta only']);
  const rows = await c.query('SELECT app, body FROM messages WHERE room = $1 ORDER BY app', [room]);
  assert.deepEqual(rows, [{ app: 'acme', body: 'acme only' }, { app: 'beta', body: 'beta only' }]);
  // Presence of acme's ana, asked with a beta token: beta has no such user online.
  const pres = await c.http(1, 'GET', '/api/users/ana/presence', { token: tok('bo', 'beta', 'beta-jwt-secret') });
  assert.equal(pres.status, 200, pres.text);
  assert.equal(pres.json.online, false);
  const presA = await c.http(0, 'GET', '/api/users/ana/presence', { token: tok('x', 'acme', 'acme-jwt-secret') });
  assert.equal(presA.json.online, true);
  a.close(); b.close();
});

test('an app\'s API key reaches only that app; the global key only apps without a key of their own', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('k');
  const a = await c.client(0, 'ka', { token: tok('ka', 'acme', 'acme-jwt-secret') });
  const b = await c.client(1, 'kb', { token: tok('kb', 'beta', 'beta-jwt-secret') });
  const l = await c.client(1, 'kl', { token: tok('kl', 'legacy', c.secret) });
  for (const x of [a, b, l]) await x.subscribe(`room.${room}`);
  const pub = (key, app) => api(key, 'POST', '/api/server/publish', { app, channel: `room.${room}`, event: 'news', data: { to: app ?? 'key' } });
  // acme's key: its own app (named or implied), never beta's.
  assert.equal((await pub('acme-api-key')).status, 200);
  assert.equal((await pub('acme-api-key', 'acme')).status, 200);
  const cross = await pub('acme-api-key', 'beta');
  assert.equal(cross.status, 403);
  assert.equal(cross.json.error.message, 'this API key is for app acme, not beta');
  const crossN = await api('acme-api-key', 'POST', '/api/server/notify', { app: 'beta', user_ids: ['kb'], data: {} });
  assert.equal(crossN.status, 403);
  const crossD = await api('acme-api-key', 'POST', '/api/server/users/kb/disconnect', { app: 'beta' });
  assert.equal(crossD.status, 403);
  // The global key: no longer for acme or beta, still for apps without a key of their own.
  const glob = await pub(c.apiKey, 'acme');
  assert.equal(glob.status, 403);
  assert.equal(glob.json.error.message, 'app acme has an API key of its own (NATTER_APPS)');
  assert.equal((await pub(c.apiKey, 'legacy')).status, 200);
  await a.next((e) => e.event === 'news');
  await l.next((e) => e.event === 'news');
  await sleep(300);
  assert.deepEqual(a.all((e) => e.event === 'news').map((e) => e.data.to), ['key', 'acme']);
  assert.deepEqual(b.all((e) => e.event === 'news'), [], 'nothing of another app reaches beta');
  assert.equal(b.isOpen, true);
  // Stats with an app's key count that app only.
  await waitUntil(async () => (await api('acme-api-key', 'GET', '/api/server/stats')).json?.connections === 1,
    { what: 'acme stats: one connection' });
  const sa = await api('acme-api-key', 'GET', '/api/server/stats');
  assert.equal(sa.json.users, 1);
  const sb = await api('beta-api-key', 'GET', '/api/server/stats');
  assert.equal(sb.json.connections, 1);
  const all = await api(c.apiKey, 'GET', '/api/server/stats');
  assert.ok(all.json.connections >= 3, JSON.stringify(all.json));
  for (const x of [a, b, l]) x.close();
});

test('a bad NATTER_APPS is a one-line error and exit 2', async () => {
  const [m] = await freePorts(1);
  const base = { NATTER_NATS_URL: `nats://127.0.0.1:${c.ports.nats}`, NATTER_JWT_SECRET: 's', NATTER_LISTEN: '127.0.0.1:0',
    NATTER_METRICS_LISTEN: `127.0.0.1:${m}`, NATTER_LOG_LEVEL: 'warn' };
  for (const [apps, why] of [
    ['{"id":"x"}', /must be a JSON array/],
    ['[{"id":"a b"}]', /'id' must be 1-64 characters/],
    ['[{"id":"x"},{"id":"x"}]', /app 'x' is listed twice/],
    ['[{"id":"x","jwt_secrt":"s"}]', /unknown key 'jwt_secrt'/],
    ['[{"id":"x","enabled":"no"}]', /'enabled' must be true or false/],
    ['[{"id":"x","api_key":"k"},{"id":"y","api_key":"k"}]', /same api_key/],
    ['[{', /not JSON/],
    ['@/nonexistent/apps.json', /cannot read/],
  ]) {
    const r = await runOnce('natter-gateway', { ...base, NATTER_APPS: apps });
    assert.equal(r.code, 2, `${apps}: ${r.stderr}`);
    assert.match(r.stderr, /NATTER_APPS/);
    assert.match(r.stderr, why, r.stderr);
  }
});
