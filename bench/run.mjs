// run.mjs: natter's benchmark driver (called by bench/run.sh). Starts each system on free
// loopback ports with its data in a temp dir, runs the scenarios with natter-bench, prints
// one table row per system and writes the results as JSON. Everything it starts is stopped
// on exit. Sizes come from BENCH_SCALE (smoke | medium | full).
//
// Environment:
//   BENCH_SCALE       smoke (default; < 2 min, tiny sizes) | medium | full (the issue's sizes)
//   BENCH_SYSTEMS     comma list of natter,socketio,natsws (default all three)
//   BENCH_SCENARIOS   comma list of idle,fanout (default both)
//   BENCH_BIN_DIR     where natter-gateway/-router/-persister and bench/natter-bench are
//   BENCH_OUT_DIR     where results go (default bench/results, smoke: bench/results/tmp)
//   BENCH_PG_FSYNC    on (default) | off: PostgreSQL fsync for natter's store
//   BENCH_KEEP=1      keep the temp dir (logs) after the run
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const SCALE = process.env.BENCH_SCALE || 'smoke';
const BIN = path.resolve(ROOT, process.env.BENCH_BIN_DIR || 'build-bench');
const BENCH = path.join(BIN, 'bench', 'natter-bench');
const PGBIN = '/usr/lib/postgresql/15/bin';
const SYSTEMS = (process.env.BENCH_SYSTEMS || 'natter,socketio,natsws').split(',').filter(Boolean);
const SCENARIOS = (process.env.BENCH_SCENARIOS || 'idle,fanout').split(',').filter(Boolean);
const KEEP = process.env.BENCH_KEEP === '1';
const PER_PROC = 18000;           // connections per server / natter-bench process (20,000 open files each)

// Sizes per scale. fanout.rates: messages/s per step (stepping stops at saturation).
const SIZES = {
  smoke: { idle: { conns: 50, secs: 2 }, fanout: [{ subs: 50, rates: [20, 50], secs: 1.5, warmup: 0.5 }] },
  medium: {
    idle: { conns: 10000, secs: 10 },
    fanout: [{ subs: 1000, rates: [20, 40, 80, 160, 320, 640, 1280], secs: 4, warmup: 1 }],
  },
  full: {
    idle: { conns: 100000, secs: 10 },
    fanout: [
      { subs: 1000, rates: [20, 40, 80, 160, 320, 640, 1280, 2560], secs: 5, warmup: 1 },
      { subs: 10000, rates: [2, 4, 8, 16, 32, 64, 128, 256], secs: 5, warmup: 1 },
    ],
  },
}[SCALE];
if (!SIZES) { console.error(`bench: unknown BENCH_SCALE ${SCALE} (smoke | medium | full)`); process.exit(64); }

const DATE = new Date().toISOString().slice(0, 10);
const OUT = path.resolve(ROOT, process.env.BENCH_OUT_DIR || (SCALE === 'smoke' ? 'bench/results/tmp' : 'bench/results'));
const failures = [];
const say = (s) => process.stderr.write(`bench: ${s}\n`);

// ------------------------------------------------------------------ processes
const live = new Set();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'natter-bench-'));
fs.chmodSync(tmp, 0o755);
const logs = path.join(tmp, 'logs');
fs.mkdirSync(logs);

function cleanup() {
  for (const p of live) { try { process.kill(p.pid, p.killSig || 'SIGKILL'); } catch { /* gone */ } }
  live.clear();
  if (!KEEP) { try { fs.rmSync(tmp, { recursive: true, force: true }); } catch { /* best effort */ } }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { say(`${sig}: stopping`); process.exit(130); });

function start(name, cmd, args, { env = process.env, uid, gid, killSig } = {}) {
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

async function stop(child, sig = 'SIGTERM', ms = 10000) {
  if (!child || !live.has(child)) return;
  try { process.kill(child.pid, sig); } catch { return; }
  const t = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, ms);
  await child.exited;
  clearTimeout(t);
}

async function freePorts(n) {
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

async function waitFor(what, pred, ms = 60000, child) {
  const end = Date.now() + ms;
  for (;;) {
    if (child && !live.has(child)) throw new Error(`${what}: process exited (log ${logs}/${child.name}.log)`);
    try { if (await pred()) return; } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`${what} not ready after ${ms} ms (logs in ${logs})`);
    await sleep(100);
  }
}

async function httpOk(url) {
  const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await r.arrayBuffer();
  return r.status === 200;
}

function tcpOk(port) {
  return new Promise((res) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('error', () => res(false));
  });
}

// ------------------------------------------------------------------ /proc
const CLK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

function procSample(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpu = (Number(f[11]) + Number(f[12])) / CLK;
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return { cpu, rssKb: m ? Number(m[1]) : 0 };
  } catch { return { cpu: 0, rssKb: 0, gone: true }; }
}

function childrenOf(ppid) {
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

async function startNatter(nFront) {
  const dir = path.join(tmp, 'natter');
  fs.mkdirSync(dir);
  fs.chmodSync(dir, 0o755);
  const [nats, natsMon, redis, pg, mRouter, mPersister, ...rest] = await freePorts(6 + 2 * nFront);
  const procs = [];
  fs.mkdirSync(path.join(dir, 'nats'));
  procs.push(start('natter-nats', 'nats-server', ['-js', '-sd', path.join(dir, 'nats'), '-a', '127.0.0.1', '-p', String(nats), '-m', String(natsMon)], { killSig: 'SIGINT' }));
  procs.push(start('natter-redis', 'redis-server', ['--bind', '127.0.0.1', '--port', String(redis), '--dir', dir, '--save', '', '--appendonly', 'no']));
  const ids = userIds('postgres');
  const pgdir = path.join(dir, 'pg');
  fs.mkdirSync(pgdir);
  if (ids.uid !== undefined) fs.chownSync(pgdir, ids.uid, ids.gid);
  const pgenv = { ...process.env, LC_ALL: 'C', HOME: pgdir };
  execFileSync(path.join(PGBIN, 'initdb'), ['-D', path.join(pgdir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
    { env: pgenv, ...ids, stdio: 'ignore' });
  const fsync = process.env.BENCH_PG_FSYNC === 'off' ? 'off' : 'on';
  const postgres = start('natter-postgres', path.join(PGBIN, 'postgres'),
    ['-D', path.join(pgdir, 'data'), '-p', String(pg), '-k', pgdir, '-c', 'listen_addresses=127.0.0.1', '-c', `fsync=${fsync}`,
      '-c', 'max_connections=100', '-c', 'log_min_messages=warning'], { env: pgenv, ...ids, killSig: 'SIGQUIT' });
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
    NATTER_API_KEY: crypto.randomBytes(16).toString('hex'), NATTER_LOG_LEVEL: 'warn', NATTER_MAX_CONNECTIONS: String(PER_PROC + 500) };
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
    front: () => front.map((p, i) => ({ name: `gw${i + 1}`, pid: p.pid })), backend,
    async stop() {
      for (const p of front) await stop(p);
      await stop(router); await stop(persister);
      await stop(postgres, 'SIGINT'); await stop(procs[1]); await stop(procs[0], 'SIGINT');
    },
  };
}

async function startSocketio(nFront) {
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

async function startNatsws(nFront) {
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

const STARTERS = { natter: startNatter, socketio: startSocketio, natsws: startNatsws };

// ------------------------------------------------------------------ natter-bench
let benchSeq = 0;

/** Runs natter-bench; resolves with its JSON (or {error}). Killed after limitS seconds. */
function runBench(args, { limitS = 120, readyFile } = {}) {
  const name = `bench-${++benchSeq}`;
  const all = [...args];
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

const ms = (us) => +(us / 1000).toFixed(3);

function pidArgs(list) { return list.flatMap((p) => ['--pid', `${p.name}=${p.pid}`]); }

// ------------------------------------------------------------------ scenarios

async function idle(sys, run) {
  const { conns, secs } = SIZES.idle;
  const nb = Math.ceil(conns / PER_PROC);
  const front = sys.front(), all = [...front, ...sys.backend()];
  await sleep(500);
  const rss0 = front.map((p) => procSample(p.pid).rssKb);
  const benches = [];
  for (let k = 0; k < nb; k++) {
    const n = Math.floor(conns / nb) + (k < conns % nb ? 1 : 0);
    const rf = path.join(tmp, `ready-${run}-${k}`);
    benches.push({ rf, ...runBench([...sys.benchArgs, '--url', sys.urls.join(','), '--conns', String(n), '--rooms', String(n), '--shared',
      '--senders', '0', '--rate', '0', '--duration', '3600', '--room-prefix', `i${run}p${k}-`,
      '--source-base', `127.${1 + k}.0.1`, '--source-count', '4096', '--ready-timeout', String(60 + conns / 500)],
    { limitS: 300 + conns / 100, readyFile: rf }) });
  }
  await waitFor('idle connections', () => benches.every((b) => fs.existsSync(b.rf) || !live.has(b.child)), (120 + conns / 200) * 1000);
  await sleep(1000);                 // let allocations settle
  const s0 = all.map((p) => procSample(p.pid));
  const t0 = Date.now();
  await sleep(secs * 1000);
  const s1 = all.map((p) => procSample(p.pid));
  const wall = (Date.now() - t0) / 1000;
  for (const b of benches) if (live.has(b.child)) b.child.kill('SIGTERM');
  const results = await Promise.all(benches.map((b) => b.done));
  const ready = results.reduce((a, r) => a + (r.conns_ready || 0), 0);
  const rss1 = front.map((_, i) => s1[i].rssKb);
  const frontCpu = front.reduce((a, _, i) => a + s1[i].cpu - s0[i].cpu, 0);
  const allCpu = all.reduce((a, _, i) => a + s1[i].cpu - s0[i].cpu, 0);
  const deltaKb = rss1.reduce((a, v, i) => a + v - rss0[i], 0);
  const row = {
    system: sys.system, conns, conns_ready: ready, front_procs: front.length, bench_procs: nb,
    rss_kib_per_conn: ready ? +(deltaKb / ready).toFixed(2) : null,
    front_rss_kb_before: rss0, front_rss_kb_after: rss1,
    idle_cpu_front_pct: +(100 * frontCpu / wall).toFixed(2), idle_cpu_all_servers_pct: +(100 * allCpu / wall).toFixed(2),
    window_s: +wall.toFixed(2), pings_seen: results.reduce((a, r) => a + (r.pings || 0), 0),
  };
  if (ready < conns) failures.push(`idle ${sys.system}: ${ready} of ${conns} connections ready (${results.map((r) => r.first_error || r.error).filter(Boolean)[0] || 'no error reported'})`);
  return { row, raw: results };
}

async function fanoutOne(sys, spec, run) {
  const { subs, rates, secs, warmup } = spec;
  const senders = Math.min(10, subs);
  const steps = [];
  const step = async (rate, tag) => {
    const pids = pidArgs([...sys.front(), ...sys.backend()]);
    const r = await runBench([...sys.benchArgs, '--url', sys.urls.join(','), '--conns', String(subs), '--rooms', '1',
      '--senders', String(senders), '--rate', String(rate), '--duration', String(secs), '--warmup', String(warmup), '--drain', '1',
      '--room-prefix', `f${run}${tag}-`, '--source-base', '127.9.0.1', ...pids], { limitS: 120 + subs / 100 }).done;
    const expected = (r.sent || 0) * (r.conns_ready || 0);
    const s = { rate, delivery_rate: r.delivery_rate || 0, delivered_ratio: expected ? +(r.deliveries / expected).toFixed(3) : 0,
      deliveries_per_server_cpu_s: Math.round(r.deliveries_per_server_cpu_s || 0), server_cpu_s: r.server_cpu_s,
      p50_ms: r.latency ? ms(r.latency.p50_us) : null, p99_ms: r.latency ? ms(r.latency.p99_us) : null,
      send_skipped: r.send_skipped, conns_ready: r.conns_ready, bench_cpu_s: r.bench_cpu_s, raw: r };
    say(`  fanout ${sys.system} subs=${subs} rate=${rate}/s: ${Math.round(s.delivery_rate)} deliveries/s, ratio ${s.delivered_ratio}, ` +
      `${s.deliveries_per_server_cpu_s} per server CPU-s, p99 ${s.p99_ms} ms`);
    if (!r.deliveries) failures.push(`fanout ${sys.system} subs=${subs} rate=${rate}: zero deliveries (${r.first_error || r.error || 'no error reported'})`);
    return s;
  };
  let best = null;
  for (const rate of rates) {
    const s = await step(rate, `s${steps.length}`);
    steps.push(s);
    const saturated = best && (s.delivery_rate < best.delivery_rate * 1.1 || s.delivered_ratio < 0.8);
    if (!best || s.delivery_rate > best.delivery_rate) best = s;
    if (saturated) break;
  }
  const halfRate = Math.max(1, Math.round(best.delivery_rate / Math.max(1, best.conns_ready) / 2));
  const half = await step(halfRate, 'half');
  const row = {
    system: sys.system, subscribers: subs, senders, saturated: steps.length < rates.length,
    max_delivery_rate: Math.round(best.delivery_rate), at_msg_rate: best.rate,
    deliveries_per_server_cpu_s: best.deliveries_per_server_cpu_s,
    half_rate: halfRate, half_delivery_rate: Math.round(half.delivery_rate), p50_ms_at_half: half.p50_ms, p99_ms_at_half: half.p99_ms,
    p999_ms_at_half: half.raw.latency ? ms(half.raw.latency.p999_us) : null,
    bench_cpu_pct_at_max: best.raw.window_s ? Math.round(100 * best.bench_cpu_s / best.raw.window_s) : null,
  };
  return { row, raw: [...steps, half].map((s) => ({ ...s.raw, step_rate: s.rate })) };
}

// ------------------------------------------------------------------ report

function machine() {
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

function table(rows, cols) {
  const head = cols.map((c) => c[0]);
  const body = rows.map((r) => cols.map((c) => String(c[1](r) ?? '-')));
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
  return [line(head), `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

const IDLE_COLS = [['system', (r) => r.system], ['conns', (r) => r.conns], ['ready', (r) => r.conns_ready], ['front procs', (r) => r.front_procs],
  ['RSS KiB/conn', (r) => r.rss_kib_per_conn], ['idle CPU front %', (r) => r.idle_cpu_front_pct], ['idle CPU all servers %', (r) => r.idle_cpu_all_servers_pct]];
const FANOUT_COLS = [['system', (r) => r.system], ['subs', (r) => r.subscribers], ['max deliveries/s', (r) => r.max_delivery_rate],
  ['at msgs/s', (r) => r.at_msg_rate], ['saturated', (r) => r.saturated], ['deliveries per server CPU-s', (r) => r.deliveries_per_server_cpu_s],
  ['p50 ms @50%', (r) => r.p50_ms_at_half], ['p99 ms @50%', (r) => r.p99_ms_at_half], ['bench CPU % @max', (r) => r.bench_cpu_pct_at_max]];

// ------------------------------------------------------------------ main

async function main() {
  if (!fs.existsSync(BENCH)) throw new Error(`${BENCH} is missing: run bench/run.sh (it builds)`);
  fs.mkdirSync(OUT, { recursive: true });
  const t0 = Date.now();
  const results = { idle: [], fanout: [] };
  const raw = { idle: [], fanout: [] };
  const maxConns = Math.max(SCENARIOS.includes('idle') ? SIZES.idle.conns : 0,
    ...(SCENARIOS.includes('fanout') ? SIZES.fanout.map((f) => f.subs) : [0]));
  const nFront = Math.max(2, Math.ceil(maxConns / PER_PROC));
  let run = 0;
  for (const system of SYSTEMS) {
    if (!STARTERS[system]) throw new Error(`unknown system ${system}`);
    say(`starting ${system} (${nFront} front processes)`);
    const sys = await STARTERS[system](nFront);
    try {
      if (SCENARIOS.includes('idle')) {
        say(`idle ${system}: ${SIZES.idle.conns} connections`);
        const r = await idle(sys, ++run);
        results.idle.push(r.row);
        raw.idle.push({ system, runs: r.raw });
        say(`  ${JSON.stringify(r.row)}`);
      }
      if (SCENARIOS.includes('fanout')) {
        for (const spec of SIZES.fanout) {
          say(`fanout ${system}: ${spec.subs} subscribers`);
          const r = await fanoutOne(sys, spec, ++run);
          results.fanout.push(r.row);
          raw.fanout.push({ system, subs: spec.subs, runs: r.raw });
        }
      }
    } catch (e) {
      failures.push(`${system}: ${e.message}`);
    } finally {
      await sys.stop();
    }
  }
  const m = machine();
  for (const sc of SCENARIOS) {
    const rows = results[sc];
    const natter = rows.filter((r) => r.system === 'natter');
    const ratios = {};
    for (const peer of rows.filter((r) => r.system !== 'natter')) {
      const n = natter.find((r) => sc === 'idle' || r.subscribers === peer.subscribers);
      if (!n) continue;
      const key = sc === 'idle' ? peer.system : `${peer.system}@${peer.subscribers}`;
      ratios[key] = sc === 'idle'
        ? { rss_per_conn_natter_over_peer: n.rss_kib_per_conn && peer.rss_kib_per_conn ? +(n.rss_kib_per_conn / peer.rss_kib_per_conn).toFixed(3) : null }
        : { deliveries_per_cpu_s_natter_over_peer: peer.deliveries_per_server_cpu_s ? +(n.deliveries_per_server_cpu_s / peer.deliveries_per_server_cpu_s).toFixed(3) : null,
          p99_at_half_natter_over_peer: peer.p99_ms_at_half ? +(n.p99_ms_at_half / peer.p99_ms_at_half).toFixed(3) : null };
    }
    const tbl = table(rows, sc === 'idle' ? IDLE_COLS : FANOUT_COLS);
    console.log(`\n${sc} (BENCH_SCALE=${SCALE}, ${DATE})\n${tbl}`);
    if (Object.keys(ratios).length) console.log(`ratios natter/peer: ${JSON.stringify(ratios)}`);
    const file = path.join(OUT, `${DATE}-${SCALE}-${sc}.json`);
    fs.writeFileSync(file, JSON.stringify({ scenario: sc, scale: SCALE, date: new Date().toISOString(), machine: m, sizes: SIZES[sc],
      rows, ratios, table_markdown: tbl, raw: raw[sc] }, null, 1) + '\n');
    say(`wrote ${path.relative(ROOT, file)}`);
  }
  say(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (failures.length) {
    console.error(`\nbench: FAILED:\n  ${failures.join('\n  ')}\n(logs: ${logs}${KEEP ? '' : '; set BENCH_KEEP=1 to keep them'})`);
    process.exitCode = 1;
  }
}

main().catch((e) => { console.error(`bench: ${e.stack || e.message}`); process.exitCode = 1; });
