// nats_permissions.test.mjs — the per-process NATS users and permissions that
// docs/security.md recommends, run as written there: the config block is read from the
// doc, so a subject the code starts to use without the doc (and the config) following
// fails here. Every client feature that crosses NATS works with it, nothing is refused
// (no "Permissions Violation" anywhere), and the permissions really hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ROOT, sleep, uniqueRoom, useCluster, waitUntil } from './lib/cluster.mjs';

const DOC = path.join(ROOT, 'docs/security.md');
const MARK = '<!-- tested by tests/integration/nats_permissions.test.mjs';

/** The ```conf block right after the marker in docs/security.md. */
function docConfig() {
  const text = fs.readFileSync(DOC, 'utf8');
  const at = text.indexOf(MARK);
  assert.ok(at >= 0, `${DOC} has the marker`);
  const m = text.slice(at).match(/```conf\n([\s\S]*?)```/);
  assert.ok(m, 'a ```conf block follows the marker');
  return m[1];
}

const PASSWORDS = {
  gateway: crypto.randomBytes(12).toString('hex'),
  router: crypto.randomBytes(12).toString('hex'),
  persister: crypto.randomBytes(12).toString('hex'),
};
const config = docConfig()
  .replace('$GATEWAY_NATS_PASSWORD', JSON.stringify(PASSWORDS.gateway))
  .replace('$ROUTER_NATS_PASSWORD', JSON.stringify(PASSWORDS.router))
  .replace('$PERSISTER_NATS_PASSWORD', JSON.stringify(PASSWORDS.persister));
const creds = (who) => ({ NATTER_NATS_USER: `natter-${who}`, NATTER_NATS_PASSWORD: PASSWORDS[who] });

const c = useCluster({
  natsAuth: { config },
  procEnv: { router: creds('router'), persister: creds('persister'), gw1: creds('gateway'), gw2: creds('gateway') },
});

/** CONNECT as who, run the protocol lines, PING; every line the server sent until PONG. */
function natsAs(who, lines) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(c.ports.nats, '127.0.0.1');
    let buf = '';
    const t = setTimeout(() => { sock.destroy(); reject(new Error(`nats: no PONG; got ${buf}`)); }, 10_000);
    sock.setEncoding('utf8');
    sock.on('error', (e) => { clearTimeout(t); reject(e); });
    sock.on('data', (d) => {
      buf += d;
      if (buf.includes('PONG\r\n')) {
        clearTimeout(t);
        sock.destroy();
        resolve(buf.split('\r\n').filter((l) => l && !l.startsWith('INFO ')));
      }
    });
    const connect = { verbose: false, pedantic: false, user: `natter-${who}`, pass: PASSWORDS[who] };
    sock.write(`CONNECT ${JSON.stringify(connect)}\r\n${lines.join('\r\n')}\r\nPING\r\n`);
  });
}
const pub = (subject) => `PUB ${subject} 2\r\nhi`;
const sub = (subject) => `SUB ${subject} 1`;
const VIOLATION = /Permissions Violation/i;

test('a whole cluster runs with the documented users and permissions', { timeout: 120_000 }, async () => {
  assert.ok(await c.allReady(), 'every process is ready (the persister created its stream and consumers)');
  const room = uniqueRoom('perm');
  const ch = `room.${room}`;
  const alice = await c.client(0, 'perm-alice', { name: 'Alice' });
  const bob = await c.client(1, 'perm-bob', { name: 'Bob' });
  await alice.subscribe(ch);                                               // rpc.router.join -> rpc.persist.join
  await bob.subscribe(ch);
  const ack = await alice.ack('send_message', ch, { message: 'through NATTER_IN', client_msg_id: 'p1' });
  await bob.next((e) => e.event === 'message' && e.data?.id === ack.id);   // persister -> natter.room
  const ack2 = await bob.ack('send_message', ch, { message: 'and back', client_msg_id: 'p2' });
  await alice.next((e) => e.event === 'message' && e.data?.id === ack2.id);
  const ack3 = await alice.ack('send_message', ch, { message: 'for a receipt', client_msg_id: 'p3' });
  await bob.next((e) => e.event === 'message' && e.data?.id === ack3.id);

  const h = await bob.ack('history', ch, {});                              // rpc.persist.history
  assert.deepEqual(h.messages.map((m) => m.seq), [1, 2, 3]);
  await alice.ack('typing', ch, { is_typing: true });                      // ctl.typing -> router -> room
  await bob.next((e) => e.event === 'typing' && e.data?.user_id === 'perm-alice');
  await alice.ack('presence', undefined, { status: 'away' });             // ctl.presence -> router -> room/user
  await bob.next((e) => e.event === 'presence' && e.data?.user_id === 'perm-alice' && e.data.status === 'away');
  const online = await bob.ack('online_users', ch);                        // rpc.router.online
  assert.ok(JSON.stringify(online).includes('perm-alice'), JSON.stringify(online));
  assert.deepEqual(await bob.ack('read', ch, { seq: 3 }), { last_read_seq: 3, unread: 0 });   // rpc.persist.read
  await alice.next((e) => e.event === 'receipt' && e.data?.room_id === room);              // to the sender of 3
  await waitUntil(() => bob.all((e) => e.event === 'unread').length > 0, { what: 'an unread event (natter.unread)' });

  const priv = uniqueRoom('perm-priv');                                    // rpc.persist.create, access, member_add
  await alice.ack('create_room', undefined, { room_id: priv, visibility: 'private', members: [] });
  const add = await c.http(1, 'POST', `/api/rooms/${priv}/members`, { token: c.token('perm-alice'), body: { user_id: 'perm-bob' } });
  assert.equal(add.status, 200, add.text);
  await bob.subscribe(`room.${priv}`);
  const dm = await bob.subscribe('dm.perm-alice');                         // rpc.persist.dm
  assert.match(dm.room_id, /^dm_/);
  const unread = await c.http(0, 'GET', '/api/me/unread', { token: c.token('perm-bob') });   // rpc.persist.unread
  assert.equal(unread.status, 200, unread.text);

  const api = (method, p, body) => c.http(0, method, p, { body, headers: { Authorization: `Bearer ${c.apiKey}` } });
  assert.equal((await api('POST', '/api/server/publish', { channel: ch, event: 'shipped', data: { n: 1 } })).status, 200);
  await bob.next((e) => e.event === 'shipped');                            // gateway -> natter.room (server API)
  assert.equal((await api('POST', '/api/server/notify', { user_ids: ['perm-bob'], data: { k: 1 } })).status, 200);
  await bob.next((e) => e.event === 'notification');                       // gateway -> natter.user
  const stats = await api('GET', '/api/server/stats');                     // rpc.router.stats
  assert.equal(stats.status, 200, stats.text);

  // A persister restart: the stream exists, the consumers are set up again.
  await c.restartProcess('persister');
  const ack4 = await alice.ack('send_message', ch, { message: 'after the restart', client_msg_id: 'p4' });
  await bob.next((e) => e.event === 'message' && e.data?.id === ack4.id);
  alice.close();
  bob.close();
  await sleep(300);

  // Nothing was refused, on either side.
  const logs = ['router', 'persister', 'gw1', 'gw2', 'nats'].map((n) => [n, fs.readFileSync(c.procs[n].logFile, 'utf8')]);
  for (const [n, log] of logs) {
    const bad = log.split('\n').filter((l) => VIOLATION.test(l));
    assert.deepEqual(bad, [], `${n}: no permissions violation`);
  }
});

test('the permissions hold: a process cannot act as another', async () => {
  const refused = async (who, line) => {
    const out = await natsAs(who, [line]);
    assert.ok(out.some((l) => VIOLATION.test(l)), `${who}: ${line.split('\r\n')[0]} refused; got ${JSON.stringify(out)}`);
  };
  await refused('router', pub('natter.in.default.0'));            // inject a message as any user
  await refused('router', pub('natter.rpc.persist.member_add'));
  await refused('persister', pub('natter.rpc.router.join'));
  await refused('persister', pub('natter.ctl.hb'));
  await refused('gateway', sub('natter.rpc.router.join'));        // answer joins in the router's place
  await refused('gateway', sub('natter.in.>'));
  await refused('gateway', pub('$JS.API.STREAM.DELETE.NATTER_IN'));
  await refused('router', sub('natter.room.>'));                  // read every room
  // and what each is meant to do is allowed
  for (const [who, line] of [['gateway', pub('natter.room.default.perm-nobody')], ['router', sub('natter.ctl.>')], ['persister', sub('natter.rpc.persist.>')]]) {
    const out = await natsAs(who, [line]);
    assert.ok(!out.some((l) => VIOLATION.test(l)), `${who}: ${line.split('\r\n')[0]} allowed; got ${JSON.stringify(out)}`);
  }
});
