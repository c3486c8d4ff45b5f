// chaos.mjs (`make chaos`): the fault campaign of docs/reliability.md. Steady traffic
// into one room of a real cluster (two gateways, two persisters, router, nats-server,
// redis-server, PostgreSQL on loopback): two senders and two receivers spread over both
// gateways, every send with a client_msg_id, unacked sends resent every 5 s and after a
// reconnect, receivers that reconnect only when their gateway goes (with since_seq).
// Meanwhile the faults below are injected in turn, CHAOS_ROUNDS times each. At the end
// the sends still unacked are resent until acked (or CHAOS_SETTLE_S passes), and the
// outcome is checked against PostgreSQL and against what each receiver got. Prints one
// table (a row per fault window) and exits 1 when a message was lost, duplicated or left
// without its ack.
//
//   CHAOS_ROUNDS=3            rounds of every fault
//   CHAOS_FAULTS=gw1,nats     only these faults (default: all, in the order of FAULTS)
//   CHAOS_RATE=80             messages per second, over both senders
//   CHAOS_AFTER_S=10          traffic after each fault is over, before the next
//   CHAOS_SETTLE_S=90         at most this long for the last resends to be acked
//   CHAOS_JSON=file           also write the table as JSON
//   NATTER_BIN_DIR=build      the binaries under test
import fs from 'node:fs';
import { Cluster, sleep, waitUntil, uniqueRoom } from '../integration/lib/cluster.mjs';

const env = process.env;
const ROUNDS = Number(env.CHAOS_ROUNDS ?? 3);
const RATE = Number(env.CHAOS_RATE ?? 80);
const AFTER_MS = Number(env.CHAOS_AFTER_S ?? 10) * 1000;
const SETTLE_MS = Number(env.CHAOS_SETTLE_S ?? 90) * 1000;
const RESEND_MS = 5000;

const cluster = new Cluster({ name: 'chaos', gateways: 2, persisters: 2 });

/* kill -9 and start again. A killed postmaster's backends take a moment to notice and
 * exit, and until then a new postmaster refuses to start (its shared memory is in use):
 * start again until one stays up. */
async function restartServer(name, ready) {
  const p = cluster.procs[name];
  await p.stop('SIGKILL', 'killed');
  for (let attempt = 1; ; attempt++) {
    p.start();
    await sleep(500);
    if (p.running) break;
    if (attempt === 40) throw new Error(`${name} does not start again after kill -9`);
  }
  await cluster.waitReady(name, ready);
}

const pgReady = async () => { await cluster.query('SELECT 1'); return true; };
const redisReady = async () => (await cluster.redis('PING')) === 'PONG';

/* Each fault: what it does, from start to the moment the component is started again. */
const FAULTS = {
  gw1: () => cluster.restartProcess('gw1', { kill: true }),
  gw2: () => cluster.restartProcess('gw2', { kill: true }),
  router: () => cluster.restartProcess('router', { kill: true }),
  persister: () => cluster.restartProcess('persister', { kill: true }),          // the other takes over
  persisters: async () => {                                                       // both down at once
    await Promise.all(cluster.persisterNames.map((n) => cluster.killProcess(n)));
    await sleep(3000);
    await Promise.all(cluster.persisterNames.map((n) => cluster.startProcess(n)));
  },
  'persister-stop': async () => {                                                 // SIGSTOP for 20 s
    const pid = cluster.procs.persister.child.pid;
    process.kill(pid, 'SIGSTOP');
    await sleep(20_000);
    process.kill(pid, 'SIGCONT');
  },
  nats: () => cluster.restartNats({ kill: true }),
  'nats-down': async () => {                                                      // gone for 30 s
    await cluster.procs.nats.stop('SIGKILL', 'stopped');
    await sleep(30_000);
    cluster.procs.nats.start();
    await cluster.waitReady('nats', () => cluster.natsHealthy());
  },
  redis: () => restartServer('redis', redisReady),
  postgres: () => restartServer('postgres', pgReady),
};

const chosen = env.CHAOS_FAULTS ? env.CHAOS_FAULTS.split(',').map((s) => s.trim()) : Object.keys(FAULTS);
for (const f of chosen) if (!FAULTS[f]) throw new Error(`CHAOS_FAULTS: no fault '${f}' (have ${Object.keys(FAULTS).join(', ')})`);

const room = uniqueRoom('chaos');
const channel = `room.${room}`;
const windows = [{ fault: 'warm-up', round: 0, startedAt: Date.now(), recoverMs: null }];
const sends = new Map();        // cmid -> {sender, text, window, ackSeq, acks, errors, firstAt}
const errorsByCode = {};
let stopping = false;

/* Keeps one connection of `user` open on its gateway, or the other one while its own is
 * down; `onOpen(client, reconnected)` runs on every new connection. */
function keepConnected(user, gw, onOpen) {
  const state = { client: null, reconnects: 0 };
  (async () => {
    let first = true;
    while (!stopping) {
      let c = null;
      for (const g of [gw, 1 - gw]) {
        try { c = await cluster.client(g, user); break; } catch { /* that gateway is down */ }
      }
      if (!c) { await sleep(500); continue; }
      try {
        await onOpen(c, !first);
        state.client = c;
        if (!first) state.reconnects++;
        first = false;
        await c.closed;
      } catch { c.terminate(); }
      state.client = null;
      if (!stopping) await sleep(200);
    }
  })();
  return state;
}

function sendOnce(client, s, cmid) {
  client.request('send_message', channel, { message: s.text, client_msg_id: cmid }, { timeoutMs: 60_000 })
    .then((ev) => {
      if (ev.event === 'ack') {
        s.acks.push({ seq: ev.data.seq, at: Date.now() });
        s.ackSeq ??= ev.data.seq;
      } else {
        const code = ev.data?.code ?? 'unknown';
        errorsByCode[code] = (errorsByCode[code] ?? 0) + 1;
      }
    }, () => { /* closed or timed out: resent later */ });
}

function sender(name, gw) {
  const user = `${room}-${name}`;
  const st = keepConnected(user, gw, async (c, reconnected) => {
    await c.subscribe(channel);
    if (reconnected) resendUnacked(c, name);
  });
  st.name = name;
  st.n = 0;
  return st;
}

function resendUnacked(client, name) {
  for (const [cmid, s] of sends) if (s.sender === name && !s.acks.length) sendOnce(client, s, cmid);
}

/* A receiver as the protocol asks a client to be: a reconnect subscribes with since_seq,
 * and a `resync` (a gap its gateway would not fill) is read back with history. */
function receiver(name, gw) {
  const got = new Map();      // seq -> times delivered (live or replayed)
  const read = new Set();     // seqs read back with history after a resync
  let lastSeq = 0;
  const st = keepConnected(`${room}-${name}`, gw, async (c, reconnected) => {
    c.ws.on('message', (data) => {
      let ev;
      try { ev = JSON.parse(data.toString()); } catch { return; }
      if (ev.event === 'resync' && ev.data?.room_id === room) {
        st.resyncs++;
        readBack(c, read, ev.data.after_seq, ev.data.before_seq).catch(() => { st.readFailures++; });
        return;
      }
      if (ev.event !== 'message' || ev.data?.room_id !== room) return;
      got.set(ev.data.seq, (got.get(ev.data.seq) ?? 0) + 1);
      lastSeq = Math.max(lastSeq, ev.data.seq);
    });
    await c.subscribe(channel, reconnected ? { since_seq: lastSeq } : {});
  });
  st.name = name;
  st.got = got;
  st.read = read;
  st.resyncs = 0;
  st.readFailures = 0;
  return st;
}

/* The messages after after_seq and before before_seq (null: up to what is stored now). */
async function readBack(c, read, after, before) {
  for (;;) {
    const page = await c.ack('history', channel, { after_seq: after, limit: 100 });
    for (const m of page.messages) {
      if (before !== null && m.seq >= before) return;
      read.add(m.seq);
      after = m.seq;
    }
    if (!page.has_more || !page.messages.length) return;
  }
}

async function main() {
  await cluster.start();
  process.stderr.write(`chaos: cluster up in ${cluster.startMs} ms; room ${room}; ${RATE} msgs/s; ` +
    `faults ${chosen.join(', ')} x ${ROUNDS}\n`);
  const receivers = [receiver('recv1', 0), receiver('recv2', 1)];
  const senders = [sender('send1', 0), sender('send2', 1)];
  await waitUntil(() => [...senders, ...receivers].every((s) => s.client), { what: 'clients connected' });

  const tick = setInterval(() => {
    for (const s of senders) {
      if (!s.client) continue;
      const cmid = `${s.name}-${++s.n}`;
      const rec = { sender: s.name, text: `${s.name} ${s.n}`, window: windows.length - 1, acks: [], firstAt: Date.now() };
      sends.set(cmid, rec);
      sendOnce(s.client, rec, cmid);
    }
  }, 2000 / RATE);
  const resend = setInterval(() => { for (const s of senders) if (s.client) resendUnacked(s.client, s.name); }, RESEND_MS);

  await sleep(AFTER_MS);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const fault of chosen) {
      const w = { fault, round, startedAt: Date.now(), recoverMs: null };
      windows.push(w);
      process.stderr.write(`chaos: round ${round}: ${fault}\n`);
      await FAULTS[fault]();
      const endedAt = Date.now();
      await waitUntil(() => cluster.allReady(), { timeoutMs: 120_000, what: `the cluster ready after ${fault}` });
      /* recovered: the first ack, after the component is back, of a message sent after it */
      await waitUntil(() => [...sends.values()].some((s) => s.firstAt >= endedAt && s.acks.length), {
        timeoutMs: 120_000, intervalMs: 50, what: `an ack after ${fault}` }).catch(() => {});
      const first = Math.min(...[...sends.values()].filter((s) => s.firstAt >= endedAt && s.acks.length).map((s) => s.acks[0].at));
      w.recoverMs = Number.isFinite(first) ? first - w.startedAt : null;
      await sleep(AFTER_MS);
    }
  }

  clearInterval(tick);
  process.stderr.write('chaos: traffic stopped; resending what is unacked\n');
  const settleEnd = Date.now() + SETTLE_MS;
  while (Date.now() < settleEnd && [...sends.values()].some((s) => !s.acks.length)) await sleep(500);
  clearInterval(resend);
  await sleep(5000);           // the last deliveries
  stopping = true;

  const rows = await cluster.query('SELECT client_msg_id, seq FROM messages WHERE room = $1', [room]);
  const stored = new Map(rows.map((r) => [r.client_msg_id, Number(r.seq)]));
  const table = windows.map((w) => ({ fault: w.fault, round: w.round, sent: 0, acked: 0, stored: 0,
    ackedMissing: 0, storedUnacked: 0, wrongAck: 0, missing: receivers.map(() => 0), duplicates: 0,
    recoverMs: w.recoverMs }));
  for (const [cmid, s] of sends) {
    const row = table[s.window];
    const seq = stored.get(cmid);
    row.sent++;
    if (s.acks.length) row.acked++;
    if (seq !== undefined) row.stored++;
    if (s.acks.length && seq === undefined) row.ackedMissing++;
    if (!s.acks.length && seq !== undefined) row.storedUnacked++;
    if (seq !== undefined && s.acks.some((a) => a.seq !== seq)) row.wrongAck++;
    if (seq === undefined) continue;
    receivers.forEach((r, i) => { if (!r.got.has(seq) && !r.read.has(seq)) row.missing[i]++; });
    if (receivers.some((r) => (r.got.get(seq) ?? 0) > 1)) row.duplicates++;
  }
  print(table, receivers);
  if (env.CHAOS_JSON) fs.writeFileSync(env.CHAOS_JSON, JSON.stringify({ table, errorsByCode, room }, null, 2));
  for (const r of [...senders, ...receivers]) r.client?.terminate();
  const problems = await cluster.teardown();
  for (const p of problems) process.stderr.write(`chaos: ${p}\n`);
  const bad = table.some((r) => r.ackedMissing || r.storedUnacked || r.wrongAck || r.duplicates ||
    r.missing.some(Boolean) || r.sent !== r.acked) || receivers.some((r) => r.readFailures);
  return bad || problems.length ? 1 : 0;
}

function print(table, receivers) {
  const head = ['fault', 'round', 'sent', 'acked', 'stored', 'acked-but-missing', 'stored-but-unacked',
    'wrong ack', ...receivers.map((r) => `missing at ${r.name} (${r.reconnects} reconnects, ${r.resyncs} resyncs)`),
    'duplicates delivered', 'time to recover (ms)'];
  const lines = table.map((r) => [r.fault, r.round, r.sent, r.acked, r.stored, r.ackedMissing, r.storedUnacked,
    r.wrongAck, ...r.missing, r.duplicates, r.recoverMs ?? '-']);
  const sum = (i) => lines.reduce((a, l) => a + (Number(l[i]) || 0), 0);
  lines.push(['all', '', ...head.slice(2, -1).map((_, k) => sum(k + 2)), '']);
  console.log(`| ${head.join(' | ')} |`);
  console.log(`|${head.map(() => '---').join('|')}|`);
  for (const l of lines) console.log(`| ${l.join(' | ')} |`);
  console.log(`\nerror replies by code: ${JSON.stringify(errorsByCode)}`);
}

main().then((code) => process.exit(code), async (e) => {
  process.stderr.write(`chaos: ${e.stack || e}\n`);
  await cluster.teardown({ failed: true }).catch(() => {});
  process.exit(2);
});
