// fanout: one room with S subscribers, 10 of which send; the publish rate is stepped up
// until delivery saturates, then one run at half of it gives the latency. Cost is
// deliveries per CPU-second of all the system's server processes.
import { failures, say, ms, pidArgs, runBench, ratio, syscallsPerDelivery, gatewayWrites, framesPerWrite } from '../lib.mjs';

async function fanoutOne(sys, spec, run) {
  const { subs, rates, secs, warmup } = spec;
  const senders = Math.min(10, subs);
  const steps = [];
  const step = async (rate, tag) => {
    const pids = pidArgs([...sys.front(), ...sys.backend()]);
    const w0 = await gatewayWrites(sys);
    const r = await runBench([...sys.benchArgs, '--url', sys.urls.join(','), '--conns', String(subs), '--rooms', '1',
      '--senders', String(senders), '--rate', String(rate), '--duration', String(secs), '--warmup', String(warmup), '--drain', '1',
      '--room-prefix', `f${run}${tag}-`, '--source-base', '127.9.0.1', ...pids], { limitS: 120 + subs / 100 }).done;
    const w1 = await gatewayWrites(sys);
    // frames per send(): the whole step (connects, warm-up, window, drain); 1 = one system call per delivery
    const fpw = framesPerWrite(w0, w1);
    const expected = (r.sent || 0) * (r.conns_ready || 0);
    const s = { rate, delivery_rate: r.delivery_rate || 0, delivered_ratio: expected ? +(r.deliveries / expected).toFixed(3) : 0,
      deliveries_per_server_cpu_s: Math.round(r.deliveries_per_server_cpu_s || 0), server_cpu_s: r.server_cpu_s,
      p50_ms: r.latency ? ms(r.latency.p50_us) : null, p99_ms: r.latency ? ms(r.latency.p99_us) : null,
      send_skipped: r.send_skipped, conns_ready: r.conns_ready, bench_cpu_s: r.bench_cpu_s,
      frames_per_write: fpw, syscalls_per_delivery: syscallsPerDelivery(r), raw: { ...r, frames_per_write: fpw } };
    say(`  fanout ${sys.system} subs=${subs} rate=${rate}/s: ${Math.round(s.delivery_rate)} deliveries/s, ratio ${s.delivered_ratio}, ` +
      `${s.deliveries_per_server_cpu_s} per server CPU-s, p99 ${s.p99_ms} ms, ${s.syscalls_per_delivery ?? '-'} syscalls per delivery` +
      (fpw ? `, ${fpw} frames per send` : ''));
    if (!r.deliveries) failures.push(`fanout ${sys.system} subs=${subs} rate=${rate}: zero deliveries (${r.first_error || r.error || 'no error reported'})`);
    return s;
  };
  // best: the highest delivery rate of a step that delivered at least 90 % of what
  // was sent (a step that falls behind or drops slow consumers does not count)
  let best = null;
  for (const rate of rates) {
    const s = await step(rate, `s${steps.length}`);
    steps.push(s);
    const saturated = best && (s.delivery_rate < best.delivery_rate * 1.1 || s.delivered_ratio < 0.8);
    if (!best || (s.delivered_ratio >= 0.9 && s.delivery_rate > best.delivery_rate)) best = s;
    if (saturated) break;
  }
  const halfRate = Math.max(1, Math.round(best.delivery_rate / Math.max(1, best.conns_ready) / 2));
  const half = await step(halfRate, 'half');
  const row = {
    system: sys.system, subscribers: subs, senders, saturated: steps.length < rates.length,
    max_delivery_rate: Math.round(best.delivery_rate), at_msg_rate: best.rate,
    deliveries_per_server_cpu_s: best.deliveries_per_server_cpu_s,
    half_rate: halfRate, half_delivery_rate: Math.round(half.delivery_rate), p50_ms_at_half: half.p50_ms, p99_ms_at_half: half.p99_ms,
    p999_ms_at_half: half.raw.latency ? ms(half.raw.latency.p999_us) : null,
    bench_cpu_pct_at_max: best.raw.window_s ? Math.round(100 * best.bench_cpu_s / best.raw.window_s) : null,
    frames_per_write_at_max: best.frames_per_write, frames_per_write_at_half: half.frames_per_write,
    syscalls_per_delivery_at_max: best.syscalls_per_delivery, syscalls_per_delivery_at_half: half.syscalls_per_delivery,
  };
  return { row, raw: [...steps, half].map((s) => ({ ...s.raw, step_rate: s.rate })) };
}

export default {
  name: 'fanout',
  order: 2,
  // rates: messages/s per step (stepping stops at saturation)
  sizes: {
    smoke: [{ subs: 50, rates: [20, 50], secs: 1.5, warmup: 0.5 }],
    medium: [{ subs: 1000, rates: [20, 40, 80, 160, 320, 640, 1280, 2560, 5120], secs: 4, warmup: 1 }],
    full: [
      { subs: 1000, rates: [20, 40, 80, 160, 320, 640, 1280, 2560, 5120], secs: 5, warmup: 1 },
      { subs: 10000, rates: [2, 4, 8, 16, 32, 64, 128, 256, 512], secs: 5, warmup: 1 },
    ],
  },
  conns: (specs) => Math.max(...specs.map((s) => s.subs)),
  async run(sys, specs, n) {
    const rows = [], raw = [];
    for (const spec of specs) {
      say(`fanout ${sys.system}: ${spec.subs} subscribers`);
      const r = await fanoutOne(sys, spec, `${n}x${spec.subs}`);
      rows.push(r.row);
      raw.push({ subs: spec.subs, runs: r.raw });
    }
    return { rows, raw };
  },
  match: (natter, peer) => natter.subscribers === peer.subscribers,
  cols: [['system', (r) => r.system], ['subs', (r) => r.subscribers], ['max deliveries/s', (r) => r.max_delivery_rate],
    ['at msgs/s', (r) => r.at_msg_rate], ['saturated', (r) => r.saturated], ['deliveries per server CPU-s', (r) => r.deliveries_per_server_cpu_s],
    ['p50 ms @50%', (r) => r.p50_ms_at_half], ['p99 ms @50%', (r) => r.p99_ms_at_half], ['bench CPU % @max', (r) => r.bench_cpu_pct_at_max],
    ['frames per send @max / @50%', (r) => (r.frames_per_write_at_max ? `${r.frames_per_write_at_max} / ${r.frames_per_write_at_half}` : '-')],
    ['syscalls per delivery @max / @50%', (r) => (r.syscalls_per_delivery_at_max == null ? '-' : `${r.syscalls_per_delivery_at_max} / ${r.syscalls_per_delivery_at_half}`)]],
  ratios: (natter, peer) => ({
    deliveries_per_cpu_s_natter_over_peer: ratio(natter.deliveries_per_server_cpu_s, peer.deliveries_per_server_cpu_s),
    p99_at_half_natter_over_peer: ratio(natter.p99_ms_at_half, peer.p99_ms_at_half),
    syscalls_per_delivery_natter_over_peer: ratio(natter.syscalls_per_delivery_at_max, peer.syscalls_per_delivery_at_max),
  }),
};
