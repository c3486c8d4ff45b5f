// hostile_crash.test.mjs — issue #18's two crashes, before login: error texts that quote
// client input cut inside a multi-byte character (the frame case) or holding bytes that are
// not UTF-8 at all (the URL case) once made the encoder return NULL and the gateway die.
// Each must now get a readable error while every other connection keeps being served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Client, useCluster, uniqueRoom } from './lib/cluster.mjs';

const c = useCluster();

/** A raw HTTP/1.1 request, so the path's bytes reach the gateway exactly as written. */
function rawHttp(port, request, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    const t = setTimeout(() => { s.destroy(); reject(new Error(`no HTTP answer within ${timeoutMs} ms; got ${JSON.stringify(out)}`)); }, timeoutMs);
    s.on('data', (d) => { out += d.toString('latin1'); if (/\r\n\r\n/.test(out) && /\}\s*$/.test(out)) { clearTimeout(t); s.end(); resolve(out); } });
    s.on('error', (e) => { clearTimeout(t); reject(e); });
    s.on('close', () => { clearTimeout(t); resolve(out); });
    s.write(request);
  });
}

async function watcher(gw) {
  const room = uniqueRoom('hc');
  const w = await c.client(gw, `watch${gw}`);
  await w.subscribe(`room.${room}`);
  return { w, room };
}

async function stillServes(gw, { w, room }, what) {
  const s = await c.client(gw, 'sender');
  await s.subscribe(`room.${room}`);
  const ack = await s.ack('send_message', `room.${room}`, { message: `after ${what}` });
  const ev = await w.next((e) => e.event === 'message' && e.data?.id === ack.id, 15_000);
  assert.equal(ev.data.message, `after ${what}`);
  assert.ok(w.isOpen, `${what}: the watching connection stayed open`);
  s.close();
}

test('a frame quoting client text cut inside a multi-byte character gets an error, not a crash', { timeout: 120_000 }, async () => {
  for (const gw of [0, 1]) {
    const watch = await watcher(gw);
    const frames = [
      { action: 'send_message', event: 'user_action', data: { action: 'a' + 'é'.repeat(40) } },
      { action: 'x' + 'é'.repeat(40) },
      { action: 'send_message', event: 'system_request', data: { request: 'b' + '€'.repeat(60) } },
      { action: 'x' + '😀'.repeat(100) },
    ];
    for (const frame of frames) {
      const anon = await Client.open(c.wsUrl(gw), { label: `anon@gw${gw + 1}` });  // no token: before login
      anon.send(frame);
      // A system_request of the older envelope is answered as its system_response.
      const ev = await anon.next((e) => e.event === 'error' || e.event === 'system_response', 15_000);
      const err = ev.event === 'error' ? ev.data : ev.data.error;
      assert.equal(err?.code, 'bad_request', JSON.stringify(ev));
      assert.ok(err.message.startsWith('unknown'), err.message);
      assert.ok(!/[\uFFFD?]/.test(err.message), `cut on a character boundary: ${err.message}`);
      anon.close();
      await stillServes(gw, watch, JSON.stringify(frame).slice(0, 40));
    }
    watch.w.close();
  }
});

test('a URL with bytes that are not UTF-8 gets a 400 naming the id, not a crash', { timeout: 120_000 }, async () => {
  for (const gw of [0, 1]) {
    const watch = await watcher(gw);
    for (const p of ['/api/rooms/%FF/messages', '/api/rooms/%C3/online', '/api/users/%FF%FE/presence',
      '/api/rooms/a%E9b/members', '/api/rooms/%FF/read', '/api/rooms/%80%80/messages?limit=%FF']) {
      const token = c.token('alice');
      const res = await rawHttp(c.gwPort(gw), `GET ${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
      const status = Number(res.split(' ')[1]);
      assert.ok(status >= 400 && status < 500, `${p}: ${res.slice(0, 200)}`);
      const body = JSON.parse(Buffer.from(res.slice(res.indexOf('\r\n\r\n') + 4), 'latin1').toString('utf8'));
      assert.equal(typeof body.error?.message, 'string', `${p}: ${JSON.stringify(body)}`);
      await stillServes(gw, watch, p);
    }
    watch.w.close();
  }
});
