// internal_auth.test.mjs — issue #18, internal trust: a cluster whose nats-server wants a
// user and password (JetStream on) and whose redis-server runs with --requirepass works
// end to end with the right credentials; every process refuses to start (exit 2, one
// line naming the setting, the secret never printed) with wrong ones; the router sends
// AUTH first on every Redis reconnection and rides out a refused AUTH with a backoff;
// NATS tokens and NKey seeds (a pair made here with node's Ed25519) work the same way.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { BIN_DIR, ROOT, freePorts, runOnce, sleep, uniqueRoom, useCluster, waitUntil } from './lib/cluster.mjs';

const NATS_PASSWORD = `nats-${crypto.randomBytes(12).toString('hex')}`;
const REDIS_PASSWORD = `redis-${crypto.randomBytes(12).toString('hex')}`;
const c = useCluster({
  natsAuth: { user: 'natter', password: NATS_PASSWORD },
  redisPassword: REDIS_PASSWORD,
  env: { NATTER_LOG_LEVEL: 'info' },          // start-up lines (with the URLs) in the logs
});

// ---- helpers

/** The first line nats-server sends after a CONNECT with the given fields and a PING. */
function natsHello(port, fields = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    const t = setTimeout(() => { sock.destroy(); reject(new Error('nats: no answer')); }, 10_000);
    sock.setEncoding('utf8');
    sock.on('error', (e) => { clearTimeout(t); reject(e); });
    sock.on('data', (d) => {
      buf += d;
      const lines = buf.split('\r\n');
      const answer = lines.find((l) => l === 'PONG' || l.startsWith('-ERR'));
      if (answer) { clearTimeout(t); sock.destroy(); resolve(answer); }
    });
    sock.write(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, ...fields })}\r\nPING\r\n`);
  });
}

/** redis-cli with the cluster's password (the harness's redisCommand does not AUTH). */
function redisCli(...args) {
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(c.ports.redis), '--no-auth-warning',
    '-a', REDIS_PASSWORD, ...args], { encoding: 'utf8' }).trim();
}

function errorstat(info, name) {
  const m = info.match(new RegExp(`^errorstat_${name}:count=(\\d+)`, 'm'));
  return m ? Number(m[1]) : 0;
}

async function httpStatus(url) {
  try { return (await fetch(url, { signal: AbortSignal.timeout(2000) })).status; } catch { return 0; }
}

let free;   // [gateway listen, metrics]: ports of nothing in the cluster
before(async () => { free = await freePorts(2); });

/** Settings for a one-off natter process against the cluster, without credentials. */
function baseEnv(extra = {}) {
  return {
    NATTER_NATS_URL: `nats://127.0.0.1:${c.ports.nats}`,
    NATTER_REDIS_URL: `redis://127.0.0.1:${c.ports.redis}`,
    NATTER_PG_URL: c.pgUrl,
    NATTER_JWT_SECRET: 'internal-auth-secret',
    NATTER_LISTEN: `127.0.0.1:${free[0]}`,
    NATTER_METRICS_LISTEN: `127.0.0.1:${free[1]}`,
    NATTER_GATEWAY_ID: 'gw-auth',
    NATTER_REDIS_PASSWORD: REDIS_PASSWORD,
    NATTER_LOG_LEVEL: 'warn',
    ...extra,
  };
}

/** Runs bin once; it must exit 2 with one line on stderr that names every string of
 * `names` and shows none of `secrets`. Returns the line. */
async function expectExit2(bin, env, names, secrets = []) {
  const r = await runOnce(bin, env, { timeoutMs: 60_000 });
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  const show = `${bin}: code ${r.code}, signal ${r.signal}, stderr:\n${r.stderr}`;
  assert.equal(r.code, 2, show);
  assert.equal(lines.length, 1, `one line on stderr; ${show}`);
  for (const n of names) assert.ok(lines[0].includes(n), `the line names ${n}; ${show}`);
  for (const s of secrets) assert.ok(!(r.stdout + r.stderr).includes(s), `the secret is never printed; ${show}`);
  return lines[0];
}

/** Starts the router with env, waits for its /readyz (200), stops it (SIGTERM, exit 0).
 * Returns its output. */
async function routerComesUp(env) {
  const base = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('NATTER_')) base[k] = v;
  const child = spawn(path.join(BIN_DIR, 'natter-router'), [], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  try {
    await waitUntil(async () => {
      if (child.exitCode !== null) throw new Error(`router exited ${child.exitCode}: ${out}`);
      return (await httpStatus(`http://${env.NATTER_METRICS_LISTEN}/readyz`)) === 200;
    }, { timeoutMs: 30_000, what: 'the router to be ready' });
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
  }
  const end = await exited;
  assert.deepEqual(end, { code: 0, signal: null }, `router stops cleanly; output:\n${out}`);
  return out;
}

/** A nats-server (no JetStream: the router needs none) with an authorization block;
 * returns {port, stop}. */
async function authNats(block) {
  const [port] = await freePorts(1);
  const dir = fs.mkdtempSync(path.join(c.dir, 'nats-auth-'));
  const conf = path.join(dir, 'nats.conf');
  fs.writeFileSync(conf, `listen: 127.0.0.1:${port}\nauthorization { ${block} }\n`);
  const child = spawn('nats-server', ['-c', conf], { stdio: 'ignore' });
  await waitUntil(() => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }), { what: `nats-server on ${port}` });
  return {
    port,
    dir,
    /** Rewrites the authorization block and makes the server reload it (SIGHUP). */
    reload: (next) => {
      fs.writeFileSync(conf, `listen: 127.0.0.1:${port}\nauthorization { ${next} }\n`);
      child.kill('SIGHUP');
    },
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', resolve);
      child.kill('SIGTERM');
    }),
  };
}

// NKeys as nkeys encodes them: base32 of a type prefix, the 32 key bytes and a CRC-16/XMODEM.
const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function crc16(buf) {
  let crc = 0;
  for (const b of buf) {
    crc ^= b << 8;
    for (let k = 0; k < 8; k++) crc = (crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1) & 0xffff;
  }
  return crc;
}
function base32(buf) {
  let acc = 0, bits = 0, out = '';
  for (const b of buf) {
    acc = ((acc << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) { bits -= 5; out += B32[(acc >>> bits) & 31]; }
  }
  if (bits > 0) out += B32[(acc << (5 - bits)) & 31];
  return out;
}
function nkeyEncode(prefix, key) {
  const body = Buffer.concat([Buffer.from(prefix), key]);
  const crc = crc16(body);
  return base32(Buffer.concat([body, Buffer.from([crc & 0xff, crc >> 8])]));
}
/** A user NKey pair: {seed: "SU…", pub: "U…"}. */
function userNkey() {
  const jwk = crypto.generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const USER = 20 << 3, SEED = 18 << 3;
  return {
    seed: nkeyEncode([SEED | (USER >> 5), (USER & 31) << 3], Buffer.from(jwk.d, 'base64url')),
    pub: nkeyEncode([USER], Buffer.from(jwk.x, 'base64url')),
  };
}

// ---- the cluster with credentials

test('the servers really want credentials', async () => {
  assert.match(await natsHello(c.ports.nats), /-ERR 'Authorization Violation'/i);
  assert.match(await natsHello(c.ports.nats, { user: 'natter', pass: 'wrong' }), /-ERR 'Authorization Violation'/i);
  assert.equal(await natsHello(c.ports.nats, { user: 'natter', pass: NATS_PASSWORD }), 'PONG');
  await assert.rejects(c.redis('PING'), /NOAUTH/);
  assert.equal(redisCli('PING'), 'PONG');
});

test('with the right credentials messages cross both gateways (NATS, Redis, JetStream, PostgreSQL)', { timeout: 120_000 }, async () => {
  assert.ok(await c.allReady(), 'every process is ready');
  const room = uniqueRoom('auth');
  const channel = `room.${room}`;
  const alice = await c.client(0, 'alice');
  const bob = await c.client(1, 'bob');
  await alice.subscribe(channel);                 // a join: gateway -> router (Redis) -> persister
  await bob.subscribe(channel);
  const plan = [[alice, 'alice', 'hello over an authenticated bus'], [bob, 'bob', 'and back'], [alice, 'alice', 'third']];
  const acks = [];
  for (const [i, [client, user, text]] of plan.entries()) {
    const ack = await client.ack('send_message', channel, { message: text, client_msg_id: `auth-${i}` });
    assert.equal(ack.seq, i + 1);
    const rows = await c.query('SELECT sender, body FROM messages WHERE id = $1', [ack.id]);
    assert.deepEqual(rows, [{ sender: user, body: text }], 'committed before the ack');
    acks.push(ack);
  }
  for (const who of [alice, bob]) {
    await who.collect((e) => e.event === 'message' && e.data?.room_id === room, acks.length, 30_000);
    assert.deepEqual(who.messages(room).map((e) => e.data.seq), [1, 2, 3], `${who.label}: each once, in order`);
  }
  // The router's Redis state is there: the room's online members.
  const online = redisCli('--scan', '--pattern', '*');
  assert.ok(online.length > 0, 'the router wrote to Redis');
  alice.close();
  bob.close();
});

// ---- wrong credentials at start-up: exit 2, one line, the setting named

for (const bin of ['natter-gateway', 'natter-router', 'natter-persister']) {
  test(`${bin} with a wrong NATTER_NATS_PASSWORD exits 2 naming it`, async () => {
    const line = await expectExit2(bin, baseEnv({ NATTER_NATS_USER: 'natter', NATTER_NATS_PASSWORD: 'wrong-password-123' }),
      ['NATTER_NATS_PASSWORD', 'authorization violation'], ['wrong-password-123']);
    assert.match(line, /^natter-\w+: cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+ \(NATTER_NATS_URL\)/);
  });
}

test('a wrong password in NATTER_NATS_URL: named, and masked in the message', async () => {
  const url = `nats://natter:wrong-in-url-456@127.0.0.1:${c.ports.nats}`;
  for (const bin of ['natter-gateway', 'natter-persister']) {
    const line = await expectExit2(bin, baseEnv({ NATTER_NATS_URL: url }),
      ['NATTER_NATS_URL', 'authorization violation', 'nats://natter:***@127.0.0.1'], ['wrong-in-url-456']);
    assert.ok(!line.includes('NATTER_NATS_PASSWORD'), line);
  }
});

test('no NATS credentials at all: the settings to set are named', async () => {
  await expectExit2('natter-gateway', baseEnv(), ['authorization violation', 'NATTER_NATS_USER', 'NATTER_NATS_PASSWORD']);
});

test('credentials set two ways, or half of a pair, are refused as settings', async () => {
  await expectExit2('natter-router', baseEnv({
    NATTER_NATS_URL: `nats://natter:${NATS_PASSWORD}@127.0.0.1:${c.ports.nats}`,
    NATTER_NATS_USER: 'natter', NATTER_NATS_PASSWORD: NATS_PASSWORD,
  }), ['NATTER_NATS_URL', 'NATTER_NATS_USER'], [NATS_PASSWORD]);
  await expectExit2('natter-router', baseEnv({ NATTER_NATS_USER: 'natter' }), ['NATTER_NATS_PASSWORD']);
});

test('natter-router with a wrong Redis password exits 2 naming the setting', async () => {
  const nats = { NATTER_NATS_USER: 'natter', NATTER_NATS_PASSWORD: NATS_PASSWORD };
  await expectExit2('natter-router', baseEnv({ ...nats, NATTER_REDIS_PASSWORD: 'wrong-redis-789' }),
    ['NATTER_REDIS_PASSWORD', 'WRONGPASS'], ['wrong-redis-789']);
  const env = baseEnv({ ...nats, NATTER_REDIS_URL: `redis://:wrong-redis-789@127.0.0.1:${c.ports.redis}` });
  delete env.NATTER_REDIS_PASSWORD;
  await expectExit2('natter-router', env, ['NATTER_REDIS_URL', 'WRONGPASS', 'redis://:***@127.0.0.1'], ['wrong-redis-789']);
  env.NATTER_REDIS_URL = `redis://default:wrong-redis-789@127.0.0.1:${c.ports.redis}`;     // ACL form
  await expectExit2('natter-router', env, ['NATTER_REDIS_URL', 'WRONGPASS', 'redis://default:***@'], ['wrong-redis-789']);
  env.NATTER_REDIS_URL = `redis://127.0.0.1:${c.ports.redis}`;                               // none at all
  await expectExit2('natter-router', env, ['NOAUTH', 'NATTER_REDIS_PASSWORD']);
});

test('the Redis password in the URL (percent-encoded) and as user + password works', async () => {
  const nats = { NATTER_NATS_USER: 'natter', NATTER_NATS_PASSWORD: NATS_PASSWORD };
  const env = baseEnv({ ...nats, NATTER_REDIS_URL: `redis://:${encodeURIComponent(REDIS_PASSWORD)}@127.0.0.1:${c.ports.redis}/0`, NATTER_LOG_LEVEL: 'info' });
  delete env.NATTER_REDIS_PASSWORD;
  const out = await routerComesUp(env);
  assert.ok(!out.includes(REDIS_PASSWORD) && !out.includes(NATS_PASSWORD), out);
  assert.match(out, /connected \(AUTH accepted\)/);
  redisCli('ACL', 'SETUSER', 'natter-router', 'on', '>router-acl-pw', '~*', '&*', '+@all');
  const acl = baseEnv({ ...nats, NATTER_REDIS_USERNAME: 'natter-router', NATTER_REDIS_PASSWORD: 'router-acl-pw' });
  await routerComesUp(acl);
  redisCli('ACL', 'DELUSER', 'natter-router');
});

test('AUTH goes first on every Redis reconnection; a refused one is logged and retried', { timeout: 120_000 }, async () => {
  const routerLog = c.procs.router.logFile;
  const logBefore = fs.readFileSync(routerLog, 'utf8').length;
  const before = redisCli('INFO', 'errorstats');
  redisCli('CONFIG', 'SET', 'requirepass', 'rotated-password');
  try {
    execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(c.ports.redis), '--no-auth-warning', '-a', 'rotated-password',
      'CLIENT', 'KILL', 'TYPE', 'normal']);
    await waitUntil(async () => (await httpStatus(c.readyUrl('router'))) === 503, { what: 'the router to be unready' });
    await waitUntil(() => (fs.readFileSync(routerLog, 'utf8').slice(logBefore).match(/AUTH refused/g) || []).length >= 2,
      { timeoutMs: 30_000, what: 'two refused AUTHs in the router log' });
  } finally {
    execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(c.ports.redis), '--no-auth-warning', '-a', 'rotated-password',
      'CONFIG', 'SET', 'requirepass', REDIS_PASSWORD]);
  }
  await waitUntil(async () => (await httpStatus(c.readyUrl('router'))) === 200, { timeoutMs: 60_000, what: 'the router to be ready again' });
  const log = fs.readFileSync(routerLog, 'utf8').slice(logBefore);
  assert.match(log, /AUTH refused: \\"WRONGPASS/);
  assert.match(log, /retrying in 2000 ms/, 'the backoff grows after refusals');
  assert.match(log, /connected \(AUTH accepted\)/);
  // Nothing reached Redis before its AUTH: that would have been answered NOAUTH.
  const after = redisCli('INFO', 'errorstats');
  assert.equal(errorstat(after, 'NOAUTH'), errorstat(before, 'NOAUTH'), `no command before AUTH:\n${before}\n${after}`);
  assert.ok(errorstat(after, 'WRONGPASS') >= errorstat(before, 'WRONGPASS') + 2);

  // And the Redis path works again: a join and a message.
  const room = uniqueRoom('reauth');
  const a = await c.client(0, 'gina');
  const b = await c.client(1, 'hank');
  await a.subscribe(`room.${room}`);
  await b.subscribe(`room.${room}`);
  const ack = await a.ack('send_message', `room.${room}`, { message: 'after the rotation' });
  await b.next((e) => e.event === 'message' && e.data?.id === ack.id);
  a.close();
  b.close();
});

test('the router works as the least-privilege Redis ACL user of docs/security.md', { timeout: 120_000 }, async () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/security.md'), 'utf8');
  const line = doc.split('\n').map((l) => l.trim()).find((l) => l.startsWith('ACL SETUSER natter-router '));
  assert.ok(line, 'docs/security.md has the ACL SETUSER line');
  const aclPassword = crypto.randomBytes(12).toString('hex');
  redisCli(...line.replace('>PASSWORD', `>${aclPassword}`).split(/\s+/));
  const before = redisCli('INFO', 'errorstats');
  const router = c.procs.router;
  const env = router.env;
  router.env = { ...env, NATTER_REDIS_USERNAME: 'natter-router', NATTER_REDIS_PASSWORD: aclPassword };
  try {
    await c.restartProcess('router');
    // Everything the router keeps in Redis: connections, heartbeats, joins, presence, typing.
    const room = uniqueRoom('acl');
    const ch = `room.${room}`;
    const a = await c.client(0, 'acl-ann', { name: 'Ann' });
    const b = await c.client(1, 'acl-bob', { name: 'Bob' });
    await a.subscribe(ch);
    await b.subscribe(ch);
    await a.ack('typing', ch, { is_typing: true });
    await b.next((e) => e.event === 'typing' && e.data?.user_id === 'acl-ann');
    await a.ack('presence', undefined, { status: 'busy' });
    await b.next((e) => e.event === 'presence' && e.data?.user_id === 'acl-ann' && e.data.status === 'busy');
    const online = await b.ack('online_users', ch);
    assert.ok(JSON.stringify(online).includes('acl-ann'), JSON.stringify(online));
    const ack = await a.ack('send_message', ch, { message: 'least privilege' });
    await b.next((e) => e.event === 'message' && e.data?.id === ack.id);
    await a.ack('unsubscribe', ch);
    a.close();
    b.close();
    await a.closed;
    await sleep(6000);                             // a sweep (NATTER_SWEEP_MS 5000) ran too
    const after = redisCli('INFO', 'errorstats');
    assert.equal(errorstat(after, 'NOPERM'), errorstat(before, 'NOPERM'), `nothing refused by the ACL:\n${after}`);
    assert.equal(await c.metric('router', 'natter_router_redis_errors_total'), 0);
  } finally {
    router.env = env;
    await c.restartProcess('router');
  }
});

// ---- other ways to authenticate to NATS

test('a NATS token, set or in the URL, and a wrong one', async () => {
  const token = `tok-${crypto.randomBytes(10).toString('hex')}`;
  const srv = await authNats(`token: ${JSON.stringify(token)}`);
  try {
    await routerComesUp(baseEnv({ NATTER_NATS_URL: `nats://127.0.0.1:${srv.port}`, NATTER_NATS_TOKEN: token }));
    const out = await routerComesUp(baseEnv({ NATTER_NATS_URL: `nats://${token}@127.0.0.1:${srv.port}`, NATTER_LOG_LEVEL: 'info' }));
    assert.ok(!out.includes(token), `the token is never logged:\n${out}`);
    assert.match(out, /nats:\/\/\*\*\*@127\.0\.0\.1/);
    await expectExit2('natter-router', baseEnv({ NATTER_NATS_URL: `nats://127.0.0.1:${srv.port}`, NATTER_NATS_TOKEN: 'not-the-token' }),
      ['NATTER_NATS_TOKEN', 'authorization violation'], ['not-the-token']);
  } finally {
    await srv.stop();
  }
});

test('an NKey seed file (bare or in a .creds block), and a seed the server does not know', async () => {
  const good = userNkey();
  const other = userNkey();
  const srv = await authNats(`users: [ { nkey: ${good.pub} } ]`);
  try {
    const bare = path.join(srv.dir, 'user.nk');
    fs.writeFileSync(bare, `${good.seed}\n`, { mode: 0o600 });
    const block = path.join(srv.dir, 'user-block.nk');
    fs.writeFileSync(block, `-----BEGIN USER NKEY SEED-----\n${good.seed}\n------END USER NKEY SEED------\n`, { mode: 0o600 });
    const wrong = path.join(srv.dir, 'other.nk');
    fs.writeFileSync(wrong, `${other.seed}\n`, { mode: 0o600 });
    const url = `nats://127.0.0.1:${srv.port}`;
    await routerComesUp(baseEnv({ NATTER_NATS_URL: url, NATTER_NATS_NKEY_SEED_FILE: bare }));
    await routerComesUp(baseEnv({ NATTER_NATS_URL: url, NATTER_NATS_NKEY_SEED_FILE: block }));
    await expectExit2('natter-router', baseEnv({ NATTER_NATS_URL: url, NATTER_NATS_NKEY_SEED_FILE: wrong }),
      ['NATTER_NATS_NKEY_SEED_FILE', 'authorization violation'], [other.seed]);
    await expectExit2('natter-router', baseEnv({ NATTER_NATS_URL: url, NATTER_NATS_NKEY_SEED_FILE: path.join(srv.dir, 'missing.nk') }),
      ['NATTER_NATS_NKEY_SEED_FILE']);
  } finally {
    await srv.stop();
  }
});

test('TLS to NATS: a CA, mutual TLS with a client certificate, and what is refused', { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(c.dir, 'tls-'));
  const f = (n) => path.join(dir, n);
  const ssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=natter-test-ca');
  fs.writeFileSync(f('srv.ext'), 'subjectAltName=IP:127.0.0.1\n');
  fs.writeFileSync(f('cli.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [who, cn] of [['srv', 'localhost'], ['cli', 'natter-router']]) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`), '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-out', f(`${who}.pem`), '-days', '2', '-extfile', f(`${who}.ext`));
  }
  const [port] = await freePorts(1);
  fs.writeFileSync(f('nats.conf'), `listen: 127.0.0.1:${port}\n` +
    `tls { cert_file: ${JSON.stringify(f('srv.pem'))}, key_file: ${JSON.stringify(f('srv.key'))}, ca_file: ${JSON.stringify(f('ca.pem'))}, verify: true }\n` +
    'authorization { user: natter, password: "tls-pw" }\n');
  const child = spawn('nats-server', ['-c', f('nats.conf')], { stdio: 'ignore' });
  try {
    await waitUntil(() => new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    }), { what: 'nats-server with TLS' });
    const env = baseEnv({ NATTER_NATS_URL: `nats://127.0.0.1:${port}`, NATTER_NATS_USER: 'natter', NATTER_NATS_PASSWORD: 'tls-pw' });
    await routerComesUp({ ...env, NATTER_NATS_TLS_CA: f('ca.pem'), NATTER_NATS_TLS_CERT: f('cli.pem'), NATTER_NATS_TLS_KEY: f('cli.key') });
    // Without our CA the server's certificate is not trusted (the system store does not know it).
    await expectExit2('natter-router', env, ['TLS', 'NATTER_NATS_TLS_CA']);
    await expectExit2('natter-router', { ...env, NATTER_NATS_TLS_CA: f('ca.pem'), NATTER_NATS_TLS_CERT: f('cli.pem'), NATTER_NATS_TLS_KEY: f('srv.key') },
      ['NATTER_NATS_TLS_CERT', 'NATTER_NATS_TLS_KEY']);               // a key that is not the certificate's
    await expectExit2('natter-router', { ...env, NATTER_NATS_TLS_CERT: f('cli.pem') }, ['NATTER_NATS_TLS_KEY']);
    await expectExit2('natter-router', { ...env, NATTER_NATS_TLS_CA: f('missing.pem') }, ['NATTER_NATS_TLS_CA']);
  } finally {
    await new Promise((resolve) => { child.once('exit', resolve); child.kill('SIGTERM'); });
  }
});

test('a NATS password rotated under a running process: one line naming the setting, exit 2', { timeout: 60_000 }, async () => {
  const srv = await authNats('user: natter, password: "first"');
  const base = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('NATTER_')) base[k] = v;
  const env = baseEnv({ NATTER_NATS_URL: `nats://127.0.0.1:${srv.port}`, NATTER_NATS_USER: 'natter', NATTER_NATS_PASSWORD: 'first' });
  let child;
  try {
    child = spawn(path.join(BIN_DIR, 'natter-router'), [], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
    await waitUntil(async () => (await httpStatus(`http://${env.NATTER_METRICS_LISTEN}/readyz`)) === 200,
      { what: 'the router to be ready' });
    srv.reload('user: natter, password: "second"');   // the server drops it; reconnects are refused
    await waitUntil(() => child.exitCode !== null || child.signalCode !== null,
      { timeoutMs: 30_000, what: `the router to exit; output:\n${out}` }).catch(() => {});
    assert.deepEqual(child.exitCode !== null || child.signalCode !== null ? await exited : null,
      { code: 2, signal: null }, `the router ends with exit 2; output:\n${out}`);
    assert.match(out, /natter-router: NATS at nats:\/\/127\.0\.0\.1:\d+ \(NATTER_NATS_URL\) closed the connection for good: authorization violation: the server refused NATTER_NATS_USER\/NATTER_NATS_PASSWORD\n/);
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await srv.stop();
  }
});

// ---- nothing secret in any log

test('no natter log holds a password', async () => {
  await sleep(100);
  for (const name of ['router', 'persister', 'gw1', 'gw2']) {
    const log = fs.readFileSync(c.procs[name].logFile, 'utf8');
    assert.ok(log.length > 0, `${name} logged something`);
    assert.ok(!log.includes(NATS_PASSWORD), `${name}: no NATS password`);
    assert.ok(!log.includes(REDIS_PASSWORD), `${name}: no Redis password`);
  }
});
