// rate_limits.test.mjs — issue #18: one client can cost a room, a gateway or a tenant no
// more than its rate limits allow. Typing and presence floods reach watchers at the
// documented rates (latest state winning), sends, subscribes, room creation and requests in
// flight are refused with rate_limited (naming the limit, data.retry_after_ms), per
// connection and per user, and a client that keeps being refused is closed with 4029.
// Runs with the product's default limits (rateLimits: true) except where env says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom, sleep, waitUntil } from './lib/cluster.mjs';

const c = useCluster({
  rateLimits: true,
  env: { NATTER_ABUSE_REFUSALS: '1/s:60' },       // each user below stays under 60 refusals but the last
});

const isTyping = (user) => (e) => e.event === 'typing' && e.data?.user_id === user;
const isPresence = (user) => (e) => e.event === 'presence' && e.data?.user_id === user;

function assertLimited(ev, setting, what) {
  assert.equal(ev.event, 'error', `${what}: ${JSON.stringify(ev)}`);
  assert.equal(ev.data.code, 'rate_limited', `${what}: ${JSON.stringify(ev)}`);
  assert.ok(ev.data.message.includes(setting), `${what}: the message names ${setting}: ${ev.data.message}`);
  assert.ok(Number.isInteger(ev.data.retry_after_ms) && ev.data.retry_after_ms > 0, `${what}: retry_after_ms ${JSON.stringify(ev.data)}`);
}

test('400 alternating typing frames reach a watcher as at most one change a second, the last state winning', { timeout: 60_000 }, async () => {
  const ch = `room.${uniqueRoom('rl')}`;
  const typer = await c.client(0, 'rl_typer');
  const watch = await c.client(1, 'rl_tw');
  await typer.subscribe(ch);
  await watch.subscribe(ch);
  const t0 = Date.now();
  for (let i = 0; i < 400; i++) typer.send({ action: 'typing', channel: ch, data: { is_typing: i % 2 === 0 } });
  typer.send({ action: 'typing', channel: ch, data: { is_typing: true }, ref: 'last' });
  await typer.next((e) => e.ref === 'last', 15_000);
  await sleep(2500 - (Date.now() - t0));
  const got = watch.all(isTyping('rl_typer'));
  assert.ok(got.length >= 1 && got.length <= 3, `${got.length} typing events for 401 frames: ${JSON.stringify(got.map((e) => e.data.is_typing))}`);
  assert.equal(got.at(-1).data.is_typing, true, 'the latest state (typing) is what the watcher ends with');
  typer.close(); watch.close();
});

test('400 presence changes reach a watcher as at most one a second, the last one winning', { timeout: 60_000 }, async () => {
  const ch = `room.${uniqueRoom('rl')}`;
  const p = await c.client(0, 'rl_pres');
  const watch = await c.client(1, 'rl_pw');
  await p.subscribe(ch);
  await watch.subscribe(ch);
  await sleep(600);                                 // its own coming online, announced lazily
  const before = watch.all(isPresence('rl_pres')).length;
  const statuses = ['away', 'busy', 'online'];
  for (let i = 0; i < 400; i++) p.send({ action: 'presence', data: { status: statuses[i % 3] } });
  p.send({ action: 'presence', data: { status: 'busy', status_text: 'final' }, ref: 'last' });
  assert.equal((await p.next((e) => e.ref === 'last', 15_000)).event, 'ack');
  await waitUntil(() => watch.all(isPresence('rl_pres')).some((e) => e.data.status_text === 'final'),
    { timeoutMs: 5000, what: 'the final presence change' });
  await sleep(1500);
  const got = watch.all(isPresence('rl_pres')).slice(before);
  assert.ok(got.length >= 1 && got.length <= 3, `${got.length} presence events for 401 changes`);
  assert.equal(got.at(-1).data.status, 'busy');
  assert.equal(got.at(-1).data.status_text, 'final');
  p.close(); watch.close();
});

test('sends over NATTER_RATE_SENDS (10/s, burst 30) are rate_limited and not stored', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('rl');
  const s = await c.client(0, 'rl_sender');
  await s.subscribe(`room.${room}`);
  const replies = await Promise.all(Array.from({ length: 50 }, (_, i) =>
    s.request('send_message', `room.${room}`, { message: `m${i}`, client_msg_id: `rl-${room}-${i}` })));
  const acked = replies.filter((r) => r.event === 'ack');
  const refused = replies.filter((r) => r.event === 'error');
  assert.ok(acked.length >= 30 && acked.length <= 32, `${acked.length} of 50 accepted`);
  assert.equal(acked.length + refused.length, 50);
  for (const r of refused) assertLimited(r, 'NATTER_RATE_SENDS', 'a send past the burst');
  const rows = await c.query('SELECT count(*)::int AS n FROM messages WHERE app = $1 AND room = $2', ['default', room]);
  assert.equal(rows[0].n, acked.length, 'refused sends stored nothing');
  // After the advised wait the connection may send again.
  await sleep(Math.max(...refused.map((r) => r.data.retry_after_ms)));
  await s.ack('send_message', `room.${room}`, { message: 'after the wait' });
  s.close();
});

test('one user over three connections is held to NATTER_RATE_USER_SENDS (20/s, burst 60) together', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('rl');
  const conns = await Promise.all([0, 0, 0].map((g) => c.client(g, 'rl_multi')));
  for (const x of conns) await x.subscribe(`room.${room}`);
  const replies = (await Promise.all(conns.map((x, k) => Promise.all(Array.from({ length: 28 }, (_, i) =>
    x.request('send_message', `room.${room}`, { message: `m${k}-${i}` })))))).flat();
  // 84 sends on one gateway, each connection within its own burst of 30: the user's
  // bucket there (burst 60) refuses the rest.
  const refused = replies.filter((r) => r.event === 'error');
  assert.ok(refused.length >= 1, 'some sends refused by the per-user limit');
  for (const r of refused) assertLimited(r, 'NATTER_RATE_USER_SENDS', 'a send past the user burst');
  for (const x of conns) x.close();
});

test('subscribes, room creation and requests in flight are limited too', { timeout: 60_000 }, async () => {
  const u = await c.client(0, 'rl_many');
  // NATTER_RATE_SUBSCRIBES 10/s, burst 50: 60 at once, the last ones refused.
  const subs = [];
  for (let i = 0; i < 60; i++) {
    subs.push(await u.request('subscribe', `room.${uniqueRoom('rls')}`, {}));   // one at a time: in flight stays 1
  }
  const limited = subs.filter((r) => r.event === 'error');
  assert.ok(limited.length >= 5 && limited.length <= 12, `${limited.length} of 60 subscribes refused`);
  for (const r of limited) assertLimited(r, 'NATTER_RATE_SUBSCRIBES', 'a subscribe past the burst');

  // NATTER_MAX_REQUESTS_PER_CONN 16: with the persister stopped no history request is
  // answered, so of 20 sent at once the last 4 are refused at once.
  const room = subs.findIndex((r) => r.event === 'ack');
  const ch = `room.${subs[room].data.room_id}`;
  process.kill(c.procs.persister.pid, 'SIGSTOP');
  let answers;
  try {
    const pending = Array.from({ length: 20 }, () => u.request('history', ch, {}, { timeoutMs: 30_000 }));
    const early = await Promise.race([Promise.all(pending.slice(16)), sleep(5000).then(() => null)]);
    assert.ok(early, 'the four requests over the bound were answered while the store was stopped');
    for (const r of early) assertLimited(r, 'NATTER_MAX_REQUESTS_PER_CONN', 'a request over the bound');
    process.kill(c.procs.persister.pid, 'SIGCONT');
    answers = await Promise.all(pending.slice(0, 16));
  } finally {
    process.kill(c.procs.persister.pid, 'SIGCONT');
  }
  assert.ok(answers.every((r) => r.event === 'ack' || r.data?.code === 'unavailable'), JSON.stringify(answers.find((r) => r.event !== 'ack')));
  await u.ack('history', ch, {});                            // the bound frees as answers come

  // NATTER_RATE_CREATE_ROOMS 10/min, burst 5: the sixth in a row is refused.
  const creates = [];
  for (let i = 0; i < 6; i++) creates.push(await u.request('create_room', undefined, { visibility: 'public' }));
  assert.equal(creates.filter((r) => r.event === 'ack').length, 5);
  assertLimited(creates[5], 'NATTER_RATE_CREATE_ROOMS', 'the sixth create_room');
  u.close();
});

test('a client that keeps being refused is closed with 4029', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('rl');
  const s = await c.client(1, 'rl_abuser');
  await s.subscribe(`room.${room}`);
  // 30 are accepted, then each chunk's sends are refused until the 61st refusal closes
  // the connection. (Chunks, each waited for: a close while a flood is still unread on
  // the socket makes the kernel reset it, and the client sees 1006 instead of the code.)
  let refusals = 0;
  for (let chunk = 0; chunk < 10 && s.isOpen; chunk++) {
    const replies = await Promise.allSettled(Array.from({ length: 20 }, (_, i) =>
      s.request('send_message', `room.${room}`, { message: `x${chunk}-${i}` }, { timeoutMs: 10_000 })));
    refusals += replies.filter((r) => r.status === 'fulfilled' && r.value.event === 'error').length;
  }
  assert.ok(refusals >= 40, `${refusals} refusals answered before the close`);
  const closed = await s.waitClose(20_000);
  assert.equal(closed.code, 4029, JSON.stringify(closed));
  // The gateway and everyone else are unaffected.
  const other = await c.client(1, 'rl_bystander');
  await other.subscribe(`room.${room}`);
  await other.ack('send_message', `room.${room}`, { message: 'still here' });
  other.close();
});
