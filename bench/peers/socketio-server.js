// socketio-server.js: the Socket.IO 4 + Redis adapter peer of natter's benchmark.
// Usage: node socketio-server.js <port> <redis-url>. Several processes sharing one Redis
// form one cluster: io.to(room).emit reaches the room's sockets on every process.
// Protocol used by natter-bench: emit("join", room, ack) joins a room and acks "ok";
// emit("chat", {room, m}) broadcasts the same object to the room (sender included).
'use strict';
const http = require('node:http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

const port = Number(process.argv[2] || 3000);
const redisUrl = process.argv[3] || 'redis://127.0.0.1:6379';

async function main() {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  pub.on('error', (e) => console.error('redis pub:', e.message));
  sub.on('error', (e) => console.error('redis sub:', e.message));
  await Promise.all([pub.connect(), sub.connect()]);

  const server = http.createServer((req, res) => {
    if (req.url === '/healthz') { res.writeHead(200); res.end('ok'); return; }
    res.writeHead(404); res.end();
  });
  const io = new Server(server, { transports: ['websocket'], perMessageDeflate: false, adapter: createAdapter(pub, sub) });
  io.on('connection', (socket) => {
    socket.on('join', (room, ack) => { socket.join(String(room)); if (typeof ack === 'function') ack('ok'); });
    socket.on('chat', (msg) => { if (msg && msg.room) io.to(String(msg.room)).emit('chat', msg); });
  });
  server.listen(port, '127.0.0.1', () => console.log(`socketio peer on 127.0.0.1:${port}, redis ${redisUrl}`));
  const stop = () => { io.close(); Promise.allSettled([pub.quit(), sub.quit()]).finally(() => process.exit(0)); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => { console.error(e); process.exit(1); });
