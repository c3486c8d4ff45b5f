// harness.test.mjs: the test harness itself, against the real servers only (no natter
// binaries): PostgreSQL, Redis and JetStream start, the helpers read them correctly,
// tokens are what they claim, and teardown leaves no process or temp dir behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Cluster, natsSession, useCluster, waitUntil } from './lib/cluster.mjs';

const c = useCluster({ natter: false });

test('PostgreSQL runs as postgres with a natter database', async () => {
  const [row] = await c.query('SELECT current_database() AS db, current_setting($1) AS port', ['port']);
  assert.equal(row.db, 'natter');
  assert.equal(Number(row.port), c.ports.pg);
  const st = fs.statSync(`${c.dir}/pg/data`);
  if (process.getuid() === 0) assert.notEqual(st.uid, 0, 'data dir must not be owned by root');
});

test('Redis helper speaks RESP', async () => {
  assert.equal(await c.redis('SET', 'natter:test', 'héllo'), 'OK');
  assert.equal(await c.redis('GET', 'natter:test'), 'héllo');
  assert.equal(await c.redis('HSET', 'h', 'conns', '3'), 1);
  assert.deepEqual(await c.redis('HGETALL', 'h'), ['conns', '3']);
  assert.equal(await c.redis('GET', 'missing'), null);
  await assert.rejects(c.redis('NOSUCHCOMMAND'), /unknown command/i);
});

test('JetStream stream state is visible through the monitoring port, de-duplicated by Nats-Msg-Id', async () => {
  assert.equal(await c.stream('NATTER_IN'), null);
  const nats = natsSession(c.ports.nats);
  try {
    const created = await nats.request('$JS.API.STREAM.CREATE.NATTER_IN',
      JSON.stringify({ name: 'NATTER_IN', subjects: ['natter.in.>'], storage: 'file', duplicate_window: 120e9 }));
    assert.equal(created.error, undefined, JSON.stringify(created.error));
    const a = await nats.request('natter.in.default.0', '{"x":1}', { 'Nats-Msg-Id': 'default:alice:m1' });
    const b = await nats.request('natter.in.default.0', '{"x":1}', { 'Nats-Msg-Id': 'default:alice:m1' });
    assert.equal(a.seq, 1);
    assert.equal(b.duplicate, true);
    const s = await waitUntil(async () => { const st = await c.stream('NATTER_IN'); return st?.state?.messages === 1 && st; },
      { what: 'stream state' });
    assert.equal(s.state.last_seq, 1);
  } finally {
    nats.close();
  }
});

test('tokens: good ones verify with the secret, bad ones are bad for the stated reason', () => {
  const verify = (tok, secret = c.secret) => {
    const [h, p, s] = tok.split('.');
    const header = JSON.parse(Buffer.from(h, 'base64url'));
    const payload = JSON.parse(Buffer.from(p, 'base64url'));
    const ok = header.alg === 'HS256'
      && crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url') === s;
    return { header, payload, ok };
  };
  const good = verify(c.token('alice', { name: 'Alice', app: 'acme' }));
  assert.equal(good.ok, true);
  assert.equal(good.payload.sub, 'alice');
  assert.equal(good.payload.app, 'acme');
  assert.ok(good.payload.exp > Date.now() / 1000);
  const bad = c.badTokens('alice');
  assert.equal(verify(bad.wrongSignature).ok, false);
  assert.equal(verify(bad.tamperedPayload).ok, false);
  assert.equal(verify(bad.expired).ok, true);
  assert.ok(verify(bad.expired).payload.exp < Date.now() / 1000);
  assert.equal(verify(bad.algNone).header.alg, 'none');
  assert.equal(bad.algNone.split('.')[2], '');
  assert.equal(verify(bad.hs512).header.alg, 'HS512');
  assert.equal(verify(bad.noExp).ok, true);
  assert.equal(verify(bad.noExp).payload.exp, undefined);
});

test('teardown stops every server and removes the temp dir', async () => {
  const other = new Cluster({ natter: false, name: 'teardown-check' });
  await other.start();
  const pids = ['nats', 'redis', 'postgres'].map((n) => other.procs[n].pid);
  assert.ok(fs.existsSync(other.dir));
  const problems = await other.teardown();
  assert.deepEqual(problems, []);
  if (!process.env.NATTER_TEST_KEEP) assert.equal(fs.existsSync(other.dir), false);
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `pid ${pid} still alive`);
});
