// idle: N authenticated connections, each in its own room and in one shared room; RSS
// per connection of the front processes (gateways / Node / nats-server) and CPU while
// idle. (natter announces joins and presence only in rooms up to
// NATTER_MEMBER_EVENTS_ROOM_MAX / NATTER_PRESENCE_ROOM_MAX members, else N users
// joining one room would cost N²/2 events.)
import fs from 'node:fs';
import path from 'node:path';
import { PER_PROC, tmp, live, sleep, procSample, runBench, waitFor, ratio, checkReady } from '../lib.mjs';

async function idleRun(sys, spec, run) {
  const { conns, secs } = spec;
  const nb = Math.ceil(conns / PER_PROC);
  // Handshakes in flight, all processes together: 256 (natter-bench's default for one).
  // Each natter join is a PostgreSQL transaction in the persister; 6 × 256 at once made
  // the router's 5 s request timeout expire and those connections never became ready.
  const concurrency = Math.max(16, Math.floor(256 / nb));
  const front = sys.front(), all = [...front, ...sys.backend()];
  await sleep(500);
  const rssAll0 = all.map((p) => procSample(p.pid).rssKb), rss0 = rssAll0.slice(0, front.length);
  const benches = [];
  for (let k = 0; k < nb; k++) {
    const n = Math.floor(conns / nb) + (k < conns % nb ? 1 : 0);
    const rf = path.join(tmp, `ready-${run}-${k}`);
    benches.push({ rf, ...runBench([...sys.benchArgs, '--url', sys.urls.join(','), '--conns', String(n), '--rooms', String(n), '--shared-name', `i${run}-shared`,
      '--senders', '0', '--rate', '0', '--duration', '3600', '--room-prefix', `i${run}p${k}-`,
      '--source-base', `127.${1 + k}.0.1`, '--source-count', '4096', '--connect-concurrency', String(concurrency),
      '--ready-timeout', String(60 + conns / 200)], { limitS: 300 + conns / 50, readyFile: rf }) });
  }
  await waitFor('idle connections', () => benches.every((b) => fs.existsSync(b.rf) || !live.has(b.child)), (120 + conns / 100) * 1000);
  await sleep(1000);                 // let allocations settle
  const s0 = all.map((p) => procSample(p.pid));
  const t0 = Date.now();
  await sleep(secs * 1000);
  const s1 = all.map((p) => procSample(p.pid));
  const wall = (Date.now() - t0) / 1000;
  for (const b of benches) if (live.has(b.child)) b.child.kill('SIGTERM');
  const results = await Promise.all(benches.map((b) => b.done));
  const ready = checkReady(`idle ${sys.system}`, conns, results);
  const rss1 = front.map((_, i) => s1[i].rssKb);
  const frontCpu = front.reduce((a, _, i) => a + s1[i].cpu - s0[i].cpu, 0);
  const allCpu = all.reduce((a, _, i) => a + s1[i].cpu - s0[i].cpu, 0);
  const deltaKb = rss1.reduce((a, v, i) => a + v - rss0[i], 0);
  // Every server process (natter: also nats-server, redis, PostgreSQL, router, persister).
  const deltaAllKb = all.reduce((a, _, i) => a + (s1[i].gone ? 0 : s1[i].rssKb - rssAll0[i]), 0);
  const row = {
    system: sys.system, conns, conns_ready: ready, front_procs: front.length, bench_procs: nb,
    rss_kib_per_conn: ready ? +(deltaKb / ready).toFixed(2) : null,
    rss_kib_per_conn_all_servers: ready ? +(deltaAllKb / ready).toFixed(2) : null,
    front_rss_kb_before: rss0, front_rss_kb_after: rss1,
    idle_cpu_front_pct: +(100 * frontCpu / wall).toFixed(2), idle_cpu_all_servers_pct: +(100 * allCpu / wall).toFixed(2),
    window_s: +wall.toFixed(2), pings_seen: results.reduce((a, r) => a + (r.pings || 0), 0),
  };
  return { row, raw: results };
}

export default {
  name: 'idle',
  order: 1,
  // secs: the idle window; 30 s covers natter's and Socket.IO's 25 s ping interval.
  sizes: { smoke: { conns: 50, secs: 2 }, medium: { conns: 10000, secs: 30 }, full: { conns: 100000, secs: 30 } },
  conns: (spec) => spec.conns,
  async run(sys, spec, n) { const r = await idleRun(sys, spec, n); return { rows: [r.row], raw: r.raw }; },
  cols: [['system', (r) => r.system], ['conns', (r) => r.conns], ['ready', (r) => r.conns_ready], ['front procs', (r) => r.front_procs],
    ['RSS KiB/conn', (r) => r.rss_kib_per_conn], ['all servers RSS KiB/conn', (r) => r.rss_kib_per_conn_all_servers],
    ['idle CPU front %', (r) => r.idle_cpu_front_pct], ['idle CPU all servers %', (r) => r.idle_cpu_all_servers_pct]],
  ratios: (natter, peer) => ({ rss_per_conn_natter_over_peer: ratio(natter.rss_kib_per_conn, peer.rss_kib_per_conn) }),
};
