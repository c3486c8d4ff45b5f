// persist (natter only): the persistence ceiling. Many one-member rooms, every member
// sends; the offered rate is stepped up and each step reports the acks/s (an ack leaves
// the persister only after the message's transaction committed), ack p99 and server CPU.
// Stepping stops when acks/s grows by less than 10 % or falls under 90 % of the offered
// rate. After every step the stored rows of that step's rooms are checked: each send that
// got no error is stored exactly once, with gap-free seqs per room.
import { failures, say, sleep, ms, pidArgs, runBenchAnalyzed, dumpState } from '../lib.mjs';

const pct = (cpu, secs) => (secs > 0.1 ? Math.round((100 * cpu) / secs) : null);

// PostgreSQL's view of the rooms named `prefix…`: rows, distinct (room, client_msg_id) and
// rooms whose seqs are not exactly 1..count (the primary key rules out repeated seqs, so
// min = 1 and max = count means gap-free). The prefix is ours: letters, digits and '-'.
function storedStats(sys, prefix) {
  const where = `app = 'default' AND room LIKE '${prefix}%'`;
  const [line] = sys.sql(`SELECT count(*), count(DISTINCT (room, client_msg_id)), ` +
    `(SELECT count(*) FROM (SELECT 1 FROM messages WHERE ${where} GROUP BY room HAVING max(seq) <> count(*) OR min(seq) <> 1) g) ` +
    `FROM messages WHERE ${where}`);
  const [rows, distinct, gappy] = line.split('|').map(Number);
  return { rows, duplicates: rows - distinct, rooms_with_seq_gaps: gappy };
}

/**
 * Checks that natter stored the sends of the rooms named `prefix…` exactly once. An ack
 * means committed; an error answer ("unavailable, retry with the same client_msg_id")
 * may still have been stored, and so may a send whose connection closed before its
 * answer. So: acks ≤ rows ≤ sends, and rows = sends when no send got an error; no
 * (room, client_msg_id) twice; each room's seqs exactly 1..count. It first waits until
 * the row count reaches the sends or stops moving for 3 s (the persister may still be
 * committing the tail), at most maxWaitS. r is natter-bench's JSON. Mismatches go to
 * failures; returns the check's fields for the result row.
 */
export async function checkStored(sys, prefix, r, label, { maxWaitS = 30 } = {}) {
  const sent = r.sent_total || 0, acks = r.acks_total || 0, errors = r.send_errors || 0;
  const t0 = Date.now();
  let s = storedStats(sys, prefix), last = s.rows, still = Date.now();
  while (s.rows < sent && Date.now() - t0 < maxWaitS * 1000 && Date.now() - still < 3000) {
    await sleep(250);
    s = storedStats(sys, prefix);
    if (s.rows !== last) { last = s.rows; still = Date.now(); }
  }
  const problems = [];
  if (s.rows < acks) problems.push(`${acks} acks but only ${s.rows} rows`);
  if (s.rows > sent) problems.push(`${s.rows} rows for ${sent} sends`);
  if (!errors && s.rows !== sent) problems.push(`${s.rows} rows for ${sent} sends, none refused`);
  if (s.duplicates) problems.push(`${s.duplicates} duplicate (room, client_msg_id) rows`);
  if (s.rooms_with_seq_gaps) problems.push(`${s.rooms_with_seq_gaps} rooms whose seqs are not 1..count`);
  if (problems.length) {
    failures.push(`${label}: not persisted exactly once: ${problems.join('; ')}`);
    await dumpState(sys, label.replace(/[^a-z0-9]+/gi, '-'));
  }
  return { persisted_rows: s.rows, sent_total: sent, acks_total: acks, send_errors: errors,
    stored_despite_error: Math.max(0, s.rows - (sent - errors)), duplicates: s.duplicates,
    rooms_with_seq_gaps: s.rooms_with_seq_gaps, exactly_once: problems.length ? 'NO' : 'yes',
    store_wait_s: +((Date.now() - t0) / 1000).toFixed(1) };
}

// Statements natter's store is running now, and for how long (ours excluded).
function busyStatements(sys) {
  return sys.sql(`SELECT round(extract(epoch FROM now() - query_start))::int || ' s: ' || left(query, 60) FROM pg_stat_activity ` +
    `WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()`);
}

/**
 * Waits (up to maxS) until natter's store runs no statement: work left by an earlier
 * scenario (e.g. the unread flush after chatmix's 10,000 members) holds the persister's
 * read connection, so joins time out and a step would measure that, not persistence.
 * Returns the seconds waited and what was still running if it never went idle.
 */
async function settle(sys, maxS) {
  const t0 = Date.now();
  let busy = busyStatements(sys), idleSince = busy.length ? 0 : Date.now();
  while (Date.now() - t0 < maxS * 1000 && !(idleSince && Date.now() - idleSince >= 1000)) {
    await sleep(250);
    busy = busyStatements(sys);
    if (busy.length) idleSince = 0;
    else if (!idleSince) idleSince = Date.now();
  }
  const waited = +((Date.now() - t0) / 1000).toFixed(1);
  if (waited > 2) say(`  persist: natter's store was busy for ${waited} s before the step${busy.length ? ` (still: ${busy.join('; ')})` : ''}`);
  return { settle_s: waited, still_busy: busy.length ? busy : undefined };
}

// The persister's own counters (Prometheus text from its metrics listener), to tell a
// slow commit from small batches, and its JetStream fetch's troubles: {batches,
// committed, commitMs, dropped, gaps, setups} or {} when unreachable.
export async function persisterCounters(sys) {
  try {
    const r = await fetch(`http://127.0.0.1:${sys.metrics.persister}/metrics`, { signal: AbortSignal.timeout(2000) });
    const text = await r.text();
    const get = (name) => Number((new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text) || [])[1]) || 0;
    return { batches: get('natter_persister_batches_total'), committed: get('natter_persister_messages_committed_total'),
      commitMs: get('natter_persister_commit_latency_ms_total'), dropped: get('natter_persister_nats_dropped_total'),
      gaps: get('natter_persister_pull_gaps_total'), setups: get('natter_persister_consumer_setups_total') };
  } catch { return {}; }
}

// The fetch's troubles between two persisterCounters samples (undefined when the
// metrics were unreachable): a consumer set up again mid-run is a pull request given
// up on, each worth up to 5 s of latency.
export function fetchTrouble(c0, c1) {
  const d = (k) => (c1[k] || 0) - (c0[k] || 0);
  return c1.batches === undefined ? undefined
    : { bus_dropped: d('dropped'), pull_gaps: d('gaps'), consumer_setups: d('setups') };
}

async function persistStep(sys, spec, run, rate, k) {
  const { rooms, secs, warmup, drain } = spec;
  const prefix = `p${run}s${k}-`;
  const settled = await settle(sys, spec.settleS);
  const pids = pidArgs([...sys.front(), ...sys.backend()]);
  const c0 = await persisterCounters(sys);
  // One member per room, every member sends: each message costs one store and one
  // delivery (the sender's echo), so the persistence path dominates, not the fan-out.
  const r = await runBenchAnalyzed(sys, [...sys.benchArgs, '--url', sys.urls.join(','), '--conns', String(rooms), '--rooms', String(rooms),
    '--senders', String(rooms), '--rate', String(rate), '--duration', String(secs), '--warmup', String(warmup), '--drain', String(drain),
    '--room-prefix', prefix, '--source-base', '127.12.0.1', '--ready-timeout', String(60 + rooms / 100), ...pids],
  { limitS: 120 + secs + rooms / 100 });
  const c1 = await persisterCounters(sys);
  const batches = (c1.batches || 0) - (c0.batches || 0);
  const label = `persist natter rate=${rate}`;
  if (!r.acks) failures.push(`${label}: zero acks (${r.first_error || r.error || 'no error reported'})`);
  if (r.conns_ready < rooms) failures.push(`${label}: ${r.conns_ready} of ${rooms} connections ready (${r.first_error || r.error || 'no error reported'})`);
  const byName = r.server_cpu_by_name || {};
  const step = {
    offered: rate, send_rate: Math.round(r.send_rate || 0), ack_rate: r.window_s ? Math.round(r.acks / r.window_s) : 0,
    ack_over_sent: r.sent ? +(r.acks / r.sent).toFixed(3) : 0,
    ack_p50_ms: r.ack_latency ? ms(r.ack_latency.p50_us) : null, ack_p99_ms: r.ack_latency ? ms(r.ack_latency.p99_us) : null,
    ack_p999_ms: r.ack_latency ? ms(r.ack_latency.p999_us) : null,
    server_cpu_pct: pct(r.server_cpu_s || 0, r.window_s), persister_cpu_pct: pct(byName.persister || 0, r.window_s),
    postgres_cpu_pct: pct(byName.postgres || 0, r.window_s), bench_cpu_pct: pct(r.bench_cpu_s || 0, r.window_s),
    send_skipped: r.send_skipped, conns_ready: r.conns_ready, ...settled,
    // over the whole step (warm-up, window, drain): transactions and their size and time
    batches, mean_batch: batches ? Math.round(((c1.committed || 0) - (c0.committed || 0)) / batches) : null,
    mean_commit_ms: batches ? Math.round(((c1.commitMs || 0) - (c0.commitMs || 0)) / batches) : null,
    fetch: fetchTrouble(c0, c1),
    disk_sync: r.disk_sync,   // the disk's fdatasync latency over the step (startSyncProbe)
  };
  // Sustained: the window's acks kept up with its sends, i.e. no ack backlog built up.
  step.sustained = step.ack_over_sent >= 0.95 && !r.send_skipped && !r.send_errors;
  Object.assign(step, await checkStored(sys, prefix, r, label, { maxWaitS: spec.maxWaitS }));
  say(`  persist rate=${rate}/s: ${step.ack_rate} acks/s (acks/sent ${step.ack_over_sent}), ack p99 ${step.ack_p99_ms} ms, ` +
    `server CPU ${step.server_cpu_pct} % (persister ${step.persister_cpu_pct} %, postgres ${step.postgres_cpu_pct} %), ` +
    `${step.persisted_rows}/${step.sent_total} rows (${step.acks_total} acked, ${step.send_errors} refused), exactly once: ${step.exactly_once}`);
  return { step, raw: { ...r, step_rate: rate, check: step } };
}

export default {
  name: 'persist',
  order: 4,
  systems: ['natter'],
  // rooms = connections = senders; rates: offered messages/s per step
  sizes: {
    smoke: { rooms: 20, rates: [200], secs: 1.5, warmup: 0.5, drain: 1, maxWaitS: 10, settleS: 10 },
    medium: { rooms: 1000, rates: [2000, 5000, 10000, 15000, 20000, 30000, 40000], secs: 5, warmup: 1, drain: 2, maxWaitS: 60, settleS: 300 },
    full: { rooms: 1000, rates: [2000, 5000, 10000, 20000, 25000, 30000, 40000, 60000], secs: 10, warmup: 2, drain: 2, maxWaitS: 120, settleS: 300 },
  },
  conns: (spec) => spec.rooms,
  async run(sys, spec, n) {
    const rows = [], raw = [];
    let best = null;
    for (const [k, rate] of spec.rates.entries()) {
      const { step, raw: r } = await persistStep(sys, spec, n, rate, k);
      rows.push({ system: sys.system, rooms: spec.rooms, ...step });
      raw.push(r);
      const flat = best && step.ack_rate < best.ack_rate * 1.1;
      if (!best || step.ack_rate > best.ack_rate) best = step;
      if (flat || step.ack_rate < 0.9 * rate) break;
    }
    const sustained = rows.filter((r) => r.sustained).sort((a, b) => b.ack_rate - a.ack_rate)[0];
    say(`persist: highest sustained ${sustained ? `${sustained.ack_rate} acks/s at ${sustained.offered}/s offered` : 'none'}; ` +
      `highest ${best.ack_rate} acks/s`);
    for (const r of rows) r.ceiling = r === sustained ? 'sustained max' : (r.ack_rate === best.ack_rate ? 'max' : '');
    return { rows, raw };
  },
  cols: [['system', (r) => r.system], ['rooms=senders', (r) => r.rooms], ['offered/s', (r) => r.offered], ['sent/s', (r) => r.send_rate],
    ['acks/s', (r) => r.ack_rate], ['acks/sent', (r) => r.ack_over_sent], ['sustained', (r) => r.sustained],
    ['ack p50 ms', (r) => r.ack_p50_ms], ['ack p99 ms', (r) => r.ack_p99_ms], ['server CPU %', (r) => r.server_cpu_pct],
    ['persister CPU %', (r) => r.persister_cpu_pct], ['postgres CPU %', (r) => r.postgres_cpu_pct], ['bench CPU %', (r) => r.bench_cpu_pct],
    ['msgs/commit', (r) => r.mean_batch], ['ms/commit', (r) => r.mean_commit_ms],
    ['rows/sent', (r) => `${r.persisted_rows}/${r.sent_total}`], ['acks total', (r) => r.acks_total], ['send errors', (r) => r.send_errors],
    ['exactly once', (r) => r.exactly_once], ['disk sync max ms', (r) => r.disk_sync?.max_ms ?? '-'], ['ceiling', (r) => r.ceiling]],
};
