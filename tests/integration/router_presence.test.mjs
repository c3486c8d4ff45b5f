// router_presence.test.mjs: the router counts a user's connections across gateways in
// Redis (natter:{<app>}:online:<user> conns) and, when a gateway is killed with -9,
// removes its connections once its heartbeat expires (issue: within 30 s; here the TTL
// and sweep are shortened to keep the test fast).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, waitUntil } from './lib/cluster.mjs';

const c = useCluster({
  env: { NATTER_GATEWAY_TTL_MS: '6000', NATTER_SWEEP_MS: '1000', NATTER_HEARTBEAT_MS: '1000' },
});

async function conns(user, app = 'default') {
  const v = await c.redis('HGET', `natter:{${app}}:online:${user}`, 'conns');
  return v === null ? 0 : Number(v);
}

async function waitConns(user, want, timeoutMs = 20_000) {
  let last;
  await waitUntil(async () => (last = await conns(user)) === want,
    { timeoutMs, intervalMs: 200, what: `${user} conns == ${want}` }).catch((e) => {
    throw new Error(`${e.message}; last value ${last}`);
  });
}

test('connection counts across gateways, and a killed gateway\'s connections expire', { timeout: 120_000 }, async () => {
  const pam1 = await c.client(0, 'pam');
  const pam2 = await c.client(0, 'pam');
  const pam3 = await c.client(1, 'pam');
  const quin = await c.client(1, 'quin');
  await waitConns('pam', 3);
  await waitConns('quin', 1);

  // Per-gateway connection sets (docs/internals.md) name these connections. A gateway's
  // id is NATTER_GATEWAY_ID plus a per-start suffix.
  const gwId = async (name) => {
    const ids = (await c.redis('ZRANGE', 'natter:gws', '0', '-1')).filter((id) => id.startsWith(`${name}-`));
    assert.equal(ids.length, 1, `one live incarnation of ${name} in natter:gws: ${JSON.stringify(ids)}`);
    return ids[0];
  };
  const gw2id = await gwId('gw2');
  const gw1 = await c.redis('SMEMBERS', `natter:gw:${await gwId('gw1')}:conns`);
  const gw2 = await c.redis('SMEMBERS', `natter:gw:${gw2id}:conns`);
  assert.equal(gw1.filter((m) => m.startsWith('default|pam|')).length, 2, JSON.stringify(gw1));
  assert.equal(gw2.filter((m) => m.startsWith('default|pam|')).length, 1, JSON.stringify(gw2));
  assert.ok(gw2.includes(`default|quin|${quin.connected.connection_id}`), JSON.stringify(gw2));

  // A clean close is counted at once (no heartbeat needed).
  await pam2.close();
  await waitConns('pam', 2);

  // kill -9 gw2: its connections disappear once its heartbeat is older than the TTL.
  await c.killProcess('gw2');
  await pam3.waitClose(15_000);
  await waitConns('pam', 1, 35_000);
  await waitConns('quin', 0, 35_000);
  assert.deepEqual((await c.redis('SMEMBERS', `natter:gw:${gw2id}:conns`)), []);
  assert.equal(await conns('pam'), 1, 'the gw1 connection is still counted');
  assert.ok(pam1.isOpen);

  // A restarted gw2 serves again and is counted again.
  await c.startProcess('gw2');
  const pam4 = await c.client(1, 'pam');
  await waitConns('pam', 2);
  pam1.close();
  pam4.close();
  await waitConns('pam', 0);
});
