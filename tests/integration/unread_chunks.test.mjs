// unread_chunks.test.mjs — the persister flushes a cycle of dirty unread entries in
// chunks of NATTER_UNREAD_CHUNK (here 1) per query: every member still ends at the right
// count and total, and marks made while a cycle is being flushed go to the next cycle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom, waitUntil } from './lib/cluster.mjs';

const c = useCluster({ env: { NATTER_UNREAD_CHUNK: '1', NATTER_UNREAD_FLUSH_MS: '300' } });

// The newest count of each room and the newest total, from a client's unread events.
function unreadState(cl) {
  const rooms = {};
  let total = null;
  for (const e of cl.all((x) => x.event === 'unread')) {
    Object.assign(rooms, e.data.rooms);
    total = e.data.total;
  }
  return { rooms, total };
}

test('chunked unread flush: every member of several rooms ends at the right counts and total',
  { timeout: 120_000 }, async () => {
    const rooms = [uniqueRoom('uc'), uniqueRoom('uc'), uniqueRoom('uc')];
    const users = ['uca', 'ucb', 'ucc', 'ucd'];
    const cl = {};
    for (const [k, u] of users.entries()) {
      cl[u] = await c.client(k % 2, u);
      for (const r of rooms) await cl[u].subscribe(`room.${r}`);
    }
    // uca sends 1, 2, 3 messages to the three rooms, in two waves a flush apart.
    const send = (r, k) => cl.uca.ack('send_message', `room.${r}`, { message: `m${k}`, client_msg_id: `${r}-${k}` });
    for (const [i, r] of rooms.entries()) await send(r, 0);
    await new Promise((res) => setTimeout(res, 400));
    for (const [i, r] of rooms.entries()) for (let k = 1; k <= i; k++) await send(r, k);

    const want = { [rooms[0]]: 1, [rooms[1]]: 2, [rooms[2]]: 3 };
    for (const u of ['ucb', 'ucc', 'ucd']) {
      await waitUntil(() => {
        const s = unreadState(cl[u]);
        return rooms.every((r) => s.rooms[r] === want[r]) && s.total === 6;
      }, { what: `${u}: unread ${JSON.stringify(want)}, total 6 (has ${JSON.stringify(unreadState(cl[u]))})` });
      // a chunk holds one dirty room, so no event names more than one room of this cycle
      for (const e of cl[u].all((x) => x.event === 'unread')) assert.ok(Object.keys(e.data.rooms).length <= 1);
    }
    // the sender's own messages are read by sending them: nothing unread for uca
    const a = unreadState(cl.uca);
    for (const r of rooms) assert.ok(!a.rooms[r], `uca has nothing unread in ${r}: ${JSON.stringify(a)}`);
    for (const u of users) cl[u].close();
  });
