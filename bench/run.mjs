// run.mjs: natter's benchmark driver (called by bench/run.sh). Starts each system on free
// loopback ports with its data in a temp dir, runs the scenarios (bench/scenarios/*.mjs)
// with natter-bench, prints one table row per system and writes the results as JSON.
// Everything it starts is stopped on exit. Sizes come from BENCH_SCALE.
//
// Environment:
//   BENCH_SCALE       smoke (default; < 2 min, tiny sizes) | medium | full (the sizes)
//   BENCH_SYSTEMS     comma list of natter,socketio,natsws (default all three)
//   BENCH_SCENARIOS   comma list of scenario names (default all: every bench/scenarios/*.mjs)
//   BENCH_BIN_DIR     where natter-gateway/-router/-persister and bench/natter-bench are
//   BENCH_OUT_DIR     where results go (default bench/results, smoke: bench/results/tmp)
//   BENCH_PG_FSYNC    on (default) | off: PostgreSQL fsync for natter's store
//   BENCH_PG_OPTS     "name=value name=value": extra PostgreSQL settings (experiments)
//   BENCH_KEEP=1      keep the temp dir (logs) after the run
//   BENCH_SIZES       JSON merged over each scenario's sizes for BENCH_SCALE, e.g.
//                     '{"rate":2000}' (chatmix at 2,000 sends/s); a key no chosen
//                     scenario has is an error
import fs from 'node:fs';
import path from 'node:path';
import { BENCH, DATE, PER_PROC, ROOT, SCALE, STARTERS, anomalies, failures, logs, KEEP, machine, say, table } from './lib.mjs';
import { HERE } from './lib.mjs';

// Every bench/scenarios/*.mjs, in the order of their `order` field.
const SCENARIO_LIST = (await Promise.all(fs.readdirSync(path.join(HERE, 'scenarios')).filter((f) => f.endsWith('.mjs')).sort()
  .map(async (f) => (await import(path.join(HERE, 'scenarios', f))).default))).sort((a, b) => a.order - b.order);
const SYSTEMS = (process.env.BENCH_SYSTEMS || 'natter,socketio,natsws').split(',').filter(Boolean);
const WANT = (process.env.BENCH_SCENARIOS || SCENARIO_LIST.map((s) => s.name).join(',')).split(',').filter(Boolean);
const OUT = path.resolve(ROOT, process.env.BENCH_OUT_DIR || (SCALE === 'smoke' ? 'bench/results/tmp' : 'bench/results'));
const SIZES = (() => {
  try {
    const v = JSON.parse(process.env.BENCH_SIZES || '{}');
    if (v && typeof v === 'object' && !Array.isArray(v)) return v;
  } catch { /* below */ }
  throw new Error(`BENCH_SIZES must be a JSON object such as '{"rate":2000}', not ${process.env.BENCH_SIZES}`);
})();
// A scenario's sizes are an object, or a list of them (fan-out: one per room size).
const sizeList = (sc) => [sc.sizes[SCALE]].flat();
const withSizes = (base) => ({ ...base, ...Object.fromEntries(Object.entries(SIZES).filter(([k]) => k in base)) });
const sizesOf = (sc) => (Array.isArray(sc.sizes[SCALE]) ? sc.sizes[SCALE].map(withSizes) : withSizes(sc.sizes[SCALE]));

async function main() {
  if (!['smoke', 'medium', 'full'].includes(SCALE)) throw new Error(`unknown BENCH_SCALE ${SCALE} (smoke | medium | full)`);
  for (const w of WANT) if (!SCENARIO_LIST.some((s) => s.name === w)) throw new Error(`unknown scenario ${w} (${SCENARIO_LIST.map((s) => s.name).join(', ')})`);
  if (!fs.existsSync(BENCH)) throw new Error(`${BENCH} is missing: run bench/run.sh (it builds)`);
  fs.mkdirSync(OUT, { recursive: true });
  const t0 = Date.now();
  const scenarios = SCENARIO_LIST.filter((s) => WANT.includes(s.name));
  for (const k of Object.keys(SIZES)) {
    if (!scenarios.some((s) => sizeList(s).some((b) => k in b))) throw new Error(`BENCH_SIZES: no chosen scenario has a size named ${k}`);
  }
  const results = Object.fromEntries(scenarios.map((s) => [s.name, { rows: [], raw: [] }]));
  const maxConns = Math.max(0, ...scenarios.map((s) => s.conns(sizesOf(s))));
  const nFront = Math.max(2, Math.ceil(maxConns / PER_PROC));
  let run = 0;
  for (const system of SYSTEMS) {
    if (!STARTERS[system]) throw new Error(`unknown system ${system}`);
    const mine = scenarios.filter((s) => !s.systems || s.systems.includes(system));
    if (!mine.length) continue;
    say(`starting ${system} (${nFront} front processes)`);
    const sys = await STARTERS[system](nFront);
    try {
      for (const sc of mine) {
        say(`${sc.name} ${system}`);
        const r = await sc.run(sys, sizesOf(sc), ++run);
        results[sc.name].rows.push(...r.rows);
        results[sc.name].raw.push({ system, runs: r.raw });
        for (const row of r.rows) say(`  ${JSON.stringify(row)}`);
      }
    } catch (e) {
      failures.push(`${system}: ${e.message}`);
    } finally {
      await sys.stop();
    }
  }
  const m = machine();
  for (const sc of scenarios) {
    const { rows, raw } = results[sc.name];
    const ratios = {};
    if (sc.ratios) {
      for (const peer of rows.filter((r) => r.system !== 'natter')) {
        const n = rows.find((r) => r.system === 'natter' && (!sc.match || sc.match(r, peer)));
        if (!n) continue;
        const key = peer.subscribers ? `${peer.system}@${peer.subscribers}` : peer.system;
        ratios[key] = sc.ratios(n, peer);
      }
    }
    const tbl = table(rows, sc.cols);
    console.log(`\n${sc.name} (BENCH_SCALE=${SCALE}, ${DATE})\n${tbl}`);
    if (Object.keys(ratios).length) console.log(`ratios natter/peer: ${JSON.stringify(ratios)}`);
    const file = path.join(OUT, `${DATE}-${SCALE}-${sc.name}.json`);
    fs.writeFileSync(file, JSON.stringify({ scenario: sc.name, scale: SCALE, date: new Date().toISOString(), machine: m,
      sizes: sizesOf(sc), rows, ratios, table_markdown: tbl, raw }, null, 1) + '\n');
    say(`wrote ${path.relative(ROOT, file)}`);
  }
  say(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (anomalies.length) console.error(`\nbench: anomalies (logs kept: ${logs}):\n  ${anomalies.join('\n  ')}`);
  if (failures.length) {
    console.error(`\nbench: FAILED:\n  ${failures.join('\n  ')}\n(logs kept: ${logs})`);
    process.exitCode = 1;
  }
}

main().catch((e) => { console.error(`bench: ${e.stack || e.message}`); process.exitCode = 1; });
