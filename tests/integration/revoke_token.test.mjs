// revoke_token.test.mjs — issue #18: POST /api/server/users/{id}/disconnect with
// "revoke":true closes the user's connections and, from then on, refuses on every gateway
// (WebSocket, refresh and REST) each of that user's tokens issued up to that moment (iat),
// kept in Redis by the router so that a gateway started later refuses them too. Tokens
// issued afterwards work; other users are untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, useCluster, sleep, waitUntil } from './lib/cluster.mjs';

const c = useCluster({ gateways: 3 });
const now = () => Math.floor(Date.now() / 1000);
const api = (method, path, body) => c.http(0, method, path, { body, headers: { Authorization: `Bearer ${c.apiKey}` } });

async function refusedWith(gw, token, why) {
  const cl = await Client.open(c.wsUrl(gw, `?token=${encodeURIComponent(token)}`));
  const ev = await cl.next((e) => e.event === 'error' || e.event === 'connected', 10_000);
  assert.deepEqual(ev.data, { code: 'unauthorized', message: why }, JSON.stringify(ev));
  assert.equal((await cl.waitClose()).code, 4001);
}

test('a revoking disconnect refuses the user\'s older tokens on every gateway, also one started later', { timeout: 120_000 }, async () => {
  await c.stopProcess('gw3');                              // started again below, after the revocation
  const old = c.token('rt_mal', { claims: { iat: now() - 60 } });
  const noIat = c.token('rt_mal', { claims: { iat: undefined } });
  const a = await c.client(0, 'rt_mal', { token: old });
  const b = await c.client(1, 'rt_mal', { token: old });
  const bystander = await c.client(1, 'rt_ok');

  const bad = await api('POST', '/api/server/users/rt_mal/disconnect', { revoke: 'yes' });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error.message, /'revoke' must be a boolean/);
  const r = await api('POST', '/api/server/users/rt_mal/disconnect', { revoke: true });
  assert.equal(r.status, 200, r.text);
  for (const x of [a, b]) assert.equal((await x.waitClose(10_000)).code, 4003);
  assert.ok(bystander.isOpen, 'other users stay');

  // Every gateway refuses the old token at once: no reconnect with it.
  await waitUntil(async () => {
    const cl = await Client.open(c.wsUrl(1, `?token=${encodeURIComponent(old)}`));
    const ev = await cl.next((e) => e.event === 'error' || e.event === 'connected', 10_000);
    cl.terminate();
    return ev.event === 'error';
  }, { timeoutMs: 5000, what: 'gw2 refusing the revoked token' });
  for (const gw of [0, 1]) await refusedWith(gw, old, 'token revoked');
  await refusedWith(0, noIat, 'token revoked');
  const rest = await c.http(1, 'GET', '/api/me/unread', { token: old });
  assert.equal(rest.status, 401);
  assert.equal(rest.json.error.message, 'token revoked');

  // A token issued after the revocation works, and can be refreshed, but not with the old one.
  await sleep(1100);
  const fresh = c.token('rt_mal', { claims: { iat: now() } });
  const back = await c.client(0, 'rt_mal', { token: fresh });
  const again = await back.request('refresh', undefined, { token: old });
  assert.deepEqual(again.data, { code: 'unauthorized', message: 'token revoked' });
  await back.ack('refresh', undefined, { token: c.token('rt_mal', { claims: { iat: now() } }) });

  // A gateway started after the revocation learns it from the router (Redis).
  await c.startProcess('gw3');
  await waitUntil(async () => {
    const cl = await Client.open(c.wsUrl(2, `?token=${encodeURIComponent(old)}`));
    const ev = await cl.next((e) => e.event === 'error' || e.event === 'connected', 10_000);
    cl.terminate();
    return ev.event === 'error' && ev.data.message === 'token revoked';
  }, { timeoutMs: 15_000, what: 'gw3 refusing the revoked token' });
  await c.client(2, 'rt_mal', { token: fresh });
  const score = await c.redis('ZSCORE', 'natter:revoked', 'default|rt_mal');
  assert.ok(Number(score) >= now() - 10, `kept in Redis: ${score}`);
  // A plain disconnect revokes nothing.
  const plain = c.token('rt_plain', { claims: { iat: now() - 60 } });
  const p = await c.client(1, 'rt_plain', { token: plain });
  assert.equal((await api('POST', '/api/server/users/rt_plain/disconnect')).status, 200);
  assert.equal((await p.waitClose()).code, 4003);
  await c.client(1, 'rt_plain', { token: plain });
});
