// access.test.mjs — issue #18: who may come in. NATTER_ALLOWED_ORIGINS is checked on the
// WebSocket upgrade and answered with CORS headers (preflight included) on the REST API;
// new connections per address (the peer, or X-Forwarded-For's last untrusted hop when the
// peer is a trusted proxy) and HTTP requests per token are rate limited; a client that
// never finishes its handshake is dropped after NATTER_HANDSHAKE_TIMEOUT_S.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { useCluster, sleep } from './lib/cluster.mjs';

const ALLOWED = 'https://app.example';
const c = useCluster({
  rateLimits: true,
  env: {
    NATTER_ALLOWED_ORIGINS: `${ALLOWED}, http://localhost:3000`,
    NATTER_TRUSTED_PROXIES: '127.0.0.1,10.0.0.0/8',
    NATTER_RATE_CONNECTS_PER_IP: '5/s:5',
    NATTER_RATE_HTTP: '5/s:5',
    NATTER_HANDSHAKE_TIMEOUT_S: '2',
  },
});

/** Opens a WebSocket with headers; resolves {open, status} once it opened or was refused. */
function tryWs(gw, headers, user = 'acc_u') {
  return new Promise((resolve) => {
    const ws = new WebSocket(c.wsUrl(gw, `?token=${encodeURIComponent(c.token(user))}`), { headers, perMessageDeflate: false });
    ws.once('open', () => { ws.terminate(); resolve({ open: true }); });
    ws.once('unexpected-response', (req, res) => { resolve({ open: false, status: res.statusCode }); req.destroy(); });
    ws.once('error', (e) => resolve({ open: false, error: e.message }));
  });
}

test('the WebSocket upgrade checks Origin against NATTER_ALLOWED_ORIGINS', { timeout: 60_000 }, async () => {
  assert.deepEqual(await tryWs(0, { Origin: ALLOWED, 'X-Forwarded-For': '10.1.0.1' }), { open: true });
  assert.deepEqual(await tryWs(1, { Origin: 'http://localhost:3000', 'X-Forwarded-For': '10.1.0.2' }), { open: true });
  assert.deepEqual(await tryWs(0, { 'X-Forwarded-For': '10.1.0.3' }), { open: true }, 'no Origin (not a browser): allowed');
  assert.deepEqual(await tryWs(0, { Origin: 'https://evil.example', 'X-Forwarded-For': '10.1.0.4' }), { open: false, status: 403 });
  assert.deepEqual(await tryWs(1, { Origin: 'https://app.example.evil', 'X-Forwarded-For': '10.1.0.5' }), { open: false, status: 403 });
});

test('the REST API answers CORS for allowed origins, preflight included, and refuses others', { timeout: 60_000 }, async () => {
  const token = c.token('acc_rest');
  const url = `http://127.0.0.1:${c.gwPort(0)}/api/me/unread`;
  const pre = await fetch(url, { method: 'OPTIONS', headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'GET',
    'Access-Control-Request-Headers': 'authorization' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), ALLOWED);
  assert.match(pre.headers.get('access-control-allow-methods'), /GET/);
  assert.match(pre.headers.get('access-control-allow-headers'), /Authorization/);
  assert.equal(pre.headers.get('vary'), 'Origin');
  const ok = await fetch(url, { headers: { Origin: ALLOWED, Authorization: `Bearer ${token}` } });
  assert.equal(ok.status, 200, await ok.text());
  assert.equal(ok.headers.get('access-control-allow-origin'), ALLOWED);
  const evil = await fetch(url, { headers: { Origin: 'https://evil.example', Authorization: `Bearer ${c.token('acc_rest2')}` } });
  assert.equal(evil.status, 403);
  assert.equal(evil.headers.get('access-control-allow-origin'), null);
  assert.match((await evil.json()).error.message, /origin 'https:\/\/evil.example' is not allowed \(NATTER_ALLOWED_ORIGINS\)/);
  const none = await fetch(url, { headers: { Authorization: `Bearer ${c.token('acc_rest3')}` } });
  assert.equal(none.status, 200);
  assert.equal(none.headers.get('access-control-allow-origin'), null);
});

test('new connections are limited per client address, the address taken from a trusted proxy', { timeout: 60_000 }, async () => {
  await sleep(1200);                                   // the buckets of the tests above refill
  // Ten clients behind the trusted proxy: each its own address, all admitted.
  for (let i = 0; i < 10; i++) assert.deepEqual(await tryWs(0, { 'X-Forwarded-For': `203.0.113.${i}` }), { open: true });
  // One address opening ten at once: five (the burst) get in, the rest 429.
  const same = await Promise.all(Array.from({ length: 10 }, () => tryWs(0, { 'X-Forwarded-For': '198.51.100.7' })));
  assert.equal(same.filter((r) => r.open).length, 5, JSON.stringify(same));
  assert.ok(same.filter((r) => !r.open).every((r) => r.status === 429), JSON.stringify(same));
  // What a client writes itself left of its real address is not believed: the proxy's
  // hop (the rightmost untrusted one) counts, so rotating the left part does not help.
  const spoof = await Promise.all(Array.from({ length: 10 }, (_, i) => tryWs(1, { 'X-Forwarded-For': `192.0.2.${i}, 198.51.100.8` })));
  assert.equal(spoof.filter((r) => r.open).length, 5, JSON.stringify(spoof));
});

test('HTTP requests are limited per token with 429 rate_limited and retry_after_ms', { timeout: 60_000 }, async () => {
  const token = c.token('acc_http');
  const rs = await Promise.all(Array.from({ length: 10 }, () => c.http(0, 'GET', '/api/me/unread', { token })));
  assert.equal(rs.filter((r) => r.status === 200).length, 5, JSON.stringify(rs.map((r) => r.status)));
  for (const r of rs.filter((x) => x.status !== 200)) {
    assert.equal(r.status, 429);
    assert.equal(r.json.error.code, 'rate_limited');
    assert.match(r.json.error.message, /NATTER_RATE_HTTP/);
    assert.ok(r.json.error.retry_after_ms > 0);
  }
  assert.equal((await c.http(0, 'GET', '/api/me/unread', { token: c.token('acc_http_other') })).status, 200, 'other tokens unaffected');
});

test('a client that never finishes its handshake is dropped after NATTER_HANDSHAKE_TIMEOUT_S', { timeout: 30_000 }, async () => {
  const t0 = Date.now();
  const closedAfter = await new Promise((resolve, reject) => {
    const s = net.connect(c.gwPort(1), '127.0.0.1', () => s.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'));
    s.on('error', () => {});
    s.on('close', () => resolve(Date.now() - t0));
    setTimeout(() => { s.destroy(); reject(new Error('still open after 15 s')); }, 15_000);
  });
  assert.ok(closedAfter >= 1500 && closedAfter < 6000, `dropped after ${closedAfter} ms`);
});
