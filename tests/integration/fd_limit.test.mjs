// fd_limit.test.mjs — a gateway at its open-files limit refuses new WebSocket upgrades
// with 503, counts and logs them, and does not leave clients hanging in the backlog.
// Runs its own nats-server and one gateway under `ulimit -n 512` (no router/persister
// needed: opening a connection only needs the gateway).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { BIN_DIR, freePorts, signJwt, waitUntil } from './lib/cluster.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');

const NOFILE = 512;
const CLIENTS = 400;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'natter-it-fdlimit-'));
const children = [];

after(() => {
  for (const ch of children) if (ch.exitCode === null) ch.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

function start(cmd, args, env, log) {
  const out = fs.openSync(path.join(dir, log), 'w');
  const ch = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
  children.push(ch);
  return ch;
}

test('connections beyond the open-files limit get 503, counted and logged; none hang', { timeout: 60_000 }, async () => {
  const [natsPort, wsPort, metricsPort] = await freePorts(3);
  start('nats-server', ['-a', '127.0.0.1', '-p', String(natsPort)], {}, 'nats.log');
  await waitUntil(async () => {
    try { await fetch(`http://127.0.0.1:${natsPort}`); } catch (e) { return e.cause?.code !== 'ECONNREFUSED'; }
    return true;
  }, { what: 'nats-server' });
  const secret = 'fd-limit-secret';
  const gw = start('sh', ['-c', `ulimit -n ${NOFILE} && exec "$0"`, path.join(BIN_DIR, 'natter-gateway')], {
    NATTER_NATS_URL: `nats://127.0.0.1:${natsPort}`,
    NATTER_LISTEN: `127.0.0.1:${wsPort}`,
    NATTER_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
    NATTER_JWT_SECRET: secret,
    NATTER_GATEWAY_ID: 'fdlimit',
    NATTER_LOG_LEVEL: 'info',
    NATTER_RATE_CONNECTS_PER_IP: '1000000/s:1000000',   // every client here is 127.0.0.1
  }, 'gateway.log');
  await waitUntil(async () => {
    try { return (await fetch(`http://127.0.0.1:${wsPort}/readyz`)).status === 200; } catch { return false; }
  }, { what: 'gateway /readyz' });

  const token = signJwt({ alg: 'HS256', typ: 'JWT' }, { sub: 'many', exp: Math.floor(Date.now() / 1000) + 600 }, secret);
  const outcomes = await Promise.all(Array.from({ length: CLIENTS }, () => new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/ws?token=${token}`);
    const t = setTimeout(() => resolve({ kind: 'hung', ws }), 20_000);
    ws.on('open', () => { clearTimeout(t); resolve({ kind: 'open', ws }); });
    ws.on('unexpected-response', (_req, res) => { clearTimeout(t); resolve({ kind: 'refused', status: res.statusCode, ws }); });
    ws.on('error', () => { clearTimeout(t); resolve({ kind: 'error', ws }); });
  })));
  const count = (k) => outcomes.filter((o) => o.kind === k).length;
  assert.equal(count('hung'), 0, 'no client waits unanswered');
  assert.equal(count('error'), 0, 'no client sees a broken connection');
  assert.ok(count('open') > 0, 'connections below the limit open');
  assert.ok(count('open') < NOFILE, 'admission stops below the open-files limit');
  assert.ok(count('refused') > 0, 'connections past it are refused');
  for (const o of outcomes) if (o.kind === 'refused') assert.equal(o.status, 503);

  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const refused = Number(/^natter_gateway_refused_total (\d+)/m.exec(metrics)?.[1]);
  assert.equal(refused, count('refused'), 'every refusal is counted');
  const open = Number(/^natter_gateway_connections (\d+)/m.exec(metrics)?.[1]);
  assert.equal(open, count('open'));

  const log = fs.readFileSync(path.join(dir, 'gateway.log'), 'utf8');
  assert.match(log, /NATTER_MAX_CONNECTIONS=\d+ lowered to \d+: the open-files limit is 512/);
  assert.match(log, /refused \d+ upgrade\(s\): connection limit/);

  // Still serving: after the clients leave, a new one gets in.
  for (const o of outcomes) o.ws.terminate();
  await waitUntil(async () => {
    const m = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return /^natter_gateway_connections 0$/m.test(m);
  }, { what: 'connections to close' });
  const again = new WebSocket(`ws://127.0.0.1:${wsPort}/ws?token=${token}`);
  await new Promise((resolve, reject) => { again.on('open', resolve); again.on('error', reject); });
  again.close();

  gw.kill('SIGTERM');
  const code = await new Promise((resolve) => gw.on('exit', (c) => resolve(c)));
  assert.equal(code, 0, 'the gateway exits cleanly on SIGTERM');
});
