// access_code_limit.test.mjs — issue #18: wrong access codes are limited in the router
// (Redis), per (app, room, user) and per room across users, so a short code cannot be
// brute-forced: past NATTER_ACCESS_CODE_ATTEMPTS wrong codes a user's joins with a code
// are rate_limited (data.retry_after_ms, through either gateway, even with the right
// code, which is then not checked), the lock doubles with each further failure, the
// right code after it resets the count; NATTER_ACCESS_CODE_ROOM_ATTEMPTS wrong codes
// from all users lock the room's code for everyone, while members still join.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom, sleep } from './lib/cluster.mjs';

const ATTEMPTS = 5;
const ROOM_ATTEMPTS = 12;        // above the 11 wrong codes the first test sends to its room
const BACKOFF_S = 2;
const WINDOW_S = 30;
const c = useCluster({
  env: {
    NATTER_ACCESS_CODE_ATTEMPTS: String(ATTEMPTS),
    NATTER_ACCESS_CODE_ROOM_ATTEMPTS: String(ROOM_ATTEMPTS),
    NATTER_ACCESS_CODE_BACKOFF_S: String(BACKOFF_S),
    NATTER_ACCESS_CODE_WINDOW_S: String(WINDOW_S),
  },
});

const CODE = 'blue-42';
const WRONG = { code: 'forbidden', message: 'wrong access code' };

async function privateRoom(prefix, owner, members = []) {
  const room = uniqueRoom(prefix);
  const r = await c.http(0, 'POST', '/api/rooms', { token: c.token(owner), body: { room_id: room, visibility: 'private', access_code: CODE, members } });
  assert.equal(r.status, 201, r.text);
  return room;
}

const errorOf = async (cl, ch, code) => {
  const ev = await cl.request('subscribe', ch, { access_code: code });
  assert.equal(ev.event, 'error', `subscribe ${ch} with ${code}: expected an error, got ${JSON.stringify(ev)}`);
  return ev.data;
};

function assertLocked(data, room, setting, what) {
  assert.equal(data.code, 'rate_limited', `${what}: ${JSON.stringify(data)}`);
  assert.ok(data.message.includes(setting), `${what}: the message names ${setting}: ${data.message}`);
  assert.ok(data.message.includes(`room ${room}`), `${what}: the message names the room: ${data.message}`);
  assert.match(data.message, /retry in \d+ s/, what);
  assert.ok(Number.isInteger(data.retry_after_ms) && data.retry_after_ms > 0, `${what}: retry_after_ms ${JSON.stringify(data)}`);
}

const isMember = async (room, user) =>
  (await c.query('SELECT 1 FROM members WHERE room = $1 AND user_id = $2', [room, user])).length === 1;

test('per user: 5 wrong codes lock the user (both gateways, even the right code), with doubling backoff; the right code after it resets', { timeout: 90_000 }, async () => {
  const room = await privateRoom('acl', 'acl-owner');
  const ch = `room.${room}`;
  const failures0 = await c.metric('router', 'natter_router_access_code_failures_total');
  const locked0 = await c.metric('router', 'natter_router_access_code_locked_total');
  const guess = await c.client(0, 'acl-guess');
  const guess2 = await c.client(1, 'acl-guess');
  const other = await c.client(1, 'acl-other');

  for (let i = 0; i < ATTEMPTS; i++) assert.deepEqual(await errorOf(i % 2 ? guess2 : guess, ch, `nope-${i}`), WRONG, `attempt ${i + 1}`);

  // the 6th: refused before any check, the right code too, through either gateway
  const first = await errorOf(guess, ch, CODE);
  assertLocked(first, room, 'NATTER_ACCESS_CODE_ATTEMPTS', 'right code while locked');
  assert.ok(first.retry_after_ms <= BACKOFF_S * 1000, `first lock is ${BACKOFF_S} s: ${first.retry_after_ms}`);
  assertLocked(await errorOf(guess2, ch, CODE), room, 'NATTER_ACCESS_CODE_ATTEMPTS', 'other gateway');
  assertLocked(await errorOf(guess2, ch, 'nope-x'), room, 'NATTER_ACCESS_CODE_ATTEMPTS', 'wrong code while locked');
  assert.equal(await isMember(room, 'acl-guess'), false, 'a refused right code admits nobody');
  assert.equal(await c.metric('router', 'natter_router_access_code_failures_total') - failures0, ATTEMPTS);
  assert.equal(await c.metric('router', 'natter_router_access_code_locked_total') - locked0, 3);

  // another user of the same room is not locked: a wrong code is checked, the right one admits
  assert.deepEqual(await errorOf(other, ch, 'nope-o'), WRONG);
  assert.equal((await other.subscribe(ch, { access_code: CODE })).room_id, room);

  // after the lock, a 6th wrong code is checked again and locks for twice as long
  await sleep(first.retry_after_ms + 200);
  assert.deepEqual(await errorOf(guess, ch, 'nope-5'), WRONG, 'checked again after the lock');
  const second = await errorOf(guess2, ch, CODE);
  assertLocked(second, room, 'NATTER_ACCESS_CODE_ATTEMPTS', 'second lock');
  assert.ok(second.retry_after_ms > BACKOFF_S * 1000 && second.retry_after_ms <= 2 * BACKOFF_S * 1000,
    `the second lock doubles to ${2 * BACKOFF_S} s: ${second.retry_after_ms}`);

  // after it, the right code admits and resets the count: once no longer a member,
  // the user again has ATTEMPTS - 1 wrong codes checked without a lock
  await sleep(second.retry_after_ms + 200);
  assert.equal((await guess.subscribe(ch, { access_code: CODE })).room_id, room);
  assert.equal(await isMember(room, 'acl-guess'), true);
  await guess.ack('leave', ch);
  assert.equal(await isMember(room, 'acl-guess'), false);
  for (let i = 0; i < ATTEMPTS - 1; i++) assert.deepEqual(await errorOf(guess2, ch, `again-${i}`), WRONG, `after the reset, attempt ${i + 1}`);

  // joins without a code are never limited
  const owner = await c.client(0, 'acl-owner');
  assert.equal((await owner.subscribe(ch)).room_id, room);
});

test('parallel wrong codes through both gateways: exactly ATTEMPTS are checked', { timeout: 60_000 }, async () => {
  const room = await privateRoom('acp', 'acp-owner');
  const ch = `room.${room}`;
  const a = await c.client(0, 'acp-guess');
  const b = await c.client(1, 'acp-guess');
  const replies = await Promise.all(Array.from({ length: 2 * ATTEMPTS + 4 }, (_, i) =>
    (i % 2 ? b : a).request('subscribe', ch, { access_code: `par-${i}` })));
  const wrong = replies.filter((e) => e.event === 'error' && e.data.message === WRONG.message);
  const limited = replies.filter((e) => e.event === 'error' && e.data.code === 'rate_limited');
  assert.equal(wrong.length, ATTEMPTS, JSON.stringify(replies.map((e) => e.data)));
  assert.equal(limited.length, replies.length - ATTEMPTS, JSON.stringify(replies.map((e) => e.data)));
  for (const e of limited) assertLocked(e.data, room, 'NATTER_ACCESS_CODE_ATTEMPTS', 'parallel');
});

test('per room: wrong codes from many users lock the code for a new user too; members still join', { timeout: 60_000 }, async () => {
  const room = await privateRoom('acr', 'acr-owner', ['acr-member']);
  const ch = `room.${room}`;
  const guessers = await Promise.all([1, 2, 3, 4].map((i) => c.client(i % 2, `acr-g${i}`)));
  const perUser = ROOM_ATTEMPTS / guessers.length;          // 3: each user stays under ATTEMPTS
  const newcomer = await c.client(1, 'acr-new');
  const owner = await c.client(0, 'acr-owner');
  const member = await c.client(1, 'acr-member');

  for (let i = 0; i < perUser; i++) {
    for (const [k, g] of guessers.entries()) assert.deepEqual(await errorOf(g, ch, `g${k}-${i}`), WRONG, `user ${k} attempt ${i + 1}`);
  }
  const refused = await errorOf(newcomer, ch, CODE);
  assertLocked(refused, room, 'NATTER_ACCESS_CODE_ROOM_ATTEMPTS', 'a new user with the right code');
  assertLocked(await errorOf(guessers[0], ch, CODE), room, 'NATTER_ACCESS_CODE_ROOM_ATTEMPTS', 'a guesser under its own limit');
  // members are admitted while the room is locked, even one who sends the code
  assert.equal((await owner.subscribe(ch, { access_code: CODE })).room_id, room);
  assert.equal((await member.subscribe(ch)).room_id, room);
  assertLocked(await errorOf(newcomer, ch, CODE), room, 'NATTER_ACCESS_CODE_ROOM_ATTEMPTS', 'still locked');
  assert.equal(await isMember(room, 'acr-new'), false);

  await sleep(refused.retry_after_ms + 200);
  assert.equal((await newcomer.subscribe(ch, { access_code: CODE })).room_id, room);
  assert.equal(await isMember(room, 'acr-new'), true);
});
