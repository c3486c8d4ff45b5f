// keepalive.test.mjs — the gateway's own keepalive (lws's per-connection validity
// timers are off): an idle connection is pinged every NATTER_PING_INTERVAL_S; one that
// answers stays open, one that answers nothing is closed (1001 "ping timeout") after
// NATTER_PING_TIMEOUT_S; any frame it sends counts as an answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { useCluster, sleep } from './lib/cluster.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');

const INTERVAL_S = 1;
const TIMEOUT_S = 3;
const c = useCluster({
  gateways: 1,
  env: { NATTER_PING_INTERVAL_S: String(INTERVAL_S), NATTER_PING_TIMEOUT_S: String(TIMEOUT_S) },
});

/** A raw ws client authenticated by query token; records pings, frames and the close. */
function open(user, { autoPong = true } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(c.wsUrl(0, `?token=${encodeURIComponent(c.token(user))}`), { autoPong, perMessageDeflate: false });
    const st = { ws, pings: [], events: [], closed: null, openedAt: 0 };
    st.closedP = new Promise((res) => ws.on('close', (code, reason) => {
      st.closed = { code, reason: reason.toString(), at: Date.now() };
      res(st.closed);
    }));
    ws.on('ping', () => st.pings.push(Date.now()));
    ws.on('message', (d) => st.events.push(JSON.parse(d.toString())));
    ws.on('error', reject);
    ws.on('open', () => { st.openedAt = Date.now(); resolve(st); });
  });
}

async function metric(name) {
  const r = await fetch(`http://127.0.0.1:${c.ports.metrics[c.gatewayNames[0]]}/metrics`);
  const line = (await r.text()).split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : undefined;
}

test('connected announces the ping interval', { timeout: 30_000 }, async () => {
  const a = await open('ka-announce');
  await sleep(300);
  const connected = a.events.find((e) => e.event === 'connected');
  assert.ok(connected, `connected event: ${JSON.stringify(a.events)}`);
  assert.equal(connected.data.ping_interval, INTERVAL_S);
  a.ws.close();
});

test('a client that answers pings stays connected; one that does not is closed', { timeout: 60_000 }, async () => {
  const before = await metric('natter_gateway_ping_timeouts_total');
  const good = await open('ka-good');
  const mute = await open('ka-mute', { autoPong: false });
  // one that never answers a ping but sends a native ping action every 500 ms
  const chatty = await open('ka-chatty', { autoPong: false });
  const timer = setInterval(() => chatty.ws.send(JSON.stringify({ action: 'ping' })), 500);

  await Promise.race([mute.closedP, sleep((TIMEOUT_S + 4) * 1000)]);
  assert.ok(mute.closed, 'the connection that answers no ping is closed');
  const after = (mute.closed.at - mute.openedAt) / 1000;
  assert.equal(mute.closed.code, 1001);
  assert.equal(mute.closed.reason, 'ping timeout');
  assert.ok(after >= TIMEOUT_S - 1.2 && after <= TIMEOUT_S + 2, `closed after ${after} s (timeout ${TIMEOUT_S} s)`);
  assert.ok(mute.pings.length >= 1, 'it was pinged first');

  await sleep(5000 - (Date.now() - good.openedAt));
  clearInterval(timer);
  assert.equal(good.closed, null, `the answering client stays connected (${JSON.stringify(good.closed)})`);
  assert.equal(chatty.closed, null, `a client that keeps sending stays connected (${JSON.stringify(chatty.closed)})`);
  assert.equal(good.ws.readyState, WebSocket.OPEN);
  // pinged about once per interval (after its pong, the next one is due an interval later)
  assert.ok(good.pings.length >= 2 && good.pings.length <= 7, `pings in 5 s: ${good.pings.length}`);
  // the pong traffic did not disturb the protocol: a native ping action still works
  good.ws.send(JSON.stringify({ action: 'ping', ref: 7 }));
  await sleep(300);
  assert.ok(good.events.some((e) => e.ref === 7), `native ping answered: ${JSON.stringify(good.events.slice(-3))}`);
  assert.equal(await metric('natter_gateway_ping_timeouts_total'), (before ?? 0) + 1);
  good.ws.close();
  chatty.ws.close();
});
