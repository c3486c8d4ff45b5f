// ghosts.test.mjs — issue #18 "abandoned joins leave ghosts": a socket that sends 20
// subscribes and disconnects at once used to stay listed online in several of those rooms
// (the router recorded the membership; nothing undid it when the join reply found the
// connection gone). Every live membership must be gone once the joins are through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, useCluster, uniqueRoom, waitUntil, sleep } from './lib/cluster.mjs';

const c = useCluster();

async function liveCount(room, user) {
  const v = await c.redis('HGET', `natter:{default}:live:${room}`, user);
  return Number(v ?? 0);
}

async function gatewaySubs(user) {
  const out = [];
  for (const g of c.gatewayNames) {
    const keys = await c.redis('KEYS', `natter:gw:${g}*:subs`);
    for (const k of keys ?? []) {
      for (const m of (await c.redis('SMEMBERS', k)) ?? []) if (m.includes(`|${user}|`)) out.push(m);
    }
  }
  return out;
}

test('joins still in flight when the socket goes are undone: no ghost in any room', { timeout: 120_000 }, async () => {
  // Both gateways at once (their users differ).
  await Promise.all([[0, 'ghost_a'], [1, 'ghost_b']].map(async ([gw, user]) => {
    const rooms = Array.from({ length: 20 }, () => uniqueRoom('gh'));
    const cl = await Client.open(c.wsUrl(gw, `?token=${encodeURIComponent(c.token(user))}`), { label: user });
    await cl.waitConnected();
    rooms.forEach((room, i) => cl.send({ action: 'subscribe', channel: `room.${room}`, ref: i }));
    cl.terminate();

    // The joins the gateway read before the reset go through the persister (it makes
    // the user a member of each room): wait until their number stops growing (a slow
    // build may read fewer of the 20 frames before the reset drops the rest) ...
    const stored = async () => (await c.query(
      'SELECT count(*)::int AS n FROM members WHERE app = $1 AND user_id = $2 AND room = ANY($3)',
      ['default', user, rooms]))[0].n;
    let n = -1, stableSince = Date.now();
    await waitUntil(async () => {
      const now = await stored();
      if (now !== n) { n = now; stableSince = Date.now(); }
      return n > 0 && Date.now() - stableSince > 2000;
    }, { timeoutMs: 30_000, what: `the joins of ${user} stored` });
    // ... and, a moment after the last reply, no room lists the user live.
    await sleep(1500);
    await waitUntil(async () => {
      for (const room of rooms) if (await liveCount(room, user) !== 0) return false;
      return (await gatewaySubs(user)).length === 0;
    }, { timeoutMs: 10_000, what: `no live membership of ${user} left` });
    const joined = (await c.query('SELECT room FROM members WHERE app = $1 AND user_id = $2 AND room = ANY($3)',
      ['default', user, rooms])).map((r) => r.room);
    for (const room of joined) {
      const o = await c.http(gw, 'GET', `/api/rooms/${room}/online`, { token: c.token('ghost_obs') });
      assert.equal(o.status, 200, o.text);
      assert.ok(!o.json.users.some((u) => u.user_id === user), `${user} listed online in ${room}: ${o.text}`);
    }
  }));
});
