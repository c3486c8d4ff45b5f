// gap_repair.test.mjs — a gateway that was cut off from nats-server while messages were
// stored (core NATS does not send them again) repairs the gap for its live receivers:
// after the reconnect on its own, and when a later message shows the gap; each message
// once, in order. A gap larger than NATTER_GAP_REPAIR_MAX is answered with `resync`
// naming what was not delivered (docs/protocol.md "Gaps and resync").
//
// gw1 reaches nats-server through a TCP proxy of this test, which can drop its
// connection and refuse new ones; gw2, the router and the persister connect directly.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { useCluster, freePorts, uniqueRoom, waitUntil, sleep } from './lib/cluster.mjs';

const [proxyPort] = await freePorts(1);
const sockets = new Set();
let cut = false;
const proxy = net.createServer((down) => {
  if (cut) { down.destroy(); return; }
  const up = net.connect(c.cluster.ports.nats, '127.0.0.1');
  for (const s of [down, up]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}); }
  down.pipe(up);
  up.pipe(down);
  down.on('close', () => up.destroy());
  up.on('close', () => down.destroy());
}).listen(proxyPort, '127.0.0.1');
after(() => { for (const s of sockets) s.destroy(); proxy.close(); });

const c = useCluster({
  env: { NATTER_LOG_LEVEL: 'info' },
  procEnv: { gw1: { NATTER_NATS_URL: `nats://127.0.0.1:${proxyPort}`, NATTER_GAP_REPAIR_MAX: '50' } },
});

/* Cuts gw1 off nats-server until heal(); resolves once gw1 says it is not ready. */
async function cutOff() {
  cut = true;
  for (const s of sockets) s.destroy();
  await waitUntil(async () => (await fetch(`http://127.0.0.1:${c.gwPort(0)}/readyz`)).status !== 200,
    { timeoutMs: 15_000, what: 'gw1 to notice it lost nats-server' });
}

async function heal() {
  cut = false;
  await waitUntil(() => c.allReady(), { timeoutMs: 30_000, what: 'gw1 reconnected' });
}

async function sendAll(client, ch, texts) {
  const seqs = [];
  for (const t of texts) seqs.push((await client.ack('send_message', ch, { message: t, client_msg_id: t })).seq);
  return seqs;
}

const seqsOf = (client, room) => client.messages(room).map((e) => e.data.seq);

test('a gap while gw1 was away from nats-server is filled after the reconnect, and when a later message shows it',
  { timeout: 120_000 }, async () => {
    const room = uniqueRoom('gap');
    const ch = `room.${room}`;
    const alice = await c.client(1, `${room}_alice`);            // gw2: always connected
    const bob = await c.client(0, `${room}_bob`);                // gw1: behind the proxy
    await alice.subscribe(ch);
    await bob.subscribe(ch);
    await sendAll(alice, ch, ['g1']);
    await waitUntil(() => seqsOf(bob, room).length === 1, { what: 'bob got g1' });

    // 1. missed while away, nothing after: the reconnect repairs it
    await cutOff();
    assert.deepEqual(await sendAll(alice, ch, ['g2', 'g3', 'g4', 'g5', 'g6']), [2, 3, 4, 5, 6]);
    await sleep(300);
    assert.deepEqual(seqsOf(bob, room), [1], 'bob cannot have them yet: his gateway is cut off');
    await heal();
    await waitUntil(() => seqsOf(bob, room).length >= 6, { timeoutMs: 20_000, what: 'bob got g2..g6 after the reconnect' });
    assert.deepEqual(seqsOf(bob, room), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(bob.messages(room).map((e) => e.data.message), ['g1', 'g2', 'g3', 'g4', 'g5', 'g6']);

    // 2. missed while away, then a live message: the gap before it is filled first
    await cutOff();
    await sendAll(alice, ch, ['g7', 'g8']);
    await heal();
    await sendAll(alice, ch, ['g9']);
    await waitUntil(() => seqsOf(bob, room).length >= 9, { timeoutMs: 20_000, what: 'bob got g7..g9' });
    await sleep(500);                                            // nothing more, nothing twice
    assert.deepEqual(seqsOf(bob, room), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(bob.all((e) => e.event === 'resync').length, 0);
    assert.ok(await c.metric('gw1', 'natter_gateway_gap_repaired_total') >= 7);
    await Promise.all([alice.close(), bob.close()]);
  });

test('a gap larger than NATTER_GAP_REPAIR_MAX is answered with resync, then live delivery goes on',
  { timeout: 120_000 }, async () => {
    const room = uniqueRoom('gapbig');
    const ch = `room.${room}`;
    const alice = await c.client(1, `${room}_alice`);
    const bob = await c.client(0, `${room}_bob`);
    await alice.subscribe(ch);
    await bob.subscribe(ch);
    await sendAll(alice, ch, ['b0']);
    await waitUntil(() => seqsOf(bob, room).length === 1, { what: 'bob got b0' });

    await cutOff();
    await sendAll(alice, ch, Array.from({ length: 60 }, (_, i) => `b${i + 1}`));   // 60 > 50
    await heal();
    const live = (await sendAll(alice, ch, ['after']))[0];
    assert.equal(live, 62);
    const rs = await bob.next((e) => e.event === 'resync', 20_000);
    assert.equal(rs.channel, ch);
    assert.equal(rs.data.room_id, room);
    await waitUntil(() => seqsOf(bob, room).includes(62), { timeoutMs: 20_000, what: 'bob got the live message' });
    await sleep(500);
    const seqs = seqsOf(bob, room);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), 'in order, each once');
    // Either the reconnect found the gap (up to 50 fetched, then resync) or the live
    // message did first (resync at once): what resync names as not delivered is exactly
    // what bob lacks, and everything else he has.
    const { after_seq: from, before_seq: to } = rs.data;
    assert.ok(from === 1 || from === 51, `after_seq ${from}`);
    assert.ok(to === null || to === 62, `before_seq ${to}`);
    for (let s = 1; s <= 62; s++) {
      const named = s > from && s < (to ?? 62);
      assert.equal(seqs.includes(s), !named, `seq ${s}: ${named ? 'named by resync, yet delivered' : 'lost'}`);
    }
    // the client recovers the range with history
    const page = await bob.ack('history', ch, { after_seq: from, limit: 100 });
    assert.equal(page.messages.length, 62 - from);
    await Promise.all([alice.close(), bob.close()]);
  });

test('a send whose ack was lost with its message event (gw1 away) is acked by the repair',
  { timeout: 120_000 }, async () => {
    const room = uniqueRoom('gapack');
    const ch = `room.${room}`;
    const bob = await c.client(0, `${room}_bob`);                // gw1: behind the proxy
    await bob.subscribe(ch);
    await bob.ack('send_message', ch, { message: 'a0', client_msg_id: 'a0' });
    // The persister waits while bob's send reaches JetStream; then gw1 is cut off, and
    // the message event that carries the ack is published while it is away.
    const pid = c.procs.persister.child.pid;
    process.kill(pid, 'SIGSTOP');
    let reply;
    try {
      reply = bob.request('send_message', ch, { message: 'a1', client_msg_id: 'a1' }, { timeoutMs: 60_000 });
      await sleep(500);                                          // published, PubAck back
      await cutOff();
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await waitUntil(async () => (await c.query('SELECT 1 FROM messages WHERE room = $1 AND seq = 2', [room])).length === 1,
      { timeoutMs: 20_000, what: 'a1 committed' });
    await sleep(300);                                            // its event went out, gw1 away
    await heal();
    const ev = await reply;
    assert.equal(ev.event, 'ack', JSON.stringify(ev));
    assert.equal(ev.data.seq, 2);
    assert.equal(ev.data.client_msg_id, 'a1');
    await waitUntil(() => seqsOf(bob, room).length === 2, { what: 'bob got a1 too' });
    assert.deepEqual(seqsOf(bob, room), [1, 2]);
    // and a resend of it, as a client whose ack was lost sends it, gets the same ack
    const again = await bob.ack('send_message', ch, { message: 'a1', client_msg_id: 'a1' });
    assert.deepEqual(again, ev.data);
    await sleep(300);
    assert.deepEqual(seqsOf(bob, room), [1, 2]);
    await bob.close();
  });
