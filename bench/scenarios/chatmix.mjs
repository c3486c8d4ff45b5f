// chatmix: the everyday chat load: many small rooms, every member talks now and then.
// R rooms × M members; every connection is a sender and together they send at a fixed
// rate (medium/full: 1,000 × 10 at 5,000 msgs/s, i.e. one message per member every 2 s,
// each delivered to the room's 10 members). Reports send→delivery (and, natter only,
// send→ack) percentiles, the delivered ratio and server CPU; for natter it then checks
// that PostgreSQL holds every message exactly once with gap-free seqs per room.
//
// natter's database gets its statistics once the connections are ready
// (runBenchAnalyzed, lib.mjs): at 250 sends/s, without them, the unread flush
// scanned every room of the app per member, a fifth of a core of PostgreSQL.
import { anomalies, failures, say, ms, pidArgs, runBenchAnalyzed, ratio, syscallsPerDelivery, gatewayWrites, framesPerWrite } from '../lib.mjs';
import { checkStored, fetchTrouble, persisterCounters } from './persist.mjs';

const pct = (cpu, secs) => (secs > 0.1 ? Math.round((100 * cpu) / secs) : null);

async function chatmixRun(sys, spec, run) {
  const { rooms, members, rate, secs, warmup, drain } = spec;
  const conns = rooms * members;
  const prefix = `c${run}-`;
  const pids = pidArgs([...sys.front(), ...sys.backend()]);
  const w0 = await gatewayWrites(sys);
  const c0 = sys.metrics ? await persisterCounters(sys) : {};
  // Every connection sends (senders = conns): natter-bench round-robins the rate over them.
  const r = await runBenchAnalyzed(sys, [...sys.benchArgs, '--url', sys.urls.join(','), '--conns', String(conns), '--rooms', String(rooms),
    '--senders', String(conns), '--rate', String(rate), '--duration', String(secs), '--warmup', String(warmup), '--drain', String(drain),
    '--room-prefix', prefix, '--source-base', '127.11.0.1', '--ready-timeout', String(60 + conns / 200), ...pids],
  { limitS: 180 + secs + conns / 100 });
  const w1 = await gatewayWrites(sys);
  const c1 = sys.metrics ? await persisterCounters(sys) : {};
  const label = `chatmix ${sys.system}`;
  // Every member of the sender's room (the sender too) gets each message. Totals, not the
  // window, so that a message sent at the window's edge counts on both sides.
  const expected = (r.sent_total || 0) * members * ((r.conns_ready || 0) / conns);
  const lat = (q) => (r.latency && r.latency.count ? ms(r.latency[q]) : null);
  const ack = (q) => (r.ack_latency && r.ack_latency.count ? ms(r.ack_latency[q]) : null);
  const row = {
    system: sys.system, rooms, members, conns, conns_ready: r.conns_ready, senders: conns, offered: rate,
    send_rate: Math.round(r.send_rate || 0), delivery_rate: Math.round(r.delivery_rate || 0),
    delivered_ratio: expected ? +((r.deliveries_total || 0) / expected).toFixed(4) : 0,
    p50_ms: lat('p50_us'), p99_ms: lat('p99_us'), p999_ms: lat('p999_us'),
    ack_p50_ms: ack('p50_us'), ack_p99_ms: ack('p99_us'), ack_p999_ms: ack('p999_us'),
    server_cpu_pct: pct(r.server_cpu_s || 0, r.window_s), bench_cpu_pct: pct(r.bench_cpu_s || 0, r.window_s),
    deliveries_per_server_cpu_s: Math.round(r.deliveries_per_server_cpu_s || 0),
    syscalls_per_delivery: syscallsPerDelivery(r),
    // natter: frames per gateway send() over the whole run (connects included)
    frames_per_write: framesPerWrite(w0, w1),
    send_skipped: r.send_skipped, sent_total: r.sent_total,
    // natter: NATS messages the persister's bus dropped, holes in its pulls, consumers
    // set up again (a pull request given up on) over the run
    fetch: fetchTrouble(c0, c1),
    // the disk's fdatasync latency over the run (startSyncProbe): natter commits wait for it
    disk_sync: r.disk_sync,
    first_error: r.send_errors ? String(r.first_error || '').slice(0, 200) : undefined,
  };
  if (!r.deliveries) failures.push(`${label}: zero deliveries (${r.first_error || r.error || 'no error reported'})`);
  if (r.conns_ready < conns) failures.push(`${label}: ${r.conns_ready} of ${conns} connections ready (${r.first_error || r.error || 'no error reported'})`);
  if (sys.sql) Object.assign(row, await checkStored(sys, prefix, r, label, { maxWaitS: spec.maxWaitS }));
  // A send over a second is worth a look: the logs then hold PostgreSQL's plans of
  // every statement of 1 s or more.
  if (sys.sql && row.p99_ms > 1000) anomalies.push(`${label}: p99 ${row.p99_ms} ms (PostgreSQL's slow plans: natter-postgres.log)`);
  say(`  chatmix ${sys.system}: ${row.send_rate} msgs/s, ${row.delivery_rate} deliveries/s, ratio ${row.delivered_ratio}, ` +
    `p99 ${row.p99_ms} ms, ack p99 ${row.ack_p99_ms ?? '-'} ms, server CPU ${row.server_cpu_pct} %, ` +
    `${row.syscalls_per_delivery ?? '-'} syscalls per delivery` +
    (row.frames_per_write ? `, ${row.frames_per_write} frames per send` : '') +
    (sys.sql ? `, ${row.persisted_rows}/${row.sent_total} rows (${row.acks_total} acked, ${row.send_errors} refused), exactly once: ${row.exactly_once}` : ''));
  return { row, raw: r };
}

export default {
  name: 'chatmix',
  order: 3,
  // rate: messages/s, all senders together
  sizes: {
    smoke: { rooms: 10, members: 3, rate: 50, secs: 1.5, warmup: 0.5, drain: 1, maxWaitS: 10 },
    medium: { rooms: 1000, members: 10, rate: 5000, secs: 10, warmup: 2, drain: 2, maxWaitS: 60 },
    full: { rooms: 1000, members: 10, rate: 5000, secs: 10, warmup: 2, drain: 2, maxWaitS: 60 },
  },
  conns: (spec) => spec.rooms * spec.members,
  async run(sys, spec, n) { const r = await chatmixRun(sys, spec, n); return { rows: [r.row], raw: [r.raw] }; },
  cols: [['system', (r) => r.system], ['rooms×members', (r) => `${r.rooms}×${r.members}`], ['ready', (r) => r.conns_ready],
    ['sent/s', (r) => r.send_rate], ['deliveries/s', (r) => r.delivery_rate], ['delivered', (r) => r.delivered_ratio],
    ['p50 ms', (r) => r.p50_ms], ['p99 ms', (r) => r.p99_ms], ['p99.9 ms', (r) => r.p999_ms],
    ['ack p50 ms', (r) => r.ack_p50_ms], ['ack p99 ms', (r) => r.ack_p99_ms], ['ack p99.9 ms', (r) => r.ack_p999_ms],
    ['server CPU %', (r) => r.server_cpu_pct], ['bench CPU %', (r) => r.bench_cpu_pct],
    ['syscalls per delivery', (r) => r.syscalls_per_delivery], ['frames per send', (r) => r.frames_per_write ?? '-'],
    ['send errors', (r) => r.send_errors], ['rows/sent', (r) => (r.persisted_rows == null ? null : `${r.persisted_rows}/${r.sent_total}`)],
    ['exactly once', (r) => r.exactly_once], ['disk sync max ms', (r) => r.disk_sync?.max_ms ?? '-']],
  ratios: (natter, peer) => ({
    p99_natter_over_peer: ratio(natter.p99_ms, peer.p99_ms),
    server_cpu_natter_over_peer: ratio(natter.server_cpu_pct, peer.server_cpu_pct),
    syscalls_per_delivery_natter_over_peer: ratio(natter.syscalls_per_delivery, peer.syscalls_per_delivery),
  }),
};
