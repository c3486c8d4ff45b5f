// cmid_conflict.test.mjs — a client_msg_id reused for another message (another room, or
// the same room with another text) is refused with `conflict` naming the first message,
// and nothing is stored; a true resend (same room, same text) still gets the first ack.
// Each of the three places a resend can meet the first copy: still awaiting its ack on
// the gateway, inside JetStream's duplicate window (the lookup), and after it (the
// persister's unique key; a cluster with a 1 s window).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom, sleep } from './lib/cluster.mjs';

const c = useCluster();
const shortWindow = useCluster({ name: 'cmid_conflict_window', env: { NATTER_JS_DUPLICATE_WINDOW_S: '1' } });

async function setup(cl, tag) {
  const a = uniqueRoom(`${tag}a`), b = uniqueRoom(`${tag}b`);
  const alice = await cl.client(0, `${a}_alice`);
  await alice.subscribe(`room.${a}`);
  await alice.subscribe(`room.${b}`);
  return { alice, a, b };
}

async function stored(cl, rooms) {
  return (await cl.query('SELECT room, seq, body FROM messages WHERE room = ANY($1) ORDER BY room, seq', [rooms]))
    .map((r) => `${r.room}:${r.seq}:${r.body}`);
}

function assertConflict(ev, first) {
  assert.equal(ev.event, 'error', JSON.stringify(ev));
  assert.equal(ev.data.code, 'conflict');
  if (first) assert.match(ev.data.message, new RegExp(first.id), 'the error names the first message');
}

for (const [label, cluster, wait] of [['within JetStream\'s duplicate window', c, 0],
  ['after JetStream\'s duplicate window', shortWindow, 2500]]) {
  test(`a reused client_msg_id ${label}: another room or text is a conflict, a resend gets its ack`,
    { timeout: 60_000 }, async () => {
      const { alice, a, b } = await setup(cluster, wait ? 'w' : 'j');
      const first = await alice.ack('send_message', `room.${a}`, { message: 'hello', client_msg_id: 'x1' });
      if (wait) await sleep(wait);
      assertConflict(await alice.request('send_message', `room.${b}`, { message: 'hello', client_msg_id: 'x1' }), first);
      assertConflict(await alice.request('send_message', `room.${a}`, { message: 'other', client_msg_id: 'x1' }), first);
      const again = await alice.ack('send_message', `room.${a}`, { message: 'hello', client_msg_id: 'x1' });
      assert.deepEqual(again, first, 'a true resend is answered with the first ack');
      assert.deepEqual(await stored(cluster, [a, b]), [`${a}:1:hello`]);
      await alice.close();
    });
}

test('a client_msg_id awaiting its ack, sent again with another text, is a conflict at once',
  { timeout: 60_000 }, async () => {
    const { alice, a } = await setup(c, 'p');
    const ch = `room.${a}`;
    const one = alice.request('send_message', ch, { message: 'first', client_msg_id: 'p1' });
    const two = alice.request('send_message', ch, { message: 'second', client_msg_id: 'p1' });
    const three = alice.request('send_message', ch, { message: 'first', client_msg_id: 'p1' });
    const [r1, r2, r3] = await Promise.all([one, two, three]);
    assert.equal(r1.event, 'ack');
    assertConflict(r2);
    assert.deepEqual(r3, { ...r1, ref: r3.ref }, 'the resend with the same text gets the same ack');
    assert.deepEqual(await stored(c, [a]), [`${a}:1:first`]);
    await alice.close();
  });
