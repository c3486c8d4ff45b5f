// token_lifetime.test.mjs — issue #18 "a token is checked only at connect: a socket outlives
// its token's exp indefinitely". A connection now gets token_expiring shortly before exp,
// may refresh with a new token of the same user and app, and is otherwise closed with 4001
// "token expired" at exp. Tokens whose nbf or iat lie in the future, or whose lifetime is
// longer than NATTER_MAX_TOKEN_LIFETIME_S, are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, useCluster, uniqueRoom, sleep } from './lib/cluster.mjs';

const c = useCluster({ env: { NATTER_MAX_TOKEN_LIFETIME_S: '86400' } });
const now = () => Math.floor(Date.now() / 1000);

test('without a refresh the socket is warned, then closed with 4001 "token expired" at exp', { timeout: 60_000 }, async () => {
  const exp = now() + 5;
  const cl = await c.client(0, 'tl_ann', { token: c.token('tl_ann', { exp }) });
  const warn = await cl.next('token_expiring', 10_000);
  assert.equal(warn.data.expires_at, exp);
  const warnedAt = Date.now() / 1000;
  assert.ok(warnedAt >= exp - 3.5 && warnedAt < exp, `warned ${(exp - warnedAt).toFixed(1)} s before exp (half the life, at most 60 s)`);
  const closed = await cl.waitClose(10_000);
  const closedAt = Date.now() / 1000;
  assert.equal(closed.code, 4001);
  assert.equal(closed.reason, 'token expired');
  assert.ok(closedAt >= exp && closedAt < exp + 2.5, `closed ${(closedAt - exp).toFixed(1)} s after exp`);
  const err = cl.all((e) => e.event === 'error').at(-1);
  assert.equal(err?.data?.message, 'token expired');
});

test('a refresh with a new token of the same user keeps the socket, and its rooms, past the old exp', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('tl');
  const exp = now() + 4;
  const cl = await c.client(1, 'tl_bob', { token: c.token('tl_bob', { exp }) });
  await cl.subscribe(`room.${room}`);
  await cl.next('token_expiring', 10_000);
  // Another user's token, or a refused one, is unauthorized and changes nothing.
  const other = await cl.request('refresh', undefined, { token: c.token('tl_eve') });
  assert.equal(other.data?.code, 'unauthorized', JSON.stringify(other));
  assert.match(other.data.message, /same user and app/);
  const bad = await cl.request('refresh', undefined, { token: c.badTokens('tl_bob').wrongSignature });
  assert.equal(bad.data?.code, 'unauthorized');
  const otherApp = await cl.request('refresh', undefined, { token: c.token('tl_bob', { app: 'elsewhere' }) });
  assert.equal(otherApp.data?.code, 'unauthorized');
  const newExp = now() + 3600;
  const ok = await cl.ack('refresh', undefined, { token: c.token('tl_bob', { exp: newExp }) });
  assert.deepEqual(ok, { expires_at: newExp });
  await sleep((exp - now() + 2) * 1000);
  assert.ok(cl.isOpen, 'still open after the old exp');
  const s = await c.client(0, 'tl_sender');
  await s.subscribe(`room.${room}`);
  const ack = await s.ack('send_message', `room.${room}`, { message: 'still here?' });
  await cl.next((e) => e.event === 'message' && e.data.id === ack.id);
  cl.close(); s.close();
});

test('nbf or iat in the future, and lifetimes over NATTER_MAX_TOKEN_LIFETIME_S, are refused', { timeout: 60_000 }, async () => {
  const cases = [
    ['token not valid yet', c.token('tl_x', { claims: { nbf: now() + 300 } })],
    ['token issued in the future', c.token('tl_x', { claims: { iat: now() + 300 } })],
    ['token lifetime too long', c.token('tl_x', { exp: now() + 2 * 86400 })],
    ['nbf and iat must be integers', c.token('tl_x', { claims: { iat: 'yesterday' } })],
  ];
  for (const [why, token] of cases) {
    const cl = await Client.open(c.wsUrl(0, `?token=${encodeURIComponent(token)}`));
    const ev = await cl.next('error', 10_000);
    assert.deepEqual(ev.data, { code: 'unauthorized', message: why });
    assert.equal((await cl.waitClose()).code, 4001);
    const r = await c.http(1, 'GET', '/api/users/tl_x/presence', { token });
    assert.equal(r.status, 401, `${why} over HTTP: ${r.text}`);
  }
  // Within the leeway (NATTER_JWT_LEEWAY_S, 30 s) a clock a little ahead is accepted.
  await c.client(0, 'tl_x', { token: c.token('tl_x', { claims: { iat: now() + 5, nbf: now() + 5 } }) });
});
