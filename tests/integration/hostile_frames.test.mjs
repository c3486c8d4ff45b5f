// hostile_frames.test.mjs — issue #18 done-when 2: 10,000 generated hostile frames and 1,000
// hostile HTTP requests to both gateways — random bytes, invalid and overlong UTF-8, cut
// multi-byte characters in every string field, deep nesting, huge numbers, wrong types, every
// action with every field missing. No process exits (the harness fails the file otherwise),
// every frame with a ref gets exactly one answer (an error, or the ack of a harmless one), every
// broken frame an error or a documented close, and nothing is stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Client, useCluster, uniqueRoom } from './lib/cluster.mjs';

const c = useCluster();

// Deterministic generator (mulberry32), so a failure can be replayed.
const SEED = Number(process.env.NATTER_HOSTILE_SEED || 20261207);
function rng(seed) {
  let a = seed >>> 0;
  return () => { a = (a + 0x6D2B79F5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}
const rand = rng(SEED);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const int = (n) => Math.floor(rand() * n);

const ACTIONS = ['auth', 'ping', 'subscribe', 'unsubscribe', 'leave', 'send_message', 'history', 'typing',
  'presence', 'online_users', 'read', 'delivered', 'create_room', 'refresh'];
const FIELDS = ['message', 'message_type', 'reply_to', 'client_msg_id', 'since_seq', 'access_code', 'before_seq',
  'after_seq', 'limit', 'seq', 'message_ids', 'is_typing', 'status', 'device', 'status_text', 'visibility',
  'room_id', 'name', 'members', 'token', 'action', 'request', 'request_id'];
const MULTI = ['é', '€', '😀', '𝄞', 'ß', '中'];
// Strings that are valid JSON text but hostile values.
const nasty = () => pick([
  '', ' ', '\u0000', 'a\u0000b', '\u0007\u001b[2J', '\uFEFF', 'x'.repeat(70_000 + int(1000)),
  MULTI[int(MULTI.length)].repeat(20 + int(80)) + 'x', 'room.' + 'é'.repeat(33), '../../etc/passwd',
  '%FF%00', '\\', '"', '\u2028\u2029', 'dm.' + 'a'.repeat(65), 'system', '{"a":1}', 'null',
  '😀'.repeat(5001), 'room.ok', 'chat.room.', 'dm.', `room.${'a'.repeat(64)}`,
]);
const nastyValue = () => pick([
  nasty(), int(2) === 0, null, -1, 0, 1.5, 1e308, -1e308, 2 ** 53 + 1, -(2 ** 63), [], [nasty()], {}, { x: nasty() },
  Array.from({ length: 200 }, () => int(10)), { a: { b: { c: [{ d: nasty() }] } } },
]);
const deep = (n, open, close) => open.repeat(n) + close.repeat(n);

/** Text that is not valid UTF-8 once sent: overlong forms, lone surrogates, cut sequences. */
function badUtf8() {
  const json = Buffer.from(`{"action":"send_message","channel":"room.x","data":{"message":"`);
  const bad = pick([[0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80],
    [0xC3], [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xFF], [0xFE, 0xFF], [0x80]]);
  return Buffer.concat([json, Buffer.from(bad), Buffer.from('"}}')]);
}

/** One hostile frame: {data: string|Buffer, ref?} — each is broken, unauthorised or harmless. */
function hostileFrame(i, room) {
  const ref = `h${i}`;
  const kind = int(12);
  switch (kind) {
    case 0: return { data: Buffer.from(Array.from({ length: 1 + int(200) }, () => int(256))) };   // random bytes
    case 1: return { data: badUtf8() };
    case 2: return { data: pick([deep(5000, '[', ']'), deep(5000, '{"a":', '}').replace(/}$/, '1}'), '{'.repeat(3000)]) };
    case 3: return { data: pick(['{"action":"ping","ref":1e400}', '{"action":"history","channel":"room.x","data":{"limit":99999999999999999999999}}',
      '{"action":"send_message","data":{"message":"x"},"ref":-99999999999999999999}', '{"ref":' + '9'.repeat(400) + '}',
      '{"action":"read","channel":"room.x","data":{"seq":1e309}}']) };
    case 4: {                                                     // every action with every field missing
      const a = pick(ACTIONS);
      return { data: JSON.stringify(a === 'ping' ? { action: a, ref, data: nastyValue() } : { action: a, ref }), ref };
    }
    case 5: {                                                     // wrong types in every place
      const f = { action: pick([...ACTIONS, nastyValue()]), ref };
      if (int(2)) f.channel = pick([nastyValue(), `room.${room}`, 'dm.someone']);
      if (int(2)) f.event = pick(['user_action', 'system_request', 'chat_message', nastyValue()]);
      f.data = int(4) ? Object.fromEntries(Array.from({ length: 1 + int(4) }, () => [pick(FIELDS), nastyValue()])) : nastyValue();
      if (f.action === 'send_message' && f.data && typeof f.data === 'object' && !Array.isArray(f.data)) f.data.message = pick([42, '', null, 'é'.repeat(5001), []]);
      return { data: JSON.stringify(f), ref: typeof f.ref === 'string' ? ref : undefined };
    }
    case 6: {                                                     // cut multi-byte characters in each string field
      const field = pick(FIELDS);
      const txt = MULTI[int(MULTI.length)].repeat(1 + int(40));
      const buf = Buffer.from(JSON.stringify({ action: pick(ACTIONS), channel: `room.${room}`, data: { [field]: txt }, ref }));
      const at = buf.indexOf(Buffer.from(txt.slice(0, 1))) + 1;   // inside the first character
      return { data: Buffer.concat([buf.subarray(0, at), buf.subarray(at + 1)]) };
    }
    case 7: return { data: JSON.stringify({ action: 'send_message', event: pick(['user_action', 'system_request']), ref,
      data: { action: nasty(), request: nasty(), request_id: nastyValue(), room_id: nastyValue() } }) };
    case 8: return { data: pick(['', ' ', 'null', '[]', '"x"', '0', 'true', '{}', '{"action":null}', '{"action":""}', '\u0000']) };
    case 9: return { data: JSON.stringify({ action: 'send_message', channel: pick([`room.${room}`, 'room.other', nasty()]), ref,
      data: { message: pick([42, '', null, 'x'.repeat(5001), { t: 1 }, []]), client_msg_id: nastyValue() } }), ref };
    case 10: return { data: JSON.stringify({ action: pick(['subscribe', 'history', 'read', 'delivered', 'online_users', 'typing']), ref,
      channel: pick([nasty(), 'room.a b', 'room.ä', `room.${'z'.repeat(65)}`, 'dm.' + nasty()]), data: { since_seq: nastyValue(), seq: nastyValue() } }), ref };
    default: return { data: JSON.stringify({ action: 'create_room', ref, data: { visibility: nastyValue(), room_id: nastyValue(),
      members: pick([nastyValue(), Array.from({ length: 1001 }, (_, k) => `u${k}`), ['ok', 'not ok']]), access_code: nastyValue(), name: nasty() } }), ref };
  }
}

const DOCUMENTED_CLOSES = new Set([1003, 1007, 1008, 1009, 4001, 4029]);

async function openHostile(gw, k) {
  const auth = k % 3 !== 0;                                   // a third before login
  const user = `hostile${k % 7}`;
  const cl = await Client.open(c.wsUrl(gw, auth ? `?token=${encodeURIComponent(c.token(user))}` : ''), { label: `${user}@gw${gw + 1}` });
  if (auth) await cl.waitConnected();
  return cl;
}

test('10,000 hostile frames over both gateways: each answered or closed as documented, nothing stored', { timeout: 300_000 }, async () => {
  const room = uniqueRoom('hostile');
  const stats = { frames: 0, answered: 0, closes: {}, reconnects: 0 };
  const perGw = 5000;
  for (const gw of [0, 1]) {
    let k = 0;
    const recent = [];
    let cl = await openHostile(gw, k++);
    for (let i = 0; i < perGw; i++) {
      const f = hostileFrame(gw * perGw + i, room);
      stats.frames++;
      recent.push(String(f.data).slice(0, 80));
      if (recent.length > 4) recent.shift();
      const before = cl.events.length;
      if (f.ref) {
        const answer = cl.next((e) => (e.event === 'error' || e.event === 'ack' || e.event === 'system_response') &&
          (e.ref === f.ref || e.ref === undefined), 15_000).catch((e) => e);
        cl.sendRaw(f.data);
        const got = await Promise.race([answer, cl.closed.then((ci) => ({ closed: ci }))]);
        if (got instanceof Error) throw new Error(`frame ${gw * perGw + i} (${String(f.data).slice(0, 120)}): ${got.message}`);
        if (!got.closed) stats.answered++;
      } else {
        cl.sendRaw(f.data);
        // The broken frame's error (or close) comes before the answer to a ping sent after it.
        const got = await cl.request('ping', undefined, undefined, { ref: `p${i}`, timeoutMs: 15_000 })
          .catch(() => cl.closed.then((ci) => ({ closed: ci })));
        if (!got.closed) {
          const errs = cl.events.slice(before).filter((e) => e.event === 'error' || e.event === 'system_response');
          assert.ok(errs.length >= 1 || f.data.length === 0 || String(f.data).trim() === '',
            `a broken frame got neither an error nor a close: ${String(f.data).slice(0, 120)}; events since: ${JSON.stringify(cl.events.slice(before - 2)).slice(0, 600)}`);
        }
      }
      if (!cl.isOpen) {
        const ci = await cl.closed;
        assert.ok(DOCUMENTED_CLOSES.has(ci.code), `undocumented close ${JSON.stringify(ci)} (${cl.lastError}) on ${cl.label} after ${JSON.stringify(recent)}`);
        stats.closes[ci.code] = (stats.closes[ci.code] || 0) + 1;
        cl = await openHostile(gw, k++);
        stats.reconnects++;
      }
    }
    cl.close();
  }
  // Nothing a hostile user sent was stored.
  const rows = await c.query("SELECT count(*)::int AS n FROM messages WHERE sender LIKE 'hostile%'");
  assert.equal(rows[0].n, 0, 'no hostile frame stored a message');
  // Both gateways still serve a normal exchange.
  const a = await c.client(0, 'calm_a');
  const b = await c.client(1, 'calm_b');
  const ch = `room.${uniqueRoom('calm')}`;
  await a.subscribe(ch); await b.subscribe(ch);
  const ack = await a.ack('send_message', ch, { message: 'all is well' });
  await b.next((e) => e.event === 'message' && e.data.id === ack.id);
  process.stderr.write(`hostile frames: ${JSON.stringify(stats)}\n`);
});

/** One raw HTTP exchange: resolves with the status (0 when the gateway closed without one). */
function rawHttp(port, bytes, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = Buffer.alloc(0);
    const t = setTimeout(() => { s.destroy(); reject(new Error(`no answer and no close within ${timeoutMs} ms to ${bytes.subarray(0, 100).toString('latin1')}`)); }, timeoutMs);
    s.on('data', (d) => { out = Buffer.concat([out, d]); });
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(t); const m = /^HTTP\/1\.1 (\d{3})/.exec(out.toString('latin1')); resolve(m ? Number(m[1]) : 0); });
    s.write(bytes);
    s.end();
  });
}

function hostileRequest(i) {
  const tok = pick([c.token('hostile_http'), 'garbage', c.badTokens('x').algNone, '', 'Bearer', 'é'.repeat(3000)]);
  const seg = () => pick(['%FF', '%C3', '%00', '..', '%2e%2e', 'é', 'a'.repeat(300), '', '%', '%G0', 'room%20x', '😀', '\u0001']);
  const path = pick([
    `/api/rooms/${seg()}/messages?limit=${pick(['-1', '1e9', 'x', '%FF', '99999999999999999999'])}&before_seq=${seg()}`,
    `/api/rooms/${seg()}/online`, `/api/rooms/${seg()}/typing`, `/api/users/${seg()}/presence`,
    `/api/rooms/${seg()}/members/${seg()}`, `/api/rooms/${seg()}/read`, '/api/rooms', '/api/me/rooms', '/api/me/unread',
    `/api/server/users/${seg()}/disconnect`, '/api/server/publish', '/api/server/notify', '/api/server/stats',
    '/api/dev/token', `/${seg()}`, `/api/${seg()}/${seg()}`, '/ws', `/${'x'.repeat(9000)}`,
  ]);
  const method = pick(['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', 'HEAD', 'BREW', 'G\u00e9T']);
  const body = pick(['', '{', '[]', 'null', '{"user_id":' + '9'.repeat(500) + '}', deep(3000, '[', ']'),
    JSON.stringify({ room_id: seg(), visibility: nastyValue(), members: nastyValue(), seq: nastyValue(), event: nasty(), data: nastyValue() }),
    '\u0000\u0001\u0002', 'x'.repeat(70_000)]);
  const bodyBuf = Buffer.from(body);
  const headers = [`${method} ${path} HTTP/1.1`, 'Host: x', `Authorization: Bearer ${tok}`, 'Connection: close'];
  if (int(4)) headers.push(`Content-Length: ${pick([String(bodyBuf.length), '-1', '99999999999', 'abc', String(bodyBuf.length)])}`);
  if (!int(5)) headers.push(pick(['Transfer-Encoding: chunked', 'Content-Type: application/json', 'X-Forwarded-For: ' + seg(), 'Origin: evil']));
  return Buffer.concat([Buffer.from(headers.join('\r\n') + '\r\n\r\n', 'latin1'), int(8) ? bodyBuf : Buffer.from(deep(2000, '{"a":', '}'))]);
}

test('1,000 hostile HTTP requests over both gateways: each answered or closed, never a hang or a crash', { timeout: 300_000 }, async () => {
  const statuses = {};
  for (let i = 0; i < 1000; i++) {
    const gw = i % 2;
    const status = await rawHttp(c.gwPort(gw), hostileRequest(i));
    assert.ok(status === 0 || (status >= 200 && status < 600), `status ${status}`);
    statuses[status] = (statuses[status] || 0) + 1;
  }
  assert.ok(Object.keys(statuses).some((s) => s >= 400 && s < 500), 'the bad requests got 4xx answers');
  const rows = await c.query("SELECT count(*)::int AS n FROM messages WHERE sender LIKE 'hostile%'");
  assert.equal(rows[0].n, 0);
  for (const gw of [0, 1]) assert.equal((await c.http(gw, 'GET', '/readyz')).status, 200, `gw${gw + 1} still ready`);
  process.stderr.write(`hostile HTTP statuses: ${JSON.stringify(statuses)}\n`);
});
