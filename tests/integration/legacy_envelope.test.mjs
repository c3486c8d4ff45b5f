// legacy_envelope.test.mjs — frames of the older envelope keep working (docs/protocol.md):
// send_message + chat_message is a message, user_action/typing is typing, and
// system_request get_online_users / join_private_room are answered with
// {"event":"system_response","data":{"request_id":…}}.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, uniqueRoom } from './lib/cluster.mjs';

const c = useCluster();

test('chat_message, user_action typing and system_request work in the older envelope', { timeout: 60_000 }, async () => {
  const room = uniqueRoom('legacy');
  const alice = await c.client(0, 'alice');
  const bob = await c.client(1, 'bob');
  await alice.subscribe(`room.${room}`);
  await bob.subscribe(`room.${room}`);

  // chat_message on an alias channel, without a ref: a message to the room.
  alice.send({ action: 'send_message', channel: `chat.room.${room}`, event: 'chat_message', data: { message: 'old style' } });
  const msg = await bob.next((e) => e.event === 'message' && e.data.message === 'old style');
  assert.equal(msg.data.sender_id, 'alice');
  assert.equal(msg.data.room_id, room);

  // user_action typing: the other user sees typing.
  alice.send({ action: 'send_message', channel: `chat.${room}`, event: 'user_action', data: { action: 'typing' } });
  const typing = await bob.next((e) => e.event === 'typing' && e.data.user_id === 'alice');
  assert.equal(typing.data.is_typing, true);
  assert.equal(typing.data.room_id, room);

  // system_request get_online_users: a system_response with the request_id and both users.
  alice.send({ action: 'send_message', channel: `chat.room.${room}`, event: 'system_request',
    data: { request: 'get_online_users', request_id: 'q-1' } });
  const online = await alice.next((e) => e.event === 'system_response' && e.data.request_id === 'q-1');
  assert.deepEqual(online.data.users.map((u) => u.user_id).sort(), ['alice', 'bob']);

  // join_private_room: wrong code refused in a system_response, right code admits.
  const vip = uniqueRoom('vip');
  await alice.ack('create_room', undefined, { room_id: vip, visibility: 'private', access_code: 'open-sesame' });
  const carol = await c.client(1, 'carol');
  carol.send({ action: 'send_message', event: 'system_request',
    data: { request: 'join_private_room', room_id: vip, access_code: 'wrong-code', request_id: 7 } });
  const refused = await carol.next((e) => e.event === 'system_response' && e.data.request_id === 7);
  assert.equal(refused.data.error.code, 'forbidden');
  carol.send({ action: 'send_message', event: 'system_request',
    data: { request: 'join_private_room', room_id: vip, access_code: 'open-sesame', request_id: 8 } });
  const joined = await carol.next((e) => e.event === 'system_response' && e.data.request_id === 8);
  assert.equal(joined.data.error, undefined, JSON.stringify(joined));
  assert.equal(joined.data.room_id, vip);

  // An unknown system_request names itself.
  carol.send({ action: 'send_message', event: 'system_request', data: { request: 'reboot', request_id: 9 } });
  const unknown = await carol.next((e) => e.event === 'system_response' && e.data.request_id === 9);
  assert.equal(unknown.data.error.code, 'bad_request');
  assert.match(unknown.data.error.message, /reboot/);
});
