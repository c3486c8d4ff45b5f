// lib.mjs: what every benchmark scenario shares: starting the three systems on free
// loopback ports (data in one temp dir, everything stopped on exit), /proc sampling,
// running natter-bench, tables. Used by run.mjs and bench/scenarios/*.mjs.
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

/** natter's per-connection and per-user rate limits, set out of the way. */
export const RATE_LIMITS_OFF = {
  NATTER_RATE_SENDS: '1000000/s:1000000', NATTER_RATE_USER_SENDS: '1000000/s:1000000',
  NATTER_RATE_SUBSCRIBES: '1000000/s:1000000', NATTER_RATE_USER_SUBSCRIBES: '1000000/s:1000000',
  NATTER_RATE_CREATE_ROOMS: '1000000/min:1000000', NATTER_RATE_DMS: '1000000/min:1000000',
  NATTER_MAX_REQUESTS_PER_CONN: '255',
  NATTER_RATE_CONNECTS_PER_IP: '1000000/s:1000000', NATTER_RATE_HTTP: '1000000/s:1000000',
};

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..');
export const SCALE = process.env.BENCH_SCALE || 'smoke';
export const BIN = path.resolve(ROOT, process.env.BENCH_BIN_DIR || 'build-bench');
export const BENCH = path.join(BIN, 'bench', 'natter-bench');
export const PGBIN = '/usr/lib/postgresql/15/bin';
export const KEEP = process.env.BENCH_KEEP === '1';
export const PER_PROC = 18000;    // connections per server / natter-bench process (20,000 open files each)
export const DATE = new Date().toISOString().slice(0, 10);
export const failures = [];
// Not failures, but worth the logs: the run goes on, exits 0, and keeps its logs dir.
export const anomalies = [];
export const say = (s) => process.stderr.write(`bench: ${s}\n`);
export { sleep };

// ------------------------------------------------------------------ processes
export const live = new Set();
export const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'natter-bench-'));
fs.chmodSync(tmp, 0o755);
export const logs = path.join(tmp, 'logs');
fs.mkdirSync(logs);

function cleanup() {
  for (const p of live) { try { process.kill(p.pid, p.killSig || 'SIGKILL'); } catch { /* gone */ } }
  live.clear();
  if (KEEP) return;
  // After a functional failure or an anomaly the logs stay (the data directories do
  // not): a rare one is otherwise gone before anyone could read why.
  for (const e of failures.length || anomalies.length ? fs.readdirSync(tmp).filter((n) => n !== 'logs') : ['.']) {
    try { fs.rmSync(path.join(tmp, e), { recursive: true, force: true }); } catch { /* best effort */ }
  }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { say(`${sig}: stopping`); process.exit(130); });

export function start(name, cmd, args, { env = process.env, uid, gid, killSig } = {}) {
  const fd = fs.openSync(path.join(logs, `${name}.log`), 'a');
  const child = spawn(cmd, args, { env, stdio: ['ignore', fd, fd], detached: true, uid, gid });
  fs.closeSync(fd);
  child.killSig = killSig;
  child.name = name;
  live.add(child);
  child.exited = new Promise((res) => child.once('exit', (code, signal) => { live.delete(child); res({ code, signal }); }));
  child.once('error', (e) => say(`${name}: ${e.message}`));
  return child;
}

/**
 * natter only: writes what its processes report now into logs/state-<tag>.txt (each
 * process's /metrics, JetStream streams and consumers, the partitions table, running
 * statements) — for a failed check, before the processes are stopped.
 */
export async function dumpState(sys, tag) {
  if (!sys.metrics) return;
  const out = [];
  const get = async (what, url) => {
    try { out.push(`==== ${what} ${url}`, await (await fetch(url)).text()); } catch (e) { out.push(`==== ${what}: ${e.message}`); }
  };
  const m = sys.metrics;
  for (const [what, port] of [['persister', m.persister], ['router', m.router], ...m.gateways.map((p, i) => [`gw${i + 1}`, p])]) {
    await get(what, `http://127.0.0.1:${port}/metrics`);
  }
  await get('jetstream', `http://127.0.0.1:${m.nats}/jsz?streams=true&consumers=true&config=true`);
  for (const q of ['SELECT p, stream_seq, batch_start FROM partitions ORDER BY p',
    "SELECT application_name, state, wait_event_type, wait_event, now() - query_start, left(query, 80) FROM pg_stat_activity WHERE datname = 'natter'",
    'SELECT locktype, relation::regclass, mode, granted, pid FROM pg_locks WHERE NOT granted']) {
    try { out.push(`==== sql ${q}`, ...sys.sql(q)); } catch (e) { out.push(`==== sql ${q}: ${e.message}`); }
  }
  fs.writeFileSync(path.join(logs, `state-${tag}.txt`), out.join('\n') + '\n');
}

export async function stop(child, sig = 'SIGTERM', ms = 10000) {
  if (!child || !live.has(child)) return;
  try { process.kill(child.pid, sig); } catch { return; }
  const t = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, ms);
  await child.exited;
  clearTimeout(t);
}

export async function freePorts(n) {
  const servers = [];
  for (let i = 0; i < n; i++) {
    const s = net.createServer();
    await new Promise((res, rej) => { s.once('error', rej); s.listen(0, '127.0.0.1', res); });
    servers.push(s);
  }
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  return ports;
}

export async function waitFor(what, pred, ms = 60000, child) {
  const end = Date.now() + ms;
  for (;;) {
    if (child && !live.has(child)) throw new Error(`${what}: process exited (log ${logs}/${child.name}.log)`);
    try { if (await pred()) return; } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`${what} not ready after ${ms} ms (logs in ${logs})`);
    await sleep(100);
  }
}

export async function httpOk(url) {
  const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await r.arrayBuffer();
  return r.status === 200;
}

export function tcpOk(port) {
  return new Promise((res) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('error', () => res(false));
  });
}

// ------------------------------------------------------------------ /proc
export const CLK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

export function procSample(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpu = (Number(f[11]) + Number(f[12])) / CLK;
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return { cpu, rssKb: m ? Number(m[1]) : 0 };
  } catch { return { cpu: 0, rssKb: 0, gone: true }; }
}

export function childrenOf(ppid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

// ------------------------------------------------------------------ systems
// Each start() returns { urls: [host:port], front: [{name,pid}], backend: [{name,pid}] ,
// benchArgs: [...], stop() }. front = the processes holding the client sockets.

function userIds(name) {
  if (process.getuid() !== 0) return {};
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`user ${name} not found: install postgresql`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

export async function startNatter(nFront) {
  const dir = path.join(tmp, 'natter');
  fs.mkdirSync(dir);
  fs.chmodSync(dir, 0o755);
  const [nats, natsMon, redis, pg, mRouter, mPersister, ...rest] = await freePorts(6 + 2 * nFront);
  const procs = [];
  fs.mkdirSync(path.join(dir, 'nats'));
  procs.push(start('natter-nats', 'nats-server', ['-js', '-sd', path.join(dir, 'nats'), '-a', '127.0.0.1', '-p', String(nats), '-m', String(natsMon)], { killSig: 'SIGINT' }));
  procs.push(start('natter-redis', 'redis-server', ['--bind', '127.0.0.1', '--port', String(redis), '--dir', dir, '--save', '', '--appendonly', 'no']));
  const ids = userIds('postgres');
  // Any statement of 1 s or more (also inside natter's functions) logs its plan to
  // natter-postgres.log: the rare multi-second commits are to be diagnosed, not guessed.
  // Statements under that cost two clock reads each.
  const PG_DIAG_OPTS = ['shared_preload_libraries=auto_explain', 'auto_explain.log_min_duration=1000',
    'auto_explain.log_nested_statements=on', 'auto_explain.log_level=warning'].flatMap((o) => ['-c', o]);
  const pgdir = path.join(dir, 'pg');
  fs.mkdirSync(pgdir);
  if (ids.uid !== undefined) fs.chownSync(pgdir, ids.uid, ids.gid);
  const pgenv = { ...process.env, LC_ALL: 'C', HOME: pgdir };
  execFileSync(path.join(PGBIN, 'initdb'), ['-D', path.join(pgdir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
    { env: pgenv, ...ids, stdio: 'ignore' });
  const fsync = process.env.BENCH_PG_FSYNC === 'off' ? 'off' : 'on';
  const postgres = start('natter-postgres', path.join(PGBIN, 'postgres'),
    ['-D', path.join(pgdir, 'data'), '-p', String(pg), '-k', pgdir, '-c', 'listen_addresses=127.0.0.1', '-c', `fsync=${fsync}`,
      '-c', 'max_connections=100', '-c', 'log_min_messages=warning', ...PG_DIAG_OPTS,
      ...(process.env.BENCH_PG_OPTS || '').split(/\s+/).filter(Boolean).flatMap((o) => ['-c', o])], { env: pgenv, ...ids, killSig: 'SIGQUIT' });
  procs.push(postgres);
  await waitFor('postgres', async () => {
    execFileSync(path.join(PGBIN, 'psql'), ['-h', pgdir, '-p', String(pg), '-U', 'postgres', '-d', 'postgres', '-Xqc', 'CREATE DATABASE natter'],
      { env: pgenv, ...ids, stdio: 'ignore' });
    return true;
  }, 60000, postgres);
  await waitFor('nats', () => httpOk(`http://127.0.0.1:${natsMon}/healthz?js-enabled-only=true`));
  await waitFor('redis', () => tcpOk(redis));
  const secret = crypto.randomBytes(24).toString('hex');
  const base = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('NATTER_')) base[k] = v;
  const env = { ...base, NATTER_NATS_URL: `nats://127.0.0.1:${nats}`, NATTER_REDIS_URL: `redis://127.0.0.1:${redis}`,
    NATTER_PG_URL: `postgresql://postgres@127.0.0.1:${pg}/natter`, NATTER_JWT_SECRET: secret,
    NATTER_API_KEY: crypto.randomBytes(16).toString('hex'), NATTER_LOG_LEVEL: 'warn', NATTER_MAX_CONNECTIONS: String(PER_PROC + 500),
    // The scenarios drive single connections far past a person's rates (fan-out: one
    // sender at thousands a second) and the peers have no such limits: raised here.
    ...RATE_LIMITS_OFF };
  // BENCH_NATTER_ENV="NATTER_X=1 NATTER_Y=2": extra settings for natter's processes (experiments).
  for (const kv of (process.env.BENCH_NATTER_ENV || '').split(/\s+/).filter(Boolean)) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const router = start('natter-router', path.join(BIN, 'natter-router'), [], { env: { ...env, NATTER_METRICS_LISTEN: `127.0.0.1:${mRouter}` } });
  const persister = start('natter-persister', path.join(BIN, 'natter-persister'), [], { env: { ...env, NATTER_METRICS_LISTEN: `127.0.0.1:${mPersister}` } });
  procs.push(router, persister);
  await waitFor('router', () => httpOk(`http://127.0.0.1:${mRouter}/readyz`), 60000, router);
  await waitFor('persister', () => httpOk(`http://127.0.0.1:${mPersister}/readyz`), 60000, persister);
  const front = [], urls = [];
  for (let i = 0; i < nFront; i++) {
    const port = rest[2 * i], mport = rest[2 * i + 1];
    const gw = start(`natter-gw${i + 1}`, path.join(BIN, 'natter-gateway'), [], { env: { ...env, NATTER_LISTEN: `127.0.0.1:${port}`,
      NATTER_METRICS_LISTEN: `127.0.0.1:${mport}`, NATTER_GATEWAY_ID: `gw${i + 1}` } });
    front.push(gw);
    urls.push(`127.0.0.1:${port}`);
  }
  for (let i = 0; i < nFront; i++) await waitFor(`gateway ${i + 1}`, () => httpOk(`http://${urls[i]}/readyz`), 60000, front[i]);
  const backend = () => [
    { name: 'nats', pid: procs[0].pid }, { name: 'redis', pid: procs[1].pid }, { name: 'router', pid: router.pid },
    { name: 'persister', pid: persister.pid }, { name: 'postgres', pid: postgres.pid },
    ...childrenOf(postgres.pid).map((pid) => ({ name: 'postgres', pid })),
  ];
  return {
    system: 'natter', urls, benchArgs: ['--dialect', 'natter', '--secret', secret],
    /** Runs one SQL statement on natter's store; resolves with its rows (psql -At lines). */
    sql: (q) => execFileSync(path.join(PGBIN, 'psql'), ['-h', pgdir, '-p', String(pg), '-U', 'postgres', '-d', 'natter', '-XAtqc', q],
      { env: pgenv, ...ids }).toString().split('\n').filter(Boolean),
    metrics: { router: mRouter, persister: mPersister, gateways: rest.filter((_, k) => k % 2 === 1).slice(0, nFront),
      nats: natsMon },
    front: () => front.map((p, i) => ({ name: `gw${i + 1}`, pid: p.pid })), backend,
    /** PostgreSQL as started here: socket dir, port, env and uid/gid to run its tools. */
    pg: { dir: pgdir, port: pg, env: pgenv, ids, pid: postgres.pid },
    /** Stops natter's own processes, leaving NATS, Redis and PostgreSQL running. */
    async stopApp() {
      for (const p of front) await stop(p);
      await stop(router); await stop(persister);
    },
    async stop() {
      for (const p of front) await stop(p);
      await stop(router); await stop(persister);
      await stop(postgres, 'SIGINT'); await stop(procs[1]); await stop(procs[0], 'SIGINT');
    },
  };
}

export async function startSocketio(nFront) {
  const [redis, ...ports] = await freePorts(1 + nFront);
  const r = start('sio-redis', 'redis-server', ['--bind', '127.0.0.1', '--port', String(redis), '--save', '', '--appendonly', 'no']);
  await waitFor('redis', () => tcpOk(redis), 30000, r);
  const front = ports.map((p, i) => start(`sio-node${i + 1}`, process.execPath,
    [path.join(HERE, 'peers', 'socketio-server.js'), String(p), `redis://127.0.0.1:${redis}`]));
  for (let i = 0; i < nFront; i++) await waitFor(`socket.io ${i + 1}`, () => httpOk(`http://127.0.0.1:${ports[i]}/healthz`), 30000, front[i]);
  return {
    system: 'socketio', urls: ports.map((p) => `127.0.0.1:${p}`), benchArgs: ['--dialect', 'socketio'],
    front: () => front.map((p, i) => ({ name: `node${i + 1}`, pid: p.pid })), backend: () => [{ name: 'redis', pid: r.pid }],
    async stop() { for (const p of front) await stop(p); await stop(r); },
  };
}

export async function startNatsws(nFront) {
  // One nats-server holds at most 20,000 open files here: larger runs use a cluster of them.
  const ports = await freePorts(3 * nFront);
  const front = [];
  for (let i = 0; i < nFront; i++) {
    const [client, ws, cluster] = ports.slice(3 * i, 3 * i + 3);
    const routes = nFront > 1 ? `cluster { name: bench, listen: 127.0.0.1:${cluster}, routes: [${ports.filter((_, k) => k % 3 === 2).map((p) => `nats-route://127.0.0.1:${p}`).join(', ')}] }` : '';
    const conf = path.join(tmp, `nats-ws${i + 1}.conf`);
    fs.writeFileSync(conf, `listen: 127.0.0.1:${client}\nserver_name: ws${i + 1}\nwebsocket { host: 127.0.0.1, port: ${ws}, no_tls: true }\n${routes}\n`);
    front.push(start(`natsws${i + 1}`, 'nats-server', ['-c', conf], { killSig: 'SIGINT' }));
  }
  for (let i = 0; i < nFront; i++) await waitFor(`nats-server ${i + 1}`, () => tcpOk(ports[3 * i + 1]), 30000, front[i]);
  if (nFront > 1) await sleep(1500);     // routes to form
  return {
    system: 'natsws', urls: front.map((_, i) => `127.0.0.1:${ports[3 * i + 1]}`), benchArgs: ['--dialect', 'natsws'],
    front: () => front.map((p, i) => ({ name: `nats${i + 1}`, pid: p.pid })), backend: () => [],
    async stop() { for (const p of front) await stop(p, 'SIGINT'); },
  };
}

export const STARTERS = { natter: startNatter, socketio: startSocketio, natsws: startNatsws };

// ------------------------------------------------------------------ natter-bench
let benchSeq = 0;

/** Runs natter-bench; resolves with its JSON (or {error}). Killed after limitS seconds. */
export function runBench(args, { limitS = 120, readyFile } = {}) {
  const name = `bench-${++benchSeq}`;
  const all = [...args];
  if (process.env.BENCH_SYSCALLS === 'off') all.push('--no-syscalls');
  if (readyFile) all.push('--ready-file', readyFile);
  fs.appendFileSync(path.join(logs, 'bench-commands.log'), `${name}: ${BENCH} ${all.join(' ')}\n`);
  const child = spawn(BENCH, all, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let out = '', err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const done = new Promise((resolve) => {
    const t = setTimeout(() => { err += `\nkilled after ${limitS} s`; child.kill('SIGKILL'); }, limitS * 1000);
    child.on('close', (code) => {
      clearTimeout(t);
      live.delete(child);
      if (err.trim()) fs.appendFileSync(path.join(logs, `${name}.stderr`), err);
      try { resolve({ code, ...JSON.parse(out.trim().split('\n').pop()) }); } catch { resolve({ code, error: `no JSON from natter-bench (exit ${code}): ${err.slice(-400)}` }); }
    });
  });
  return { child, done };
}

/**
 * runBench for a scenario that reads natter's store: natter's database is new for
 * every run, and autovacuum's first ANALYZE would come after the window, so once
 * every connection is ready `rooms` and `members` are analyzed (a database in use
 * has statistics; without them the planner takes `app` for a selective column).
 * Not `messages`: still empty then, or with a first batch uncommitted, its
 * statistics would say "empty" at any size (tests/integration/stale_stats.test.mjs).
 * Resolves with natter-bench's result, like runBench(...).done, plus `disk_sync`: the
 * disk's sync latency over the run (startSyncProbe), for every system alike.
 */
let analyzedSeq = 0;
export async function runBenchAnalyzed(sys, args, opts = {}) {
  const readyFile = sys.sql ? path.join(tmp, `ready-analyze-${++analyzedSeq}`) : undefined;
  const probe = startSyncProbe();
  let r;
  try {
    const b = runBench(args, { ...opts, readyFile });
    if (readyFile) {
      while (!fs.existsSync(readyFile) && live.has(b.child)) await sleep(50);
      if (fs.existsSync(readyFile)) sys.sql('ANALYZE rooms, members');
    }
    r = await b.done;
  } finally {
    const disk = await probe.stop(r?.window_start_unix_ms);
    if (r) r.disk_sync = disk;
  }
  return r;
}

export const ms = (us) => +(us / 1000).toFixed(3);

/** natter / peer to 3 decimals; null when either is missing or zero. */
export const ratio = (a, b) => (a && b ? +(a / b).toFixed(3) : null);
/** natter only (null for the peers): the gateways' frames_out and writes counters summed (Prometheus text). */
export async function gatewayWrites(sys) {
  if (!sys.metrics) return null;
  const sum = { frames: 0, writes: 0 };
  for (const port of sys.metrics.gateways || []) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const num = (name) => Number((new RegExp(`^${name} (\\d+)`, 'm').exec(text) || [])[1] || 0);
    sum.frames += num('natter_gateway_frames_out_total');
    sum.writes += num('natter_gateway_writes_total');
  }
  return sum;
}

/** Frames per send() of the gateways between two gatewayWrites readings (null: none). */
export const framesPerWrite = (w0, w1) =>
  (w0 && w1 && w1.writes > w0.writes ? +((w1.frames - w0.frames) / (w1.writes - w0.writes)).toFixed(2) : null);

// System calls of all the system's server processes per delivered message over the window
// (natter-bench counts them with perf_event_open; null where it could not, see syscalls_error).
export const syscallsPerDelivery = (r) => (r.syscalls_per_delivery == null ? null : +r.syscalls_per_delivery.toFixed(2));

/** Records a failure when fewer than `want` of the natter-bench results' connections became ready. */
export function checkReady(what, want, results) {
  const ready = results.reduce((a, r) => a + (r.conns_ready || 0), 0);
  if (ready < want) failures.push(`${what}: ${ready} of ${want} connections ready (${results.map((r) => r.first_error || r.error).filter(Boolean)[0] || 'no error reported'})`);
  return ready;
}

export function pidArgs(list) { return list.flatMap((p) => ['--pid', `${p.name}=${p.pid}`]); }

// ------------------------------------------------------------------ natter-bench

// ------------------------------------------------------------------ report

export function machine() {
  const v = (cmd, args) => { try { return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim().split('\n')[0]; } catch { return null; } };
  let sio = null;
  try { sio = JSON.parse(fs.readFileSync(path.join(HERE, 'peers', 'package-lock.json'), 'utf8')).packages['node_modules/socket.io'].version; } catch { /* none */ }
  return {
    nproc: os.cpus().length, cpu: os.cpus()[0]?.model, mem_mib: Math.round(os.totalmem() / 1048576), kernel: os.release(),
    open_files_limit: v('sh', ['-c', 'ulimit -n']), nats_server: v('nats-server', ['--version']), redis: v('redis-server', ['--version']),
    postgres: v(path.join(PGBIN, 'postgres'), ['--version']), node: process.version, socket_io: sio,
    pg_fsync: process.env.BENCH_PG_FSYNC === 'off' ? 'off' : 'on',
  };
}

export function table(rows, cols) {
  const head = cols.map((c) => c[0]);
  const body = rows.map((r) => cols.map((c) => String(c[1](r) ?? '-')));
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
  return [line(head), `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

/**
 * Times an 8 KiB write + fdatasync every 20 ms in the bench's temporary directory (the
 * filesystem PostgreSQL's data and JetStream's store are on) until stop(t0), which
 * returns { syncs, max_ms, slow: [[s, ms], ...] }: the syncs of 50 ms or more, s their
 * start in seconds after t0 (Unix ms; natter-bench's window_start_unix_ms, so that s
 * lines up with its latency_by_second), negative before it.
 * natter's every commit waits for such a sync, so a stall of the disk is a stall of
 * its deliveries; the peers store nothing. Recorded for every system alike.
 */
function startSyncProbe() {
  const file = path.join(tmp, `sync-probe-${process.pid}-${Date.now()}`);
  const buf = Buffer.alloc(8192, 120);
  const out = { syncs: 0, max_ms: 0, slow: [] };
  let stopped = false;
  const loop = (async () => {
    const fh = await fs.promises.open(file, 'w');
    try {
      for (let i = 0; !stopped; i++) {
        await fh.write(buf, 0, buf.length, (i % 128) * buf.length);
        const at = Date.now(), a = performance.now();
        await fh.datasync();
        const d = performance.now() - a;
        out.syncs++;
        if (d > out.max_ms) out.max_ms = d;
        if (d >= 50) out.slow.push([at, Math.round(d)]);
        await sleep(20);
      }
    } finally {
      await fh.close();
      fs.rmSync(file, { force: true });
    }
  })();
  return {
    async stop(t0 = 0) {
      stopped = true;
      await loop;
      return { syncs: out.syncs, max_ms: Math.round(out.max_ms),
        slow: out.slow.map(([at, d]) => [+((at - t0) / 1000).toFixed(2), d]) };
    },
  };
}
