// storm: N connections opened as fast as possible (a reconnect storm after a deploy);
// each one authenticates (natter: its own HS256 JWT, minted by natter-bench before the
// clock starts) and joins one of 100 rooms. Reports ready connections per second (ready
// connections / time to the last one ready), failures, and the CPU-seconds all the
// system's server processes spent per 1,000 connections.
import fs from 'node:fs';
import path from 'node:path';
import { PER_PROC, tmp, live, sleep, procSample, runBench, waitFor, ratio, checkReady } from '../lib.mjs';

async function stormRun(sys, spec, run) {
  const { conns, concurrency } = spec;
  const nb = Math.ceil(conns / PER_PROC);
  const front = sys.front(), all = [...front, ...sys.backend()];
  await sleep(300);
  const benches = [];
  const s0 = all.map((p) => procSample(p.pid));
  for (let k = 0; k < nb; k++) {
    const n = Math.floor(conns / nb) + (k < conns % nb ? 1 : 0);
    const rf = path.join(tmp, `storm-ready-${run}-${k}`);
    benches.push({ rf, ...runBench([...sys.benchArgs, '--url', sys.urls.join(','), '--conns', String(n), '--rooms', String(Math.min(100, n)),
      '--senders', '0', '--rate', '0', '--duration', '3600', '--room-prefix', `s${run}p${k}-`,
      '--source-base', `127.${20 + k}.0.1`, '--source-count', '4096', '--connect-concurrency', String(concurrency),
      '--ready-timeout', String(30 + conns / 200)], { limitS: 120 + conns / 100, readyFile: rf }) });
  }
  await waitFor('storm connections', () => benches.every((b) => fs.existsSync(b.rf) || !live.has(b.child)), (60 + conns / 100) * 1000);
  const s1 = all.map((p) => procSample(p.pid));
  for (const b of benches) if (live.has(b.child)) b.child.kill('SIGTERM');
  const results = await Promise.all(benches.map((b) => b.done));
  const ready = checkReady(`storm ${sys.system}`, conns, results);
  const failed = results.reduce((a, r) => a + (r.connect_failures || 0), 0);
  // Each process's clock starts after its own token minting; the storm lasts until the
  // slowest process's last connection is ready.
  const span = Math.max(0, ...results.map((r) => (r.connects_per_s ? r.conns_ready / r.connects_per_s : 0)));
  const cpu = (list) => list.reduce((a, i) => a + Math.max(0, s1[i].cpu - s0[i].cpu), 0);
  const allCpu = cpu(all.map((_, i) => i)), frontCpu = cpu(front.map((_, i) => i));
  const byName = {};
  all.forEach((p, i) => { byName[p.name] = +((byName[p.name] || 0) + Math.max(0, s1[i].cpu - s0[i].cpu)).toFixed(2); });
  const row = {
    system: sys.system, conns, conns_ready: ready, connect_failures: failed, bench_procs: nb, front_procs: front.length,
    concurrency_per_bench: concurrency,
    connects_per_s: span ? Math.round(ready / span) : 0, time_to_last_ready_s: +span.toFixed(3),
    server_cpu_s: +allCpu.toFixed(2), server_cpu_s_per_1k: ready ? +(1000 * allCpu / ready).toFixed(3) : null,
    front_cpu_s_per_1k: ready ? +(1000 * frontCpu / ready).toFixed(3) : null,
    server_cpu_by_name: byName,
    token_mint_s: +Math.max(0, ...results.map((r) => r.token_mint_s || 0)).toFixed(3),
  };
  return { row, raw: results };
}

export default {
  name: 'storm',
  order: 5,
  // concurrency: handshakes in flight per natter-bench process
  sizes: { smoke: { conns: 50, concurrency: 256 }, medium: { conns: 10000, concurrency: 256 }, full: { conns: 40000, concurrency: 256 } },
  conns: (spec) => spec.conns,
  async run(sys, spec, n) { const r = await stormRun(sys, spec, n); return { rows: [r.row], raw: r.raw }; },
  cols: [['system', (r) => r.system], ['conns', (r) => r.conns], ['ready', (r) => r.conns_ready], ['failures', (r) => r.connect_failures],
    ['bench procs', (r) => r.bench_procs], ['connects/s', (r) => r.connects_per_s], ['to last ready s', (r) => r.time_to_last_ready_s],
    ['server CPU-s per 1k', (r) => r.server_cpu_s_per_1k], ['front CPU-s per 1k', (r) => r.front_cpu_s_per_1k]],
  ratios: (natter, peer) => ({
    connects_per_s_natter_over_peer: ratio(natter.connects_per_s, peer.connects_per_s),
    server_cpu_per_conn_natter_over_peer: ratio(natter.server_cpu_s_per_1k, peer.server_cpu_s_per_1k),
  }),
};
