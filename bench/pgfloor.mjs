// pgfloor.mjs: what PostgreSQL alone costs per persisted message on this machine.
// Starts natter's store exactly as the benchmarks do (same settings, fsync on, schema
// migrated by natter-persister, which is then stopped), seeds 1,000 rooms × 10 members
// and drives the persister's own per-batch work with pgbench: one transaction =
// the partitions update + one natter_post_batch call of B new messages (distinct rooms,
// the sender a member). Each client writes its own quarter of the rooms, as partitions
// on separate write connections do. Reports calls/s, messages/s and the PostgreSQL CPU
// (all its processes, /proc) per message and per call, for B in 1, 8, 64, 500 and 1 or
// 4 clients, and fits CPU per call = fixed + B × per message.
//
//   node bench/pgfloor.mjs            (BENCH_BIN_DIR as for run.mjs; bench/run.sh builds)
//   BENCH_PGFLOOR_SECS=8              seconds per step
//   BENCH_PGFLOOR_SQL="…"             SQL run after the seeding (what-if: an index
//                                     dropped, a setting changed), before the warm-up
// Writes bench/results/<date>-pgfloor.json (BENCH_OUT_DIR to change) and prints a table.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLK, DATE, PGBIN, ROOT, childrenOf, logs, machine, procSample, say, sleep, startNatter, table, tmp } from './lib.mjs';

const SECS = Number(process.env.BENCH_PGFLOOR_SECS || 8);
const BATCHES = [1, 8, 64, 500];
const CLIENTS = [1, 4];
const ROOMS = 1000, MEMBERS = 10;
const OUT = path.resolve(ROOT, process.env.BENCH_OUT_DIR || 'bench/results');

// Room of element i of a call by client c (pgbench's client_id): each client its own
// quarter, so concurrent calls never wait for each other's room locks.
function script(batch, clients) {
  const span = ROOMS / clients;
  const room = `'r' || (:client_id * ${span} + (:r + i * 7) % ${span} + 1)`;
  const arr = (expr) => `(SELECT array_agg(${expr}) FROM generate_series(1, ${batch}) i)`;
  const fill = (v) => `array_fill(${v}::text, ARRAY[${batch}])`;
  return [
    `\\set r random(1, ${ROOMS})`,
    'BEGIN;',
    'UPDATE partitions SET stream_seq = greatest(stream_seq, :r::bigint), batch_start = :r WHERE p = :client_id;',
    `SELECT count(*) FROM natter_post_batch(${fill("'default'")}, ${arr(room)}, ${arr(`${room} || '_u1'`)},`,
    `  ${fill("'Sender'")}, ${arr('md5(random()::text)')}, ${fill("'text'")},`,
    `  ${fill("'a chat message of about sixty characters, like the benchmarks send'")}, ${fill('NULL')});`,
    'COMMIT;',
  ].join('\n') + '\n';
}

// CPU-seconds of PostgreSQL: the live processes, plus what the postmaster's exited
// children used (cutime + cstime: pgbench's backends end with each step).
// PostgreSQL's CPU once the sessions of the last step are gone: a backend ends a
// little after its pgbench client, and its CPU moves into the postmaster's cutime
// only when reaped. Read until two reads 100 ms apart agree (at most 5 s).
async function settledCpu(pid) {
  let last = pgCpu(pid);
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    const now = pgCpu(pid);
    if (now === last) return now;
    last = now;
  }
  return last;
}

function pgCpu(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const reaped = (Number(f[13]) + Number(f[14])) / CLK;
  return reaped + [pid, ...childrenOf(pid)].reduce((sum, p) => sum + procSample(p).cpu, 0);
}

async function main() {
  const sys = await startNatter(1);
  await sys.stopApp();
  const { dir, port, env, ids, pid } = sys.pg;
  const conn = ['-h', dir, '-p', String(port), '-U', 'postgres'];   // pgbench takes the database last
  const sql = (q) => execFileSync(path.join(PGBIN, 'psql'), [...conn, '-d', 'natter', '-XAtqc', q], { env, ...ids }).toString();
  sql(`INSERT INTO rooms (app, room) SELECT 'default', 'r' || i FROM generate_series(1, ${ROOMS}) i;
       INSERT INTO members (app, room, user_id) SELECT 'default', 'r' || i, 'r' || i || '_u' || j
         FROM generate_series(1, ${ROOMS}) i, generate_series(1, ${MEMBERS}) j;
       INSERT INTO partitions (p, stream_seq) SELECT p, 0 FROM generate_series(0, 3) p ON CONFLICT DO NOTHING;
       ANALYZE`);
  if (process.env.BENCH_PGFLOOR_SQL) {
    say(`pgfloor: running BENCH_PGFLOOR_SQL: ${process.env.BENCH_PGFLOOR_SQL}`);
    sql(process.env.BENCH_PGFLOOR_SQL);
  }
  // Warm-up, not measured: caches, plans, and the autovacuum the seeding set off.
  const warm = path.join(tmp, 'pgfloor-warm.sql');
  fs.writeFileSync(warm, script(8, 1));
  fs.chmodSync(warm, 0o644);
  spawnSync(path.join(PGBIN, 'pgbench'), [...conn, '-n', '-M', 'prepared', '-T', String(Math.min(SECS, 3)),
    '-f', warm, 'natter'], { env, ...ids, encoding: 'utf8' });
  sql('VACUUM ANALYZE');
  const rows = [];
  for (const clients of CLIENTS) {
    for (const batch of BATCHES) {
      const file = path.join(tmp, `pgfloor-${batch}-${clients}.sql`);
      fs.writeFileSync(file, script(batch, clients));
      fs.chmodSync(file, 0o644);
      const cpu0 = await settledCpu(pid);
      const r = spawnSync(path.join(PGBIN, 'pgbench'), [...conn, '-n', '-M', 'prepared', '-c', String(clients),
        '-j', String(clients), '-T', String(SECS), '-f', file, 'natter'], { env, ...ids, encoding: 'utf8' });
      const cpu = await settledCpu(pid) - cpu0;
      fs.appendFileSync(path.join(logs, 'pgbench.log'), `${file}\n${r.stdout}${r.stderr}\n`);
      const tps = Number(/tps = ([\d.]+) \(without/.exec(r.stdout)?.[1]);
      if (r.status !== 0 || !tps) throw new Error(`pgbench failed for batch ${batch}: ${r.stderr || r.stdout}`);
      const calls = tps * SECS;
      const row = { batch, clients, calls_per_s: Math.round(tps), msgs_per_s: Math.round(tps * batch),
        ms_per_call: +(1000 * clients / tps).toFixed(3), pg_cpu_pct: Math.round(100 * cpu / SECS),
        pg_cpu_us_per_call: +(1e6 * cpu / calls).toFixed(1), pg_cpu_us_per_msg: +(1e6 * cpu / calls / batch).toFixed(1) };
      say(`pgfloor: ${JSON.stringify(row)}`);
      rows.push(row);
    }
  }
  // Least squares over the one-client steps: CPU per call = fixed + batch × per message.
  const one = rows.filter((r) => r.clients === 1);
  const mx = one.reduce((s, r) => s + r.batch, 0) / one.length, my = one.reduce((s, r) => s + r.pg_cpu_us_per_call, 0) / one.length;
  const slope = one.reduce((s, r) => s + (r.batch - mx) * (r.pg_cpu_us_per_call - my), 0) /
    one.reduce((s, r) => s + (r.batch - mx) ** 2, 0);
  const fit = { fixed_us_per_call: Math.round(my - slope * mx), us_per_msg: +slope.toFixed(1) };
  const cols = [['batch', (r) => r.batch], ['clients', (r) => r.clients], ['calls/s', (r) => r.calls_per_s],
    ['msgs/s', (r) => r.msgs_per_s], ['ms per call', (r) => r.ms_per_call], ['PostgreSQL CPU %', (r) => r.pg_cpu_pct],
    ['CPU µs per call', (r) => r.pg_cpu_us_per_call], ['CPU µs per message', (r) => r.pg_cpu_us_per_msg]];
  const tbl = table(rows, cols);
  console.log(`\npgfloor (${DATE}, ${SECS} s per step)\n${tbl}\nfit (1 client): CPU per call = ${fit.fixed_us_per_call} µs + ` +
    `${fit.us_per_msg} µs × batch`);
  fs.mkdirSync(OUT, { recursive: true });
  const file = path.join(OUT, `${DATE}-pgfloor.json`);
  fs.writeFileSync(file, JSON.stringify({ scenario: 'pgfloor', date: DATE, machine: machine(), secs: SECS, rows, fit,
    table_markdown: tbl }, null, 1) + '\n');
  say(`wrote ${path.relative(ROOT, file)}`);
  await sys.stop();
}

main().catch((e) => { console.error(`bench: ${e.stack || e.message}`); process.exitCode = 1; });
