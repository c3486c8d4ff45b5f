// outbox.test.mjs — a message committed just before the persister's NATS connection
// broke, whose JetStream ack got through but whose room event and ack did not, still
// reaches every receiver and its sender once the persister is back: the persister keeps
// an outbox marker (what a bus barrier confirmed published) and, after a reconnect with
// publishes unconfirmed, sets its consumer up again from it, so JetStream redelivers
// the message and the duplicate path publishes it again (docs/reliability.md).
//
// The persister reaches nats-server through a proxy of this test that reads the NATS
// protocol it forwards: once armed, it forwards up to and including the first
// JetStream ack (PUB $JS.ACK…), then drops everything the persister sends, until the
// test breaks the connection. A row lock held in PostgreSQL makes the commit wait
// until the proxy is armed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pg from 'pg';
import { useCluster, freePorts, uniqueRoom, waitUntil, sleep } from './lib/cluster.mjs';

const [proxyPort] = await freePorts(1);
const links = new Set();
let armed = false;            // drop what follows the next JetStream ack
let dropped = 0;              // bytes dropped
const proxy = net.createServer((down) => {
  const up = net.connect(c.cluster.ports.nats, '127.0.0.1');
  const link = { down, up, dropping: false, pending: '' };
  links.add(link);
  for (const s of [down, up]) s.on('error', () => {});
  up.pipe(down);
  down.on('data', (d) => {
    if (link.dropping) { dropped += d.length; return; }
    if (!armed) { up.write(d); return; }
    // armed: forward whole protocol lines up to the first "PUB $JS.ACK." and its payload
    link.pending += d.toString('latin1');
    for (;;) {
      const eol = link.pending.indexOf('\r\n');
      if (eol < 0) return;
      const line = link.pending.slice(0, eol);
      if (line.startsWith('PUB $JS.ACK.')) {
        const size = Number(line.split(' ').at(-1));
        const end = eol + 2 + size + 2;
        if (link.pending.length < end) return;
        up.write(Buffer.from(link.pending.slice(0, end), 'latin1'));
        dropped += link.pending.length - end;
        link.pending = '';
        link.dropping = true;
        armed = false;
        return;
      }
      up.write(Buffer.from(link.pending.slice(0, eol + 2), 'latin1'));
      link.pending = link.pending.slice(eol + 2);
    }
  });
  const close = () => { links.delete(link); down.destroy(); up.destroy(); };
  down.on('close', close);
  up.on('close', close);
}).listen(proxyPort, '127.0.0.1');
after(() => { for (const l of links) { l.down.destroy(); l.up.destroy(); } proxy.close(); });

const c = useCluster({
  env: { NATTER_LOG_LEVEL: 'info' },
  procEnv: { persister: { NATTER_NATS_URL: `nats://127.0.0.1:${proxyPort}` } },
});

test('a message whose events were lost with the persister\'s connection after its JetStream ack is published again',
  { timeout: 120_000 }, async () => {
    const room = uniqueRoom('ob');
    const ch = `room.${room}`;
    const alice = await c.client(0, `${room}_alice`);
    const bob = await c.client(1, `${room}_bob`);
    await alice.subscribe(ch);
    await bob.subscribe(ch);
    await alice.ack('send_message', ch, { message: 'o1', client_msg_id: 'o1' });
    await bob.next((e) => e.event === 'message' && e.data.seq === 1);

    // The room's row locked: the persister's commit of o2 waits for the test.
    const lock = new pg.Client({ connectionString: c.pgUrl });
    await lock.connect();
    await lock.query('BEGIN');
    await lock.query("SELECT 1 FROM rooms WHERE app = 'default' AND room = $1 FOR UPDATE", [room]);
    const reply = alice.request('send_message', ch, { message: 'o2', client_msg_id: 'o2' }, { timeoutMs: 90_000 });
    await waitUntil(async () => (await c.query(
      "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%natter_post_batch%'")).length > 0,
    { timeoutMs: 15_000, what: 'the persister waiting on the lock' });
    armed = true;
    await lock.query('COMMIT');
    await lock.end();
    await waitUntil(async () => (await c.query('SELECT 1 FROM messages WHERE room = $1 AND seq = 2', [room])).length === 1,
      { timeoutMs: 15_000, what: 'o2 committed' });
    await waitUntil(() => dropped > 0, { timeoutMs: 10_000, what: 'the proxy dropping the publishes after the ack' });
    await sleep(300);
    assert.equal(bob.messages(room).length, 1, 'o2\'s event did not reach nats-server');

    for (const l of links) { l.down.destroy(); l.up.destroy(); }      // the connection breaks
    const got = await bob.next((e) => e.event === 'message' && e.data.seq === 2, 30_000);
    assert.equal(got.data.message, 'o2');
    const ev = await reply;
    assert.equal(ev.event, 'ack', JSON.stringify(ev));
    assert.equal(ev.data.seq, 2);
    await sleep(500);
    assert.deepEqual(bob.messages(room).map((e) => e.data.seq), [1, 2], 'each once');
    assert.deepEqual(alice.messages(room).map((e) => e.data.seq), [1, 2]);
    await Promise.all([alice.close(), bob.close()]);
  });
