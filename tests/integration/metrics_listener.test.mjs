// metrics_listener.test.mjs: the /metrics, /healthz, /readyz listener of every process
// (common/metrics.c) closes a connection that has not sent a whole request within
// NATTER_METRICS_IDLE_MS, answers a connection over NATTER_METRICS_MAX_CONNS with 503 and
// closes it at once (counted in <prefix>_metrics_refused_total, logged at most once a
// second), refuses oversized requests with 431, and keeps answering normal requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { freePorts, runOnce, sleep, useCluster } from './lib/cluster.mjs';

const IDLE_MS = 1000;
const MAX_CONNS = 8;
const MARGIN_MS = 2000;           // scheduling slack on a busy (or ASan) machine
const c = useCluster({
  env: { NATTER_METRICS_IDLE_MS: String(IDLE_MS), NATTER_METRICS_MAX_CONNS: String(MAX_CONNS) },
});

// each process, and the prefix of its metrics
const PROCS = { router: 'natter_router', persister: 'natter_persister', gw1: 'natter_gateway', gw2: 'natter_gateway' };
const names = Object.keys(PROCS);

/** A raw TCP connection to name's metrics port: what arrives, and when the server closes it. */
function raw(name) {
  return new Promise((resolve, reject) => {
    const s = net.connect(c.ports.metrics[name], '127.0.0.1');
    const st = { s, data: '', closed: null, openedAt: 0, error: null };
    st.closedP = new Promise((res) => s.on('close', () => {
      st.closed = { after: Date.now() - st.openedAt, error: st.error };
      res(st.closed);
    }));
    s.on('data', (d) => { st.data += d; });
    s.on('error', (e) => { st.error = e.code; if (!st.openedAt) reject(e); });
    s.on('connect', () => { st.openedAt = Date.now(); resolve(st); });
  });
}

/** p, or a failure naming `what` after ms. */
async function within(p, ms, what) {
  let t;
  const timeout = new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms); });
  try { return await Promise.race([p, timeout]); } finally { clearTimeout(t); }
}

async function get(name, path, method = 'GET') {
  const r = await fetch(`http://127.0.0.1:${c.ports.metrics[name]}${path}`, { method, signal: AbortSignal.timeout(5000) });
  return { status: r.status, text: await r.text(), connection: r.headers.get('connection') };
}

/** The three endpoints answer 200 on name, one request after the other. */
async function endpointsOk(name) {
  const m = await get(name, '/metrics');
  assert.equal(m.status, 200, `${name} /metrics`);
  assert.match(m.text, new RegExp(`^${PROCS[name]}_metrics_refused_total \\d+$`, 'm'), `${name} /metrics has the refused counter`);
  assert.equal((await get(name, '/healthz')).status, 200, `${name} /healthz`);
  assert.equal((await get(name, '/readyz')).status, 200, `${name} /readyz`);
}

/** Requests name's endpoints back to back until stop() is true; resolves with the count. */
async function keepRequesting(name, stop) {
  let n = 0;
  while (!stop()) {
    await endpointsOk(name);
    n++;
    await sleep(50);
  }
  return n;
}

function refusalLines(name) {
  return fs.readFileSync(c.procs[name].logFile, 'utf8').split('\n')
    .filter((l) => l.includes('metrics listener: refused'));
}

test('normal requests: sequential /metrics, /healthz, /readyz, HEAD, 404, 405 on every process', async () => {
  for (const name of names) {
    for (let i = 0; i < 5; i++) await endpointsOk(name);
    const h = await get(name, '/metrics', 'HEAD');
    assert.equal(h.status, 200);
    assert.equal(h.text, '');
    assert.equal(h.connection, 'close', 'one request per connection');
    assert.equal((await get(name, '/nope')).status, 404);
    assert.equal((await get(name, '/metrics', 'POST')).status, 405);
  }
});

test('a connection that sends nothing is closed after NATTER_METRICS_IDLE_MS, on every process', async () => {
  await Promise.all(names.map(async (name) => {
    const st = await raw(name);
    let done = false;
    const served = keepRequesting(name, () => done);   // normal requests meanwhile
    const closed = await within(st.closedP, IDLE_MS + MARGIN_MS, `${name}: silent connection closed`);
    done = true;
    assert.ok(await served > 0, `${name}: requests answered while the silent connection was open`);
    assert.ok(closed.after >= IDLE_MS - 100, `${name}: closed after ${closed.after} ms, not before the idle timeout`);
    assert.equal(st.data, '', `${name}: nothing is sent on an idle close`);
  }));
});

test('a request line sent a byte at a time is closed after NATTER_METRICS_IDLE_MS, on every process', async () => {
  await Promise.all(names.map(async (name) => {
    const st = await raw(name);
    const line = 'GET /metrics HTTP/1.1\r\nHost: slow\r\n';   // never the blank line
    let i = 0;
    const tick = setInterval(() => { if (!st.closed) st.s.write(line[i++ % line.length]); }, 100);
    try {
      const closed = await within(st.closedP, IDLE_MS + MARGIN_MS, `${name}: slow connection closed`);
      assert.ok(closed.after >= IDLE_MS - 100, `${name}: closed after ${closed.after} ms`);
      assert.ok(i >= 5, `${name}: bytes kept arriving (${i}) and did not extend the deadline`);
      assert.equal(st.data, '', `${name}: no answer to an incomplete request`);
    } finally {
      clearInterval(tick);
    }
    await endpointsOk(name);
  }));
});

test('headers over 8 KiB get 431 and the connection is closed', async () => {
  await Promise.all(names.map(async (name) => {
    const st = await raw(name);
    st.s.write(`GET /metrics HTTP/1.1\r\nX-Big: ${'a'.repeat(9000)}`);
    await within(st.closedP, MARGIN_MS, `${name}: oversized request closed`);
    assert.match(st.data, /^HTTP\/1\.1 431 /, `${name}: got ${JSON.stringify(st.data.slice(0, 60))}`);
    await endpointsOk(name);
  }));
});

test('over NATTER_METRICS_MAX_CONNS a connection gets 503 at once, counted and logged once a second; freed slots serve again', async () => {
  await Promise.all(names.map(async (name) => {
    const metric = `${PROCS[name]}_metrics_refused_total`;
    const before = await c.metric(name, metric);
    assert.ok(Number.isFinite(before), `${name} exposes ${metric}`);
    const linesBefore = refusalLines(name).length;
    await sleep(100);                 // the scrape's connection is freed

    const held = [];
    for (let i = 0; i < MAX_CONNS; i++) held.push(await raw(name));
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) {
      const st = await raw(name);
      const closed = await within(st.closedP, IDLE_MS - 200, `${name}: connection ${MAX_CONNS + 1 + i} refused at once`);
      assert.ok(closed.after < IDLE_MS - 200, `${name}: refused after ${closed.after} ms`);
      assert.match(st.data, /^HTTP\/1\.1 503 Service Unavailable\r\n/, `${name}: got ${JSON.stringify(st.data.slice(0, 60))}`);
    }
    const req = await raw(name);      // a real request while full: never a 200
    req.s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await within(req.closedP, IDLE_MS - 200, `${name}: request over the cap closed`);
    assert.doesNotMatch(req.data, /200 OK/, `${name}: no answer over the cap`);
    const t1 = Date.now();
    assert.ok(held.every((h) => h.closed === null), `${name}: the ${MAX_CONNS} held connections were not what got closed`);

    await within(Promise.all(held.map((h) => h.closedP)), IDLE_MS + MARGIN_MS, `${name}: held connections closed by the idle timeout`);
    await endpointsOk(name);          // the slots are free again
    assert.equal(await c.metric(name, metric), before + 6, `${name}: ${metric} counts every refusal`);
    const lines = refusalLines(name).length - linesBefore;
    const allowed = Math.floor((t1 - t0) / 1000) + 1;
    assert.ok(lines >= 1 && lines <= allowed, `${name}: ${lines} refusal log lines for 6 refusals in ${t1 - t0} ms (1..${allowed})`);
  }));
});

test('invalid NATTER_METRICS_IDLE_MS / NATTER_METRICS_MAX_CONNS: exit 2 with one line naming the setting', async () => {
  const [metrics, listen] = await freePorts(2);
  const base = {
    NATTER_NATS_URL: `nats://127.0.0.1:${c.ports.nats}`,
    NATTER_REDIS_URL: `redis://127.0.0.1:${c.ports.redis}`,
    NATTER_JWT_SECRET: 'metrics-listener-secret',
    NATTER_LISTEN: `127.0.0.1:${listen}`,
    NATTER_METRICS_LISTEN: `127.0.0.1:${metrics}`,
    NATTER_GATEWAY_ID: 'gw-bad-metrics',
    NATTER_LOG_LEVEL: 'warn',
  };
  for (const [bin, setting, value] of [
    ['natter-router', 'NATTER_METRICS_IDLE_MS', 'soon'],
    ['natter-gateway', 'NATTER_METRICS_MAX_CONNS', '0'],
  ]) {
    const r = await runOnce(bin, { ...base, [setting]: value }, { timeoutMs: 60_000 });
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    const show = `${bin}: code ${r.code}, signal ${r.signal}, stderr:\n${r.stderr}`;
    assert.equal(r.code, 2, show);
    assert.equal(lines.length, 1, show);
    assert.ok(lines[0].includes(`${setting}=${value} is invalid`), show);
  }
});

test('SIGTERM with metrics connections open: each process closes them and exits 0', async () => {
  for (const name of ['gw1', 'gw2', 'router', 'persister']) {
    const open = await Promise.all([raw(name), raw(name), raw(name)]);
    open[2].s.write('GET /met');
    const rec = await c.stopProcess(name);
    assert.equal(rec.code, 0, `${name} exit: ${JSON.stringify(rec)}`);
    await within(Promise.all(open.map((o) => o.closedP)), MARGIN_MS, `${name}: connections closed at exit`);
  }
});
