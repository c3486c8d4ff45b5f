// report.mjs: turns the newest bench/results/<date>-<scale>-<scenario>.json files
// (medium or full; smoke is never reported) into PNG plots in docs/bench/ (gnuplot)
// and the generated part of docs/BENCHMARKS.md: everything between the lines
// <!-- generated:begin --> and <!-- generated:end -->; the rest of that file is
// hand-written and left alone. `make bench` runs it after a full run; run it alone to
// regenerate from the JSON already there:
//
//   node bench/report.mjs [--scale medium|full] [--results DIR] [--no-plots]
//
// Without --scale each scenario's newest file is used, whatever its scale.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const DOC = path.join(ROOT, 'docs', 'BENCHMARKS.md');
const PLOTS = path.join(ROOT, 'docs', 'bench');
const BEGIN = '<!-- generated:begin -->', END = '<!-- generated:end -->';
const ORDER = ['idle', 'fanout', 'chatmix', 'persist', 'storm'];
const SYSTEMS = ['natter', 'socketio', 'natsws'];
const LABEL = { natter: 'natter', socketio: 'Socket.IO + Redis', natsws: 'nats-server ws' };
const COLOR = { natter: '#1b9e77', socketio: '#d95f02', natsws: '#7570b3' };
const say = (s) => process.stderr.write(`report: ${s}\n`);

function args() {
  const a = process.argv.slice(2), o = { scale: null, results: path.join(ROOT, 'bench', 'results'), plots: true };
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '--scale') o.scale = a[++i];
    else if (a[i] === '--results') o.results = path.resolve(a[++i]);
    else if (a[i] === '--no-plots') o.plots = false;
    else throw new Error(`unknown argument ${a[i]} (--scale medium|full, --results DIR, --no-plots)`);
  }
  if (o.scale === 'smoke') throw new Error('smoke results are too small to report: nothing written');
  if (o.scale && !['medium', 'full'].includes(o.scale)) throw new Error(`--scale ${o.scale}: medium or full`);
  return o;
}

// ------------------------------------------------------------------ inputs

/** The result file of each scenario to report: { name: {file, json} }. A file with fewer
 *  systems than the scenario's others (a BENCH_SYSTEMS=… run) is used only when no file
 *  has them all; among the rest the newest run wins, on a tie the larger scale. */
function newest(dir, scale) {
  const all = {};
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    const m = /^\d{4}-\d{2}-\d{2}-(medium|full)-([a-z0-9_]+)\.json$/.exec(f);
    if (!m || (scale && m[1] !== scale)) continue;
    let json;
    try { json = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')); } catch (e) { say(`${f}: ${e.message}; skipped`); continue; }
    if (!Array.isArray(json.rows) || !json.rows.length) { say(`${f}: no rows; skipped`); continue; }
    json.scale ||= m[1];
    json.date ||= '';
    (all[json.scenario || m[2]] ||= []).push({ file: path.join(dir, f), json });
  }
  const best = {};
  for (const [name, list] of Object.entries(all)) {
    const systems = (e) => new Set(e.json.rows.map((r) => r.system));
    const every = new Set(list.flatMap((e) => [...systems(e)]));
    const complete = list.filter((e) => systems(e).size === every.size);
    const pool = complete.length ? complete : list;
    pool.sort((a, b) => (b.json.date > a.json.date) - (b.json.date < a.json.date) || (b.json.scale === 'full') - (a.json.scale === 'full'));
    best[name] = pool[0];
  }
  const rank = (n) => (ORDER.includes(n) ? ORDER.indexOf(n) : ORDER.length);
  return Object.entries(best).sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
}

const bySystem = (rows) => SYSTEMS.map((s) => rows.find((r) => r.system === s)).filter(Boolean);

/** Fan-out steps per system and subscriber count: [{system, subs, steps:[{rate, delivery_rate, per_cpu, p99_ms}]}].
 *  Reads both raw layouts: [{system, runs:[{subs, runs}]}] and the older [{system, subs, runs}]. */
function fanoutSteps(json) {
  const out = [];
  for (const r of json.raw || []) {
    const groups = r.subs !== undefined ? [{ subs: r.subs, runs: r.runs }] : (r.runs || []).filter((g) => g && g.subs !== undefined);
    for (const g of groups) {
      const runs = (g.runs || []).slice(0, -1);     // the last one is the latency run at half the peak
      const steps = runs.map((x) => ({ rate: x.step_rate ?? x.rate_target, delivery_rate: x.delivery_rate || 0,
        per_cpu: x.deliveries_per_server_cpu_s || 0, p99_ms: x.latency && x.latency.count ? x.latency.p99_us / 1000 : null }))
        .filter((s) => s.rate > 0).sort((a, b) => a.rate - b.rate);
      if (steps.length) out.push({ system: r.system, subs: g.subs, steps });
    }
  }
  return out;
}

// ------------------------------------------------------------------ plots (gnuplot)

const HEAD = `set terminal pngcairo size 900,520 font "sans,10" noenhanced
set grid ytics lc rgb "#dddddd"
set key top left
set border 3
set tics nomirror
`;

function gnuplot(script, png) {
  execFileSync('gnuplot', [], { input: `${HEAD}set output "${png}"\n${script}\nunset output\n`, stdio: ['pipe', 'ignore', 'pipe'] });
  return png;
}

const datablock = (name, lines) => `$${name} << EOD\n${lines.join('\n')}\nEOD\n`;
const q = (s) => `"${String(s).replace(/"/g, "'")}"`;

/** One bar per system for each of the given row fields; a panel per field. */
function bars(png, title, rows, panels) {
  const sys = bySystem(rows);
  if (!sys.length) return null;
  let s = `set multiplot layout 1,${panels.length} title ${q(title)}\nset style fill solid 0.85 border -1\nset boxwidth 0.6\nunset key\nset yrange [0:*]\nset offsets 0,0,graph 0.08,0\nset xrange [-0.6:${sys.length - 0.4}]\n`;
  s += datablock('d', sys.map((r, i) => `${i} ${q(LABEL[r.system] || r.system)} ${panels.map(([f]) => (r[f] ?? 'NaN')).join(' ')} ${parseInt(COLOR[r.system]?.slice(1) || '888888', 16)}`));
  panels.forEach(([, label], k) => {
    s += `set title ${q(label)}\nplot $d using 1:${3 + k}:${3 + panels.length}:xtic(2) with boxes lc rgb variable, ` +
      `$d using 1:${3 + k}:(sprintf("%g", column(${3 + k}))) with labels offset 0,0.8\n`;
  });
  return gnuplot(`${s}unset multiplot`, png);
}

function plotFanout(json, scale) {
  const groups = fanoutSteps(json);
  const made = [];
  for (const subs of [...new Set(groups.map((g) => g.subs))]) {
    const gs = groups.filter((g) => g.subs === subs);
    let s = `set multiplot layout 1,2 title ${q(`fan-out, ${subs} subscribers, 10 senders (${scale}): per offered msgs/s step`)}\n` +
      'set logscale x 2\nset xlabel "offered msgs/s"\nset format y "%.0s%c"\n';
    gs.forEach((g, i) => { s += datablock(`s${i}`, g.steps.map((x) => `${x.rate} ${x.delivery_rate} ${x.per_cpu}`)); });
    const lines = (col) => gs.map((g, i) => `$s${i} using 1:${col} with linespoints lw 2 pt 7 lc rgb "${COLOR[g.system] || '#888888'}" title ${q(LABEL[g.system] || g.system)}`).join(', ');
    s += `set title "deliveries/s"\nset logscale y 10\nplot ${lines(2)}\nunset logscale y\n`;
    s += `set title "deliveries per server CPU-second"\nset yrange [0:*]\nplot ${lines(3)}\nunset multiplot`;
    made.push({ png: gnuplot(s, path.join(PLOTS, `fanout-${subs}.png`)), alt: `fan-out ${subs} subscribers` });
  }
  return made;
}

function plotPersist(json, scale) {
  const rows = json.rows.filter((r) => r.offered);
  if (!rows.length) return [];
  let s = `set title ${q(`persistence ceiling, natter (${scale}): acks/s and ack p99 per offered msgs/s`)}\n` +
    'set xlabel "offered msgs/s"\nset ylabel "acks/s"\nset y2label "ack p99 ms"\nset y2tics\nset xrange [0:*]\nset yrange [0:*]\nset y2range [0:*]\nset key top left\n';
  s += datablock('p', rows.map((r) => `${r.offered} ${r.ack_rate ?? 'NaN'} ${r.ack_p99_ms ?? 'NaN'}`));
  s += `plot $p using 1:1 with lines dt 2 lc rgb "#999999" title "offered", $p using 1:2 with linespoints lw 2 pt 7 lc rgb "${COLOR.natter}" title "acks/s", ` +
    '$p using 1:3 axes x1y2 with linespoints lw 2 pt 5 lc rgb "#e7298a" title "ack p99 ms"';
  return [{ png: gnuplot(s, path.join(PLOTS, 'persist.png')), alt: 'persistence ceiling' }];
}

function plotChatmix(json, scale) {
  const sys = bySystem(json.rows);
  if (!sys.length) return [];
  let s = `set title ${q(`chat mix (${scale}): send→delivery latency, ms (log scale)`)}\nset style data histograms\n` +
    'set style histogram clustered gap 1\nset style fill solid 0.85 border -1\nset logscale y 10\nset key top left\n';
  s += datablock('c', sys.map((r) => `${q(LABEL[r.system] || r.system)} ${r.p50_ms ?? 'NaN'} ${r.p99_ms ?? 'NaN'} ${r.p999_ms ?? 'NaN'}`));
  s += 'plot $c using 2:xtic(1) title "p50" lc rgb "#66c2a5", "" using 3 title "p99" lc rgb "#fc8d62", "" using 4 title "p99.9" lc rgb "#8da0cb"';
  return [{ png: gnuplot(s, path.join(PLOTS, 'chatmix-latency.png')), alt: 'chat mix latency' }];
}

const PLOTTERS = {
  idle: (j, scale) => [{ png: bars(path.join(PLOTS, 'idle.png'), `idle, ${j.rows[0].conns} connections (${scale})`, j.rows,
    [['rss_kib_per_conn', 'front RSS KiB per connection'], ['idle_cpu_all_servers_pct', 'idle CPU, all servers, % of a core']]), alt: 'idle RSS per connection' }],
  fanout: plotFanout,
  chatmix: plotChatmix,
  persist: plotPersist,
  storm: (j, scale) => [{ png: bars(path.join(PLOTS, 'storm.png'), `connect storm, ${j.rows[0].conns} connections (${scale})`, j.rows,
    [['connects_per_s', 'ready connections per second'], ['server_cpu_s_per_1k', 'server CPU-s per 1,000 connections']]), alt: 'connect storm' }],
};

// ------------------------------------------------------------------ markdown

const fmtKey = (k) => k.replace(/_natter_over_peer$/, '').replace(/_/g, ' ');

function ratiosLine(ratios) {
  const parts = Object.entries(ratios || {}).map(([peer, r]) => `${peer}: ${Object.entries(r).map(([k, v]) => `${fmtKey(k)} ${v ?? '-'}`).join(', ')}`);
  return parts.length ? `Ratios natter / peer — ${parts.join('; ')}.` : null;
}

function command(name, json) {
  const env = [`BENCH_SCALE=${json.scale}`, `BENCH_SCENARIOS=${name}`];
  const systems = [...new Set(json.rows.map((r) => r.system))];
  if (name !== 'persist' && systems.length < SYSTEMS.length) env.push(`BENCH_SYSTEMS=${systems.join(',')}`);
  if (json.machine?.pg_fsync === 'off') env.push('BENCH_PG_FSYNC=off');
  return `${env.join(' ')} bench/run.sh`;
}

/** The machine of each result file; one column per distinct machine when they differ. */
function machineTable(found) {
  const cols = [];
  for (const [name, f] of found) {
    const key = JSON.stringify(f.json.machine || {});
    const c = cols.find((x) => x.key === key);
    if (c) c.names.push(name); else cols.push({ key, m: f.json.machine || {}, names: [name] });
  }
  const fields = [['CPU', (m) => `${m.nproc} × ${m.cpu}`], ['memory', (m) => `${m.mem_mib} MiB`], ['kernel', (m) => m.kernel],
    ['open files', (m) => m.open_files_limit], ['nats-server', (m) => m.nats_server?.replace(/^nats-server:\s*/, '')],
    ['redis-server', (m) => m.redis?.replace(/^Redis server v=(\S+).*/, '$1')], ['PostgreSQL', (m) => `${m.postgres}, fsync=${m.pg_fsync}`],
    ['Node.js', (m) => `${m.node}; socket.io ${m.socket_io}`]];
  const head = cols.length > 1 ? cols.map((c) => c.names.join(', ')) : [''];
  return [`| | ${head.join(' | ')} |`, `|---|${cols.map(() => '---').join('|')}|`,
    ...fields.map(([k, f]) => `| ${k} | ${cols.map((c) => f(c.m) ?? '-').join(' | ')} |`)].join('\n');
}

const when = (iso) => iso.slice(0, 16).replace('T', ' ');

function section(found, plots) {
  const dates = found.map(([, f]) => f.json.date).sort();
  const scales = [...new Set(found.map(([, f]) => f.json.scale))];
  const out = [BEGIN, '## Latest run', '',
    `Generated by \`node bench/report.mjs\` from the newest result files (edit nothing between the \`generated\` markers: the next run overwrites it). ` +
    `${when(dates[0]) === when(dates[dates.length - 1]) ? `Run ${when(dates[0])}` : `Runs from ${when(dates[0])} to ${when(dates[dates.length - 1])}`} UTC, ` +
    `scale ${scales.join(' and ')}; the machine as each result file recorded it.`, '',
    machineTable(found), '',
    'Commands (`make bench` runs all scenarios at full size, then this report):', '', '```sh',
    ...found.map(([name, f]) => command(name, f.json)), 'node bench/report.mjs', '```', ''];
  for (const [name, f] of found) {
    const j = f.json;
    out.push(`### ${name} (${j.scale}, ${j.date.slice(0, 10)})`, '', `\`${path.relative(ROOT, f.file)}\``, '', j.table_markdown || '(no table)', '');
    const rl = ratiosLine(j.ratios);
    if (rl) out.push(rl, '');
    for (const p of plots[name] || []) out.push(`![${p.alt}](${path.relative(path.dirname(DOC), p.png)})`, '');
  }
  out.push(END);
  return out.join('\n');
}

function writeDoc(text) {
  const doc = fs.readFileSync(DOC, 'utf8');
  const a = doc.indexOf(BEGIN), b = doc.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${path.relative(ROOT, DOC)} has no ${BEGIN} … ${END} block: add one where the generated section goes`);
  fs.writeFileSync(DOC, doc.slice(0, a) + text + doc.slice(b + END.length));
}

// ------------------------------------------------------------------ main

function main() {
  const o = args();
  const found = newest(o.results, o.scale);
  if (!found.length) throw new Error(`no medium/full result files in ${path.relative(ROOT, o.results) || '.'}: run BENCH_SCALE=medium bench/run.sh first`);
  let canPlot = o.plots;
  if (canPlot) {
    try { execFileSync('gnuplot', ['--version'], { stdio: 'ignore' }); } catch { canPlot = false; say('gnuplot is missing (apt-get install gnuplot-nox): no plots'); }
  }
  const plots = {};
  if (canPlot) fs.mkdirSync(PLOTS, { recursive: true });
  for (const [name, f] of found) {
    say(`${name}: ${path.relative(ROOT, f.file)}`);
    if (!canPlot || !PLOTTERS[name]) continue;
    try {
      plots[name] = PLOTTERS[name](f.json, f.json.scale).filter((p) => p && p.png);
      for (const p of plots[name]) say(`  wrote ${path.relative(ROOT, p.png)}`);
    } catch (e) { say(`${name}: plot failed: ${(e.stderr || e.message).toString().trim().slice(0, 400)}`); }
  }
  writeDoc(section(found, plots));
  say(`wrote ${path.relative(ROOT, DOC)} (generated section)`);
}

try { main(); } catch (e) { console.error(`report: ${e.message}`); process.exitCode = 1; }
