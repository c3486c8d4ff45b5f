// cluster.mjs: starts a real natter cluster for one test file and drives it.
//
// Per test file: free loopback ports, a temp dir, real nats-server (JetStream),
// redis-server and PostgreSQL 15, then the real binaries from NATTER_BIN_DIR
// (default build/, relative to the repo root): 1 router, 1 persister, 2 gateways.
// Teardown stops everything, fails the file if a natter process crashed, exited
// non-zero or printed a sanitizer report, prints the logs when anything failed,
// and removes the temp dir (kept with NATTER_TEST_KEEP=1).
//
// Usage in a test file:
//   const c = useCluster({ env: { NATTER_SEND_QUEUE_BYTES: '65536' } });
//   test('…', async () => { const a = await c.client(0, 'alice'); … });

import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before } from 'node:test';
import pg from 'pg';
import WebSocket from 'ws';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN_DIR = path.resolve(ROOT, process.env.NATTER_BIN_DIR || 'build');
export const KEEP = !!process.env.NATTER_TEST_KEEP && process.env.NATTER_TEST_KEEP !== '0';
const PGBIN = process.env.NATTER_TEST_PGBIN || '/usr/lib/postgresql/15/bin';
const START_TIMEOUT_MS = 90_000;      // ASan binaries start slowly on a busy CI machine
const STOP_TIMEOUT_MS = 15_000;       // SIGTERM -> exit, else SIGKILL and a failure

// Lines in a natter process's stderr that fail the test file.
const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer|WARNING: ThreadSanitizer/;

export { sleep };

// ------------------------------------------------------------------ emergency cleanup
// Children and temp dirs of every cluster in this process, killed/removed on any exit.
const live = new Set();     // ChildProcess
const tempDirs = new Set();
function emergencyCleanup() {
  for (const child of live) {
    try { process.kill(child.pid, child.natterPostgres ? 'SIGQUIT' : 'SIGKILL'); } catch { /* gone */ }
  }
  live.clear();
  if (!KEEP) for (const d of tempDirs) { try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ } }
}
process.on('exit', emergencyCleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    process.stderr.write(`\nharness: ${sig}: killing the cluster and removing temp dirs\n`);
    emergencyCleanup();
    process.exit(130);
  });
}

// ------------------------------------------------------------------ small utilities

/** Resolves when pred() is truthy (polls); throws `what` after timeoutMs. Never asserts durations. */
export async function waitUntil(pred, { timeoutMs = 20_000, intervalMs = 100, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try { last = await pred(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
        (last instanceof Error ? ` (last error: ${last.message})` : ''));
    }
    await sleep(intervalMs);
  }
}

/** n distinct free TCP ports on 127.0.0.1 (held open together so they differ). */
export async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      await new Promise((res, rej) => { s.once('error', rej); s.listen(0, '127.0.0.1', res); });
      servers.push(s);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  }
}

function b64url(x) {
  return Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
}

/** A JWT with the given header/payload, signed with HMAC (HS256/384/512) or unsigned (alg none). */
export function signJwt(header, payload, secret) {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const algs = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };
  if (!algs[header.alg]) return `${input}.`;
  const sig = crypto.createHmac(algs[header.alg], secret).update(input).digest('base64url');
  return `${input}.${sig}`;
}

function userUidGid(name) {
  if (process.getuid() !== 0) return {};            // not root: PostgreSQL runs as us
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`user ${name} not found: install postgresql (scripts/deps.sh)`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

function tail(file, lines = 120) {
  try {
    const all = fs.readFileSync(file, 'utf8').split('\n');
    const cut = all.length > lines ? [`… (${all.length - lines} earlier lines in ${file})`] : [];
    return cut.concat(all.slice(-lines)).join('\n');
  } catch { return `(no log at ${file})`; }
}

/** A tiny RESP client: one command, one reply. */
export function redisCommand(port, ...args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`redis ${args[0]}: timeout`)); }, 10_000);
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseResp(buf, 0);
      if (!r) return;
      clearTimeout(timer);
      sock.end();
      if (r.value instanceof Error) reject(r.value); else resolve(r.value);
    });
    const parts = args.map(String);
    sock.write(`*${parts.length}\r\n` + parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join(''));
  });
}

function parseResp(buf, i) {
  const eol = buf.indexOf('\r\n', i);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[i]);
  const line = buf.toString('utf8', i + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+': return { value: line, end: next };
    case '-': return { value: new Error(line), end: next };
    case ':': return { value: Number(line), end: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.toString('utf8', next, next + n), end: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const out = [];
      let at = next;
      for (let k = 0; k < n; k++) {
        const r = parseResp(buf, at);
        if (!r) return null;
        out.push(r.value);
        at = r.end;
      }
      return { value: out, end: at };
    }
    default: return { value: new Error(`bad RESP type ${type}`), end: next };
  }
}

async function httpOk(url) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch { return false; }
}

// ------------------------------------------------------------------ processes

/** One child process with its log file; restartable. */
class Proc {
  constructor({ name, cmd, args = [], env, logFile, natter = false, spawnOpts = {} }) {
    Object.assign(this, { name, cmd, args, env, logFile, natter, spawnOpts });
    this.child = null;
    this.exits = [];           // {code, signal, expected, why}
    this.expectExit = null;    // reason while the harness/test is stopping it
  }

  get pid() { return this.child?.pid; }
  get running() { return !!this.child && this.child.exitCode === null && this.child.signalCode === null; }

  start() {
    if (this.running) throw new Error(`${this.name} is already running`);
    fs.appendFileSync(this.logFile, `==== ${new Date().toISOString()} start ${this.name}: ${this.cmd} ${this.args.join(' ')}\n`);
    const fd = fs.openSync(this.logFile, 'a');
    const child = spawn(this.cmd, this.args, {
      env: this.env, stdio: ['ignore', fd, fd], detached: true, ...this.spawnOpts,
    });
    fs.closeSync(fd);
    child.natterPostgres = this.name === 'postgres';
    this.child = child;
    this.expectExit = null;
    live.add(child);
    this.exited = new Promise((resolve) => {
      const done = (code, signal) => {
        live.delete(child);
        const rec = { code, signal, expected: this.expectExit };
        this.exits.push(rec);
        if (this.natter && !rec.expected) {
          process.stderr.write(`harness: ${this.name} exited unexpectedly (code ${code}, signal ${signal}); log: ${this.logFile}\n`);
        }
        resolve(rec);
      };
      child.once('exit', done);
      child.once('error', (e) => {
        fs.appendFileSync(this.logFile, `harness: cannot start ${this.cmd}: ${e.message}\n`);
        done(127, null);
      });
    });
    return this;
  }

  /** Sends sig and waits for the exit; SIGKILL after STOP_TIMEOUT_MS (recorded as a failure). */
  async stop(sig = 'SIGTERM', why = sig) {
    if (!this.running) return this.exits.at(-1);
    this.expectExit = why;
    try { process.kill(this.child.pid, sig); } catch { /* already gone */ }
    const t = setTimeout(() => {
      this.stopTimedOut = true;
      fs.appendFileSync(this.logFile, `harness: ${this.name} did not exit ${STOP_TIMEOUT_MS} ms after ${sig}; SIGKILL\n`);
      try { process.kill(this.child.pid, 'SIGKILL'); } catch { /* gone */ }
    }, STOP_TIMEOUT_MS);
    const rec = await this.exited;
    clearTimeout(t);
    return rec;
  }
}

// ------------------------------------------------------------------ the cluster

const NATTER_PROCS = ['router', 'persister', 'gw1', 'gw2'];

// A minimal NATS client: JSON requests (JetStream API calls, publishes with
// Nats-Msg-Id) and their replies, in order.
export function natsSession(port) {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  const waiters = [];
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    for (;;) {
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = buf.slice(0, eol);
      if (line.startsWith('MSG ')) {
        const len = Number(line.trim().split(/\s+/).at(-1));
        if (buf.length < eol + 2 + len + 2) return;
        const payload = buf.slice(eol + 2, eol + 2 + len);
        buf = buf.slice(eol + 2 + len + 2);
        waiters.shift()?.(payload);
        continue;
      }
      buf = buf.slice(eol + 2);
      if (line === 'PING' && !sock.writableEnded) sock.write('PONG\r\n');   // not after close()
    }
  });
  sock.write('CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\nSUB _INBOX.t 1\r\n');
  return {
    request(subject, body, headers = {}) {
      const hdr = Object.keys(headers).length
        ? `NATS/1.0\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n` : '';
      const reply = new Promise((resolve) => waiters.push(resolve));
      if (hdr) {
        sock.write(`HPUB ${subject} _INBOX.t ${Buffer.byteLength(hdr)} ${Buffer.byteLength(hdr) + Buffer.byteLength(body)}\r\n${hdr}${body}\r\n`);
      } else {
        sock.write(`PUB ${subject} _INBOX.t ${Buffer.byteLength(body)}\r\n${body}\r\n`);
      }
      return reply.then((p) => JSON.parse(p));
    },
    close() { sock.end(); },
  };
}

/**
 * The gateway's rate limits, out of the way: most tests push one connection far past a
 * person's rates (thousands of sends, many rooms at once). A test of the limits passes
 * opts.rateLimits: true to get the product's defaults (and sets its own in opts.env).
 */
export const RATE_LIMITS_OFF = {
  NATTER_RATE_SENDS: '1000000/s:1000000', NATTER_RATE_USER_SENDS: '1000000/s:1000000',
  NATTER_RATE_SUBSCRIBES: '1000000/s:1000000', NATTER_RATE_USER_SUBSCRIBES: '1000000/s:1000000',
  NATTER_RATE_CREATE_ROOMS: '1000000/min:1000000', NATTER_RATE_DMS: '1000000/min:1000000',
  NATTER_MAX_REQUESTS_PER_CONN: '255',
  NATTER_RATE_CONNECTS_PER_IP: '1000000/s:1000000', NATTER_RATE_HTTP: '1000000/s:1000000',
};

export class Cluster {
  /**
   * opts.env: NATTER_* for every natter process; opts.procEnv: {name: {…}} per process;
   * opts.natter: false starts only the servers; opts.gateways: number of gateways (default 2);
   * opts.rateLimits: true keeps the gateway's default rate limits (else RATE_LIMITS_OFF);
   * opts.persisters: number of persister replicas (default 1: persister, persister2, …).
   * opts.natsAuth: nats-server requires credentials (a config file), and natter processes
   *   get them in the environment: {user, password} (NATTER_NATS_USER/PASSWORD), {token}
   *   (NATTER_NATS_TOKEN) or {nkey, seedFile} (public key; NATTER_NATS_NKEY_SEED_FILE);
   *   {config}: a whole nats-server config file as given (its authorization block, say),
   *   no environment (give each process its credentials with opts.procEnv).
   *   natsSession() does not authenticate.
   * opts.redisPassword: redis-server runs with --requirepass, NATTER_REDIS_PASSWORD is set;
   *   redis() and redisCommand() do not authenticate: use redis-cli -a then.
   */
  constructor(opts = {}) {
    this.opts = opts;
    this.name = opts.name || path.basename(process.argv[1] || 'test', '.mjs');
    this.procs = {};
    this.problems = [];
    this.secret = crypto.randomBytes(24).toString('hex');
    this.apiKey = crypto.randomBytes(16).toString('hex');
    this.clients = new Set();
    this.gatewayNames = Array.from({ length: opts.gateways ?? 2 }, (_, i) => `gw${i + 1}`);
    this.persisterNames = Array.from({ length: opts.persisters ?? 1 }, (_, i) => (i ? `persister${i + 1}` : 'persister'));
  }

  // ---- start-up

  async start() {
    const t0 = Date.now();
    if (this.opts.natter !== false) this.checkBinaries();
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `natter-it-${this.name.replace(/\W+/g, '_')}-`));
    tempDirs.add(this.dir);
    fs.chmodSync(this.dir, 0o755);                    // postgres must traverse it
    this.logDir = path.join(this.dir, 'logs');
    fs.mkdirSync(this.logDir);
    const [nats, natsMon, redis, pgPort, ...rest] =
      await freePorts(4 + 1 + this.persisterNames.length + 2 * this.gatewayNames.length);
    this.ports = { nats, natsMon, redis, pg: pgPort, metrics: {}, gw: {} };
    this.ports.metrics.router = rest.shift();
    for (const p of this.persisterNames) this.ports.metrics[p] = rest.shift();
    for (const g of this.gatewayNames) { this.ports.gw[g] = rest.shift(); this.ports.metrics[g] = rest.shift(); }

    await Promise.all([this.startNats(), this.startRedis(), this.startPostgres()]);
    this.serversMs = Date.now() - t0;
    if (this.opts.natter !== false) await this.startNatter();
    this.startMs = Date.now() - t0;
    return this;
  }

  checkBinaries() {
    for (const b of ['natter-router', 'natter-persister', 'natter-gateway']) {
      const p = path.join(BIN_DIR, b);
      if (!fs.existsSync(p)) {
        throw new Error(`${p} does not exist: build it first (make build) or point NATTER_BIN_DIR at the build dir`);
      }
    }
  }

  baseEnv() {
    // The runner's own NATTER_* settings must not leak into the cluster under test.
    const env = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('NATTER_')) env[k] = v;
    return env;
  }

  async startNats() {
    fs.mkdirSync(path.join(this.dir, 'nats'));
    const auth = this.opts.natsAuth;
    const config = [];
    if (auth) {
      const q = JSON.stringify;
      const block = auth.token ? `token: ${q(auth.token)}`
        : auth.nkey ? `users: [ { nkey: ${q(auth.nkey)} } ]`
          : `user: ${q(auth.user)}, password: ${q(auth.password)}`;
      const file = path.join(this.dir, 'nats.conf');
      fs.writeFileSync(file, auth.config ?? `authorization { ${block} }\n`);
      config.push('-c', file);
    }
    this.procs.nats = new Proc({
      name: 'nats', cmd: 'nats-server', env: this.baseEnv(), logFile: path.join(this.logDir, 'nats.log'),
      args: [...config, '-js', '-sd', path.join(this.dir, 'nats'), '-a', '127.0.0.1', '-p', String(this.ports.nats),
        '-m', String(this.ports.natsMon), '-n', `natter-test-${process.pid}`],
    }).start();
    await this.waitReady('nats', () => this.natsHealthy());
  }

  natsHealthy() { return httpOk(`http://127.0.0.1:${this.ports.natsMon}/healthz?js-enabled-only=true`); }

  async startRedis() {
    fs.mkdirSync(path.join(this.dir, 'redis'));
    this.procs.redis = new Proc({
      name: 'redis', cmd: 'redis-server', env: this.baseEnv(), logFile: path.join(this.logDir, 'redis.log'),
      args: ['--bind', '127.0.0.1', '--port', String(this.ports.redis), '--dir', path.join(this.dir, 'redis'),
        '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'yes',
        ...(this.opts.redisPassword ? ['--requirepass', this.opts.redisPassword] : [])],
    }).start();
    await this.waitReady('redis', async () => (this.opts.redisPassword
      ? (await redisCommand(this.ports.redis, 'AUTH', this.opts.redisPassword)) === 'OK'
      : (await redisCommand(this.ports.redis, 'PING')) === 'PONG'));
  }

  async startPostgres() {
    const pgdir = path.join(this.dir, 'pg');
    const ids = userUidGid('postgres');
    fs.mkdirSync(pgdir);
    if (ids.uid !== undefined) fs.chownSync(pgdir, ids.uid, ids.gid);
    const logFile = path.join(this.logDir, 'postgres.log');
    fs.writeFileSync(logFile, '');
    if (ids.uid !== undefined) fs.chownSync(logFile, ids.uid, ids.gid);
    const env = { ...this.baseEnv(), LC_ALL: 'C', HOME: pgdir };
    try {
      execFileSync(path.join(PGBIN, 'initdb'),
        ['-D', path.join(pgdir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
        { env, ...ids, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`initdb failed: ${e.stderr?.toString() || e.message}`);
    }
    this.procs.postgres = new Proc({
      name: 'postgres', cmd: path.join(PGBIN, 'postgres'), env, logFile, spawnOpts: ids,
      args: ['-D', path.join(pgdir, 'data'), '-p', String(this.ports.pg), '-k', pgdir,
        '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'full_page_writes=off',
        '-c', 'max_connections=200', '-c', 'log_min_messages=warning'],
    }).start();
    const admin = `postgresql://postgres@127.0.0.1:${this.ports.pg}/postgres`;
    await this.waitReady('postgres', async () => {
      const cl = new pg.Client({ connectionString: admin });
      try { await cl.connect(); await cl.query('CREATE DATABASE natter'); return true; } finally { await cl.end().catch(() => {}); }
    });
    this.pgUrl = `postgresql://postgres@127.0.0.1:${this.ports.pg}/natter`;
    this.pool = new pg.Pool({ connectionString: this.pgUrl, max: 3 });
    this.pool.on('error', () => { /* server stopped under an idle client */ });
  }

  /** NATTER_* environment shared by every natter process (before per-process settings). */
  natterEnv() {
    const auth = this.opts.natsAuth;
    const natsAuthEnv = !auth || auth.config ? {}
      : auth.token ? { NATTER_NATS_TOKEN: auth.token }
        : auth.nkey ? { NATTER_NATS_NKEY_SEED_FILE: auth.seedFile }
          : { NATTER_NATS_USER: auth.user, NATTER_NATS_PASSWORD: auth.password };
    return {
      ...this.baseEnv(),
      NATTER_NATS_URL: `nats://127.0.0.1:${this.ports.nats}`,
      NATTER_REDIS_URL: `redis://127.0.0.1:${this.ports.redis}`,
      NATTER_PG_URL: this.pgUrl,
      NATTER_JWT_SECRET: this.secret,
      NATTER_API_KEY: this.apiKey,
      NATTER_DEV_TOKENS: '0',
      NATTER_LOG_LEVEL: 'warn',
      ...natsAuthEnv,
      ...(this.opts.redisPassword ? { NATTER_REDIS_PASSWORD: this.opts.redisPassword } : {}),
      ...(this.opts.env || {}),
    };
  }

  procEnv(name) {
    const env = { ...(this.opts.rateLimits ? {} : RATE_LIMITS_OFF), ...this.natterEnv(),
      NATTER_METRICS_LISTEN: `127.0.0.1:${this.ports.metrics[name]}` };
    if (this.ports.gw[name]) {
      env.NATTER_LISTEN = `127.0.0.1:${this.ports.gw[name]}`;
      env.NATTER_GATEWAY_ID = name;
    }
    return { ...env, ...((this.opts.procEnv || {})[name] || {}) };
  }

  defineNatter(name) {
    const bin = name.startsWith('gw') ? 'natter-gateway' : `natter-${name.replace(/\d+$/, '')}`;
    this.procs[name] = new Proc({
      name, natter: true, cmd: path.join(BIN_DIR, bin), env: this.procEnv(name),
      logFile: path.join(this.logDir, `${name}.log`),
    });
    return this.procs[name];
  }

  readyUrl(name) {
    return this.ports.gw[name]
      ? `http://127.0.0.1:${this.ports.gw[name]}/readyz`
      : `http://127.0.0.1:${this.ports.metrics[name]}/readyz`;
  }

  async startNatter() {
    for (const n of ['router', ...this.persisterNames, ...this.gatewayNames]) this.defineNatter(n);
    await Promise.all(['router', ...this.persisterNames].map((n) => this.startProcess(n)));
    await Promise.all(this.gatewayNames.map((n) => this.startProcess(n)));
  }

  async waitReady(name, pred) {
    const p = this.procs[name];
    await waitUntil(async () => {
      if (p && !p.running) {
        throw new FatalStart(`${name} exited during start-up (${JSON.stringify(p.exits.at(-1))}):\n${tail(p.logFile, 40)}`);
      }
      return pred();
    }, { timeoutMs: START_TIMEOUT_MS, intervalMs: 50, what: `${name} to be ready` }).catch((e) => {
      if (e instanceof FatalStart) throw e;
      throw new Error(`${e.message}\n${p ? tail(p.logFile, 40) : ''}`);
    });
  }

  // ---- process control (test API)

  /** Starts (or restarts) a natter process and waits for its /readyz. */
  async startProcess(name) {
    const p = this.procs[name] || this.defineNatter(name);
    p.start();
    await this.waitReady(name, () => httpOk(this.readyUrl(name)));
    return p;
  }

  /** SIGTERM (graceful) and wait; the exit code must be 0 (checked at teardown). */
  async stopProcess(name) { return this.procs[name].stop('SIGTERM', 'stopped'); }

  /** kill -9. */
  async killProcess(name) { return this.procs[name].stop('SIGKILL', 'killed'); }

  /** Stops nats-server (SIGTERM, or kill -9) and starts it again on the same port and
   * JetStream store; resolves when it is healthy again (natter processes reconnect on
   * their own: wait for their readyz). */
  async restartNats({ kill = false } = {}) {
    await this.procs.nats.stop(kill ? 'SIGKILL' : 'SIGTERM', 'restarted');
    this.procs.nats.start();
    await this.waitReady('nats', () => this.natsHealthy());
  }

  /** True when every natter process answers its readyz with 200. */
  async allReady() {
    const names = ['router', ...this.persisterNames, ...this.gatewayNames];
    return (await Promise.all(names.map((n) => httpOk(this.readyUrl(n))))).every(Boolean);
  }

  async restartProcess(name, { kill = false } = {}) {
    await (kill ? this.killProcess(name) : this.stopProcess(name));
    return this.startProcess(name);
  }

  // ---- endpoints

  gwPort(gw) { return this.ports.gw[typeof gw === 'number' ? this.gatewayNames[gw] : gw]; }
  wsUrl(gw, query = '') { return `ws://127.0.0.1:${this.gwPort(gw)}/ws${query}`; }

  /** HTTP to a gateway: {status, json, text}. */
  async http(gw, method, urlPath, { token, body, headers = {} } = {}) {
    const h = { ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const r = await fetch(`http://127.0.0.1:${this.gwPort(gw)}${urlPath}`, {
      method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await r.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: r.status, json, text };
  }

  async query(sql, params = []) { return (await this.pool.query(sql, params)).rows; }

  /** The value of an unlabelled metric of a natter process (router, persister, a gateway); NaN when absent. */
  async metric(proc, name) {
    const text = await (await fetch(`http://127.0.0.1:${this.ports.metrics[proc]}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.slice(name.length + 1)) : NaN;
  }

  redis(...args) { return redisCommand(this.ports.redis, ...args); }

  /** JetStream stream state from the nats-server monitoring port, or null when absent. */
  async stream(name = 'NATTER_IN') {
    const r = await fetch(`http://127.0.0.1:${this.ports.natsMon}/jsz?accounts=true&streams=true&consumers=true`);
    const j = await r.json();
    for (const acc of j.account_details || []) {
      for (const s of acc.stream_detail || []) if (s.name === name) return s;
    }
    return null;
  }

  // ---- identity

  /** An HS256 JWT for user (claims: sub, exp, name, app, role; extra claims via opts.claims). */
  token(user, { app, name, exp, alg = 'HS256', role, secret = this.secret, claims = {}, noExp = false } = {}) {
    const now = Math.floor(Date.now() / 1000);
    const payload = { sub: user, iat: now, ...(noExp ? {} : { exp: exp ?? now + 3600 }), ...claims };
    if (name !== undefined) payload.name = name;
    if (app !== undefined) payload.app = app;
    if (role !== undefined) payload.role = role;
    return signJwt({ alg, typ: 'JWT' }, payload, secret);
  }

  /** Tokens that must be refused, by reason. */
  badTokens(user) {
    const now = Math.floor(Date.now() / 1000);
    const good = this.token(user);
    const [h, p] = good.split('.');
    return {
      wrongSignature: this.token(user, { secret: `${this.secret}x` }),
      tamperedPayload: `${h}.${b64url({ sub: 'someone-else', exp: now + 3600 })}.${good.split('.')[2]}`,
      expired: this.token(user, { exp: now - 120 }),
      algNone: signJwt({ alg: 'none', typ: 'JWT' }, { sub: user, exp: now + 3600 }, ''),
      algNoneWithSig: `${b64url({ alg: 'none', typ: 'JWT' })}.${p}.${good.split('.')[2]}`,
      hs512: this.token(user, { alg: 'HS512' }),
      noExp: this.token(user, { noExp: true }),
      garbage: 'not-a-jwt',
    };
  }

  // ---- clients

  /**
   * A connected, authenticated client on gateway gw (index or name).
   * opts.auth: 'query' (default) | 'frame' | 'none'; opts.token overrides the minted one.
   */
  async client(gw, user, opts = {}) {
    const { auth = 'query', name } = opts;
    const token = opts.token ?? (user ? this.token(user, { name: name ?? user, app: opts.app }) : undefined);
    const url = this.wsUrl(gw, auth === 'query' && token ? `?token=${encodeURIComponent(token)}` : '');
    const c = await Client.open(url, { label: `${user ?? 'anon'}@${typeof gw === 'number' ? this.gatewayNames[gw] : gw}` });
    this.clients.add(c);
    if (auth === 'frame') c.send({ action: 'auth', data: { token } });
    if (opts.waitConnected !== false && auth !== 'none') await c.waitConnected();
    return c;
  }

  // ---- teardown

  /** Stops everything; returns the list of problems (also thrown by useCluster's after hook). */
  async teardown({ failed = false } = {}) {
    for (const c of this.clients) c.terminate();
    const natter = Object.values(this.procs).filter((p) => p.natter);
    const order = [...this.gatewayNames, 'router', ...this.persisterNames].map((n) => this.procs[n]).filter(Boolean);
    for (const p of order) if (p.running) await p.stop('SIGTERM', 'teardown');
    await this.pool?.end().catch(() => {});
    await this.procs.postgres?.stop('SIGINT', 'teardown');
    await this.procs.redis?.stop('SIGTERM', 'teardown');
    await this.procs.nats?.stop('SIGINT', 'teardown');

    for (const p of natter) {
      for (const e of p.exits) {
        if (e.expected === 'killed') continue;
        if (!e.expected) this.problems.push(`${p.name} exited unexpectedly: code ${e.code}, signal ${e.signal}`);
        else if (e.code !== 0) this.problems.push(`${p.name} exited with code ${e.code}, signal ${e.signal} after SIGTERM (${e.expected}); expected 0`);
      }
      if (p.stopTimedOut) this.problems.push(`${p.name} did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM`);
      let log = '';
      try { log = fs.readFileSync(p.logFile, 'utf8'); } catch { /* none */ }
      const bad = log.split('\n').filter((l) => SANITIZER_RE.test(l));
      if (bad.length) this.problems.push(`${p.name} printed sanitizer reports:\n  ${bad.slice(0, 5).join('\n  ')}`);
    }

    if (failed || this.problems.length) this.printLogs();
    if (KEEP) process.stderr.write(`harness: NATTER_TEST_KEEP: kept ${this.dir}\n`);
    else if (this.dir) { fs.rmSync(this.dir, { recursive: true, force: true }); tempDirs.delete(this.dir); }
    return this.problems;
  }

  printLogs() {
    const out = [`harness: logs of ${this.name} (temp dir ${this.dir})`];
    for (const p of Object.values(this.procs)) {
      if (!p.natter && !process.env.NATTER_TEST_SERVER_LOGS) continue;
      out.push(`----- ${p.name} (${p.logFile})`, tail(p.logFile, 150));
    }
    if (this.problems.length) out.push('----- problems', ...this.problems);
    process.stderr.write(out.join('\n') + '\n');
  }
}

class FatalStart extends Error {}

/**
 * Starts a Cluster before the file's tests and tears it down after them; the returned
 * proxy forwards to the running Cluster. The after hook fails the file when a natter
 * process crashed, exited non-zero after SIGTERM or printed a sanitizer report.
 */
export function useCluster(opts = {}) {
  const holder = { cluster: null, failed: false };
  before(async () => {
    holder.cluster = new Cluster(opts);
    await holder.cluster.start();
    if (process.env.NATTER_TEST_VERBOSE) {
      process.stderr.write(`harness: servers ready in ${holder.cluster.serversMs} ms, cluster in ${holder.cluster.startMs} ms\n`);
    }
  }, { timeout: START_TIMEOUT_MS * 2 });
  afterEach((t) => { if (t.passed === false) holder.failed = true; });
  after(async () => {
    if (!holder.cluster) return;
    const problems = await holder.cluster.teardown({ failed: holder.failed || !holder.cluster.startMs });
    if (problems.length) throw new Error(`cluster problems:\n${problems.join('\n')}`);
  }, { timeout: 120_000 });
  return new Proxy(holder, {
    get(h, prop) {
      if (prop === 'cluster') return h.cluster;
      if (!h.cluster) throw new Error('the cluster did not start (see the before hook error)');
      const v = h.cluster[prop];
      return typeof v === 'function' ? v.bind(h.cluster) : v;
    },
  });
}

/** Runs a binary once with env (no inheritance of NATTER_*): {code, signal, stdout, stderr}. */
export function runOnce(bin, env, { timeoutMs = 30_000 } = {}) {
  return new Promise((resolve) => {
    const base = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('NATTER_')) base[k] = v;
    const child = spawn(path.join(BIN_DIR, bin), [], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => { child.kill('SIGKILL'); stderr += `\nharness: killed after ${timeoutMs} ms\n`; }, timeoutMs);
    child.on('error', (e) => { stderr += `harness: ${e.message}`; });
    child.on('close', (code, signal) => { clearTimeout(t); live.delete(child); resolve({ code, signal, stdout, stderr }); });
  });
}

// ------------------------------------------------------------------ WebSocket client

let refCounter = 0;

/**
 * A WebSocket client that records every event. next(pred) returns the first matching
 * event not yet taken (including ones that arrived earlier); request() pairs replies by ref.
 */
export class Client {
  static open(url, { label = url } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 30, handshakeTimeout: 15_000 });
      const c = new Client(ws, label);
      const fail = (e) => reject(new Error(`${label}: cannot connect to ${url}: ${e.message}`));
      ws.once('error', fail);
      ws.once('open', () => { ws.off('error', fail); resolve(c); });
    });
  }

  constructor(ws, label) {
    this.ws = ws;
    this.label = label;
    this.events = [];              // every parsed event, in arrival order
    this.taken = new Set();        // events handed out by next()/collect()/request()
    this.waiters = [];             // {pred, resolve}
    this.pending = new Map();      // ref -> {resolve, reject, timer, action}
    this.answered = new Set();     // refs already answered
    this.duplicateReplies = [];    // replies for refs answered before: must stay empty
    this.nonJson = [];
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(new Error(`${this.label}: closed (${code}) before the reply to ${p.action}`)); }
        this.pending.clear();
        resolve(this.closeInfo);
      });
    });
    ws.on('error', (e) => { this.lastError = e; });
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
  }

  onMessage(data, isBinary) {
    let ev;
    try { ev = JSON.parse(data.toString()); } catch { this.nonJson.push({ data, isBinary }); return; }
    this.events.push(ev);
    if (ev && ev.ref !== undefined && (ev.event === 'ack' || ev.event === 'error')) {
      const key = JSON.stringify(ev.ref);
      const p = this.pending.get(key);
      if (p) {
        this.pending.delete(key);
        this.answered.add(key);
        this.taken.add(ev);
        clearTimeout(p.timer);
        p.resolve(ev);
        return;
      }
      if (this.answered.has(key)) { this.duplicateReplies.push(ev); this.taken.add(ev); return; }
    }
    for (let i = 0; i < this.waiters.length; i++) {
      const w = this.waiters[i];
      if (w.pred(ev)) { this.taken.add(ev); this.waiters.splice(i, 1); clearTimeout(w.timer); w.resolve(ev); return; }
    }
  }

  get isOpen() { return this.ws.readyState === WebSocket.OPEN; }

  send(obj) { this.ws.send(JSON.stringify(obj)); }
  /** Raw frame: a string or Buffer, as text (default) or binary. */
  sendRaw(data, { binary = false } = {}) { this.ws.send(data, { binary }); }

  /** Sends {action, channel, data, ref} and resolves with the ack or error frame. */
  request(action, channel, data, { ref, timeoutMs = 30_000, extra = {} } = {}) {
    const r = ref ?? `r${++refCounter}`;
    const frame = { action, ref: r, ...extra };
    if (channel !== undefined) frame.channel = channel;
    if (data !== undefined) frame.data = data;
    const key = JSON.stringify(r);
    if (this.pending.has(key)) throw new Error(`ref ${key} already pending`);
    if (this.closeInfo) return Promise.reject(new Error(`${this.label}: closed ${JSON.stringify(this.closeInfo)}; cannot send ${action}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new Error(`${this.label}: no reply to ${action} ${channel ?? ''} (ref ${key}) within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(key, { resolve, reject, timer, action });
      this.send(frame);
    });
  }

  /** As request(), but resolves with the ack's data and throws on an error reply. */
  async ack(action, channel, data, opts) {
    const ev = await this.request(action, channel, data, opts);
    if (ev.event !== 'ack') throw new Error(`${this.label}: ${action} ${channel ?? ''} answered ${JSON.stringify(ev)}`);
    return ev.data ?? {};
  }

  /** Subscribe and return the ack data. */
  subscribe(channel, data = {}) { return this.ack('subscribe', channel, data); }

  /** The first not-yet-taken event matching pred (past or future). */
  next(pred = () => true, timeoutMs = 15_000) {
    const f = typeof pred === 'string' ? (e) => e.event === pred : pred;
    for (const ev of this.events) {
      if (!this.taken.has(ev) && f(ev)) { this.taken.add(ev); return Promise.resolve(ev); }
    }
    return new Promise((resolve, reject) => {
      const w = { pred: f, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.label}: no matching event within ${timeoutMs} ms; last events: ` +
          JSON.stringify(this.events.slice(-3)).slice(0, 600) + (this.closeInfo ? `; closed ${JSON.stringify(this.closeInfo)}` : '')));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Waits until n not-yet-taken events match pred; takes and returns them in arrival order. */
  async collect(pred, n, timeoutMs = 60_000) {
    const f = typeof pred === 'string' ? (e) => e.event === pred : pred;
    const avail = () => this.events.filter((e) => !this.taken.has(e) && f(e));
    const end = Date.now() + timeoutMs;
    while (avail().length < n) {
      if (this.closeInfo) throw new Error(`${this.label}: closed ${JSON.stringify(this.closeInfo)} after ${avail().length} of ${n} matching events`);
      if (Date.now() > end) throw new Error(`${this.label}: ${avail().length} of ${n} matching events after ${timeoutMs} ms`);
      await sleep(20);
    }
    const out = avail().slice(0, n);
    for (const e of out) this.taken.add(e);
    return out;
  }

  /** Events matching pred, taken or not (no waiting). */
  all(pred = () => true) { return this.events.filter(pred); }

  /** Message events of one room, in arrival order. */
  messages(room) { return this.events.filter((e) => e.event === 'message' && e.data?.room_id === room); }

  async waitConnected(timeoutMs = 15_000) {
    const ev = await Promise.race([
      this.next((e) => e.event === 'connected' || e.event === 'error', timeoutMs),
      this.closed.then((ci) => { throw new Error(`${this.label}: closed ${JSON.stringify(ci)} before connected`); }),
    ]);
    if (ev.event !== 'connected') throw new Error(`${this.label}: expected connected, got ${JSON.stringify(ev)}`);
    this.connected = ev.data;
    return ev.data;
  }

  /** Resolves with {code, reason} once closed; rejects after timeoutMs. */
  waitClose(timeoutMs = 15_000) {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.label}: still open after ${timeoutMs} ms; last events: ` +
        JSON.stringify(this.events.slice(-3)).slice(0, 400))), timeoutMs);
    });
    return Promise.race([this.closed, late]).finally(() => clearTimeout(timer));
  }

  /** Stops reading from the socket (kernel buffers fill, the server sees a slow client). */
  pause() { this.ws._socket.pause(); }
  resume() { this.ws._socket.resume(); }

  close(code = 1000) { if (this.isOpen) this.ws.close(code); return this.closed; }
  terminate() { try { this.ws.terminate(); } catch { /* closed */ } }
}

/**
 * Sends items [{message, cmid, ...data}] to channel in order, keeping at most `window`
 * unanswered; resolves with the replies in item order. onReply(i, frame) sees each reply.
 * An error reply rejects unless allowErrors.
 */
export async function sendMany(client, channel, items, { window = 100, onReply, allowErrors = false, timeoutMs = 120_000 } = {}) {
  const replies = new Array(items.length);
  const inflight = new Set();
  let failure = null;
  for (let i = 0; i < items.length && !failure; i++) {
    while (inflight.size >= window && !failure) await Promise.race(inflight);
    if (failure) break;
    const { message, cmid, ...rest } = items[i];
    const p = client.request('send_message', channel, { message, client_msg_id: cmid, ...rest }, { timeoutMs })
      .then((ev) => {
        replies[i] = ev;
        if (ev.event !== 'ack' && !allowErrors) failure ??= new Error(`send #${i} (${cmid}) answered ${JSON.stringify(ev)}`);
        onReply?.(i, ev);
      }, (e) => { failure ??= e; })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  }
  await Promise.all(inflight);
  if (failure) throw failure;
  return replies;
}

/** `rounds` bursts of `size` sends to channel, one burst at a time (cmids
 * `<prefix>-<round>-<k>`); every send must be acked (sendMany throws otherwise). */
export async function sendRounds(client, channel, { rounds = 4, size = 200, prefix, timeoutMs = 120_000 }) {
  for (let round = 1; round <= rounds; round++) {
    await sendMany(client, channel,
      Array.from({ length: size }, (_, k) => ({ message: `r${round} ${k}`, cmid: `${prefix}-${round}-${k}` })),
      { window: size, timeoutMs });
  }
}

/** Someone else's n messages in app `default` (room `bulk`), written straight into
 * PostgreSQL: a large messages table for plan and statistics tests. */
export async function bulkMessages(cluster, n) {
  await cluster.query(`INSERT INTO rooms (app, room) VALUES ('default', 'bulk')`);
  await cluster.query(`INSERT INTO messages (app, room, seq, sender, client_msg_id, body)
                       SELECT 'default', 'bulk', i, 'bulk-sender', 'bulk-' || i, 'x' FROM generate_series(1, $1::int) i`, [n]);
}

/** Asserts-free helper: seqs (numbers) are exactly from..to. Returns a description of the first problem or null. */
export function seqProblem(seqs, from, to) {
  const sorted = [...seqs].sort((a, b) => a - b);
  if (sorted.length !== to - from + 1) return `expected ${to - from + 1} seqs ${from}..${to}, got ${sorted.length}`;
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i] !== from + i) return `expected seq ${from + i} at position ${i}, got ${sorted[i]}`;
  }
  return null;
}

export function uniqueRoom(prefix = 'r') {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
}

/** The gateways' partition of a room in app `default`: FNV-1a of "<app>/<room>" mod n
 * (common/util.c nt_partition). */
export function partitionOf(room, n = 4) {
  let h = 2166136261;
  for (const ch of Buffer.from(`default/${room}`)) h = Math.imul(h ^ ch, 16777619) >>> 0;
  return h % n;
}

/** How many partitions some persister owns now (natter_claim's advisory locks). */
export async function ownedPartitions(cluster) {
  return (await cluster.query(
    "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = x'6e6174'::int AND granted"))[0].n;
}
