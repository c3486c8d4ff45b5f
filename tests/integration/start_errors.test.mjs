// start_errors.test.mjs: a missing required setting or an unreachable dependency at
// start is one line on stderr naming the setting, and exit code 2
// (docs/architecture.md "Failure at start").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePorts, runOnce, useCluster } from './lib/cluster.mjs';

const c = useCluster({ natter: false });    // real servers; the binaries are run one by one

let dead;   // ports with nothing listening
const env = (extra = {}) => {
  const [m] = dead;
  return {
    NATTER_NATS_URL: `nats://127.0.0.1:${c.ports.nats}`,
    NATTER_REDIS_URL: `redis://127.0.0.1:${c.ports.redis}`,
    NATTER_PG_URL: `postgresql://postgres@127.0.0.1:${c.ports.pg}/natter`,
    NATTER_JWT_SECRET: 'start-errors-secret',
    NATTER_LISTEN: `127.0.0.1:${dead[3]}`,
    NATTER_METRICS_LISTEN: `127.0.0.1:${m}`,
    NATTER_GATEWAY_ID: 'gw-start',
    NATTER_LOG_LEVEL: 'warn',
    ...extra,
  };
};

async function expectExit2(bin, settings, drop, name) {
  const e = env(settings);
  for (const k of drop) delete e[k];
  const r = await runOnce(bin, e, { timeoutMs: 60_000 });
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  const show = `${bin}: code ${r.code}, signal ${r.signal}, stderr:\n${r.stderr}`;
  assert.equal(r.code, 2, show);
  assert.equal(lines.length, 1, `one line on stderr; ${show}`);
  assert.ok(lines[0].includes(name), `the line names ${name}; ${show}`);
}

test('free ports for the unreachable cases', async () => {
  dead = await freePorts(4);
});

test('natter-gateway without NATTER_JWT_SECRET', async () => {
  await expectExit2('natter-gateway', {}, ['NATTER_JWT_SECRET'], 'NATTER_JWT_SECRET');
});

test('natter-persister without NATTER_PG_URL', async () => {
  await expectExit2('natter-persister', {}, ['NATTER_PG_URL'], 'NATTER_PG_URL');
});

for (const bin of ['natter-gateway', 'natter-router', 'natter-persister']) {
  test(`${bin} with NATS unreachable`, async () => {
    await expectExit2(bin, { NATTER_NATS_URL: `nats://127.0.0.1:${dead[1]}` }, [], 'NATTER_NATS_URL');
  });
}

test('natter-router with Redis unreachable', async () => {
  await expectExit2('natter-router', { NATTER_REDIS_URL: `redis://127.0.0.1:${dead[2]}` }, [], 'NATTER_REDIS_URL');
});

test('natter-persister with PostgreSQL unreachable', async () => {
  await expectExit2('natter-persister', { NATTER_PG_URL: `postgresql://postgres@127.0.0.1:${dead[2]}/natter` }, [], 'NATTER_PG_URL');
});

test('an invalid number is refused the same way', async () => {
  await expectExit2('natter-gateway', { NATTER_MAX_FRAME: 'lots' }, [], 'NATTER_MAX_FRAME');
});
