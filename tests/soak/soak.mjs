// soak.mjs (`make soak`; a 2-minute run in `make test`): the chat mix for a long time
// against a whole local cluster (two gateways, router, persister, nats-server,
// redis-server, PostgreSQL), sampling every process's resident memory and open file
// descriptors. Writes the samples (CSV) and, when gnuplot is there, a plot of both over
// time; fails when a natter process keeps growing, when the load generator saw errors
// or lost deliveries, or when a process died.
//
//   SOAK_S=1800            seconds of traffic (make soak: SOAK_MINUTES × 60, default 30 min)
//   SOAK_RATE=200          messages per second over all connections
//   SOAK_CONNS=400         connections (half on each gateway), SOAK_ROOMS=40 rooms
//   SOAK_SAMPLE_S=5        seconds between samples
//   SOAK_OUT=build/soak    where soak.csv and soak.png go
//   SOAK_RSS_GROWTH=0.15   a natter process whose mean RSS over the last third exceeds
//                          the middle third's by more than this fraction (and 4 MiB) fails
//   NATTER_BIN_DIR=build   the binaries under test (and bench/natter-bench)
import fs from 'node:fs';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { Cluster, BIN_DIR, ROOT, sleep } from '../integration/lib/cluster.mjs';

const env = process.env;
const SECS = Number(env.SOAK_S ?? 1800);
const RATE = Number(env.SOAK_RATE ?? 200);
const CONNS = Number(env.SOAK_CONNS ?? 400);
const ROOMS = Number(env.SOAK_ROOMS ?? 40);
const SAMPLE_MS = Number(env.SOAK_SAMPLE_S ?? 5) * 1000;
const OUT = path.resolve(ROOT, env.SOAK_OUT ?? 'build/soak');
const GROWTH = Number(env.SOAK_RSS_GROWTH ?? 0.15);
const BENCH = path.join(BIN_DIR, 'bench', 'natter-bench');

function sample(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
    return { rssKiB: rss, fds: fs.readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return { rssKiB: NaN, fds: NaN };       // not running at that moment
  }
}

function mean(xs) { return xs.reduce((a, b) => a + b, 0) / xs.length; }

async function main() {
  if (!fs.existsSync(BENCH)) throw new Error(`${BENCH} is missing: make build`);
  const cluster = new Cluster({ name: 'soak', gateways: 2 });
  await cluster.start();
  const names = ['gw1', 'gw2', 'router', 'persister', 'nats', 'redis', 'postgres'];
  const natter = new Set(['gw1', 'gw2', 'router', 'persister']);
  process.stderr.write(`soak: cluster up; ${CONNS} connections in ${ROOMS} rooms, ${RATE} msgs/s for ${SECS} s\n`);

  const urls = cluster.gatewayNames.map((g) => `127.0.0.1:${cluster.gwPort(g)}`).join(',');
  const bench = spawn(BENCH, ['--dialect', 'natter', '--secret', cluster.secret, '--url', urls,
    '--conns', String(CONNS), '--rooms', String(ROOMS), '--senders', String(CONNS), '--rate', String(RATE),
    '--duration', String(SECS), '--warmup', '5', '--drain', '3', '--room-prefix', `soak${process.pid}-`,
    '--source-base', 'none', '--ready-timeout', '120', '--no-syscalls'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', errText = '';
  bench.stdout.on('data', (d) => { out += d; });
  bench.stderr.on('data', (d) => { errText += d; });
  const done = new Promise((resolve) => bench.on('exit', (code) => resolve(code)));

  const samples = [];           // {t, [name]: {rssKiB, fds}}
  const t0 = Date.now();
  let finished = false;
  done.then(() => { finished = true; });
  while (!finished) {
    const row = { t: (Date.now() - t0) / 1000 };
    for (const n of names) row[n] = sample(cluster.procs[n].child?.pid);
    samples.push(row);
    await Promise.race([sleep(SAMPLE_MS), done]);
  }
  const code = await done;
  let result = {};
  try { result = JSON.parse(out); } catch { /* reported below */ }

  fs.mkdirSync(OUT, { recursive: true });
  const csv = [['t', ...names.flatMap((n) => [`${n}_rss_kib`, `${n}_fds`])].join(',')];
  for (const s of samples) csv.push([s.t.toFixed(1), ...names.flatMap((n) => [s[n].rssKiB, s[n].fds])].join(','));
  fs.writeFileSync(path.join(OUT, 'soak.csv'), `${csv.join('\n')}\n`);
  plot(names);

  const problems = [];
  if (code !== 0) problems.push(`natter-bench exited ${code}: ${errText.slice(-400)}`);
  const expected = (result.sent_total || 0) * (CONNS / ROOMS);
  const ratio = expected ? (result.deliveries_total || 0) / expected : 0;
  if (!(ratio > 0.999)) problems.push(`delivered ${result.deliveries_total} of ${Math.round(expected)} (${ratio.toFixed(4)})`);
  for (const k of ['error_events', 'send_errors', 'protocol_errors', 'disconnects', 'connect_failures']) {
    if (result[k]) problems.push(`natter-bench counted ${result[k]} ${k}`);
  }
  // Growth: the first third warms up (pools, caches, JIT of PostgreSQL's plans); the
  // last third must not sit above the middle one.
  const third = Math.floor(samples.length / 3);
  const table = [];
  for (const n of names) {
    const mid = samples.slice(third, 2 * third).map((s) => s[n]);
    const last = samples.slice(2 * third).map((s) => s[n]);
    const rssMid = mean(mid.map((x) => x.rssKiB)), rssLast = mean(last.map((x) => x.rssKiB));
    const fdMid = Math.max(...mid.map((x) => x.fds)), fdLast = Math.max(...last.map((x) => x.fds));
    table.push({ process: n, rss_mid_kib: Math.round(rssMid), rss_last_kib: Math.round(rssLast),
      rss_max_kib: Math.max(...samples.map((s) => s[n].rssKiB)), fds_mid: fdMid, fds_last: fdLast });
    if (!natter.has(n) || third < 2) continue;
    if (!(rssLast <= rssMid * (1 + GROWTH) + 4096)) problems.push(`${n}: RSS grew from ${Math.round(rssMid)} to ${Math.round(rssLast)} KiB`);
    if (!(fdLast <= fdMid + 4)) problems.push(`${n}: open fds grew from ${fdMid} to ${fdLast}`);
  }
  console.log('| process | RSS KiB, middle third | RSS KiB, last third | RSS KiB, max | fds, middle third | fds, last third |');
  console.log('|---|---|---|---|---|---|');
  for (const r of table) console.log(`| ${r.process} | ${r.rss_mid_kib} | ${r.rss_last_kib} | ${r.rss_max_kib} | ${r.fds_mid} | ${r.fds_last} |`);
  console.log(`\n${samples.length} samples over ${SECS} s; sent ${result.sent_total}, delivered ratio ${ratio.toFixed(4)}; ` +
    `samples in ${path.join(OUT, 'soak.csv')}`);

  problems.push(...await cluster.teardown());
  for (const p of problems) console.log(`soak: ${p}`);
  return problems.length ? 1 : 0;
}

function plot(names) {
  try { execFileSync('gnuplot', ['--version'], { stdio: 'ignore' }); } catch { return; }
  const csv = path.join(OUT, 'soak.csv');
  const col = (n, k) => 2 + 2 * names.indexOf(n) + k;
  const lines = (k, div) => names.map((n) => `"${csv}" using 1:($${col(n, k)}${div}) with lines title "${n}"`).join(', ');
  const script = `set terminal pngcairo size 1000,700
set output "${path.join(OUT, 'soak.png')}"
set datafile separator ","
set key outside
set multiplot layout 2,1
set ylabel "RSS (MiB)"
plot ${lines(0, '/1024')}
set ylabel "open fds"
set xlabel "seconds"
plot ${lines(1, '')}
unset multiplot
`;
  try { execFileSync('gnuplot', [], { input: script, stdio: ['pipe', 'ignore', 'pipe'] }); } catch { /* no plot */ }
}

main().then((code) => process.exit(code), (e) => {
  process.stderr.write(`soak: ${e.stack || e}\n`);
  process.exit(2);
});
