#!/usr/bin/env node
// Plays one MyCHIPs peer connection against a Notch agent, for
// tests/tests/mychips_noise.rs. Prints one JSON event per line on stdout and
// exits 0 when the exchange completed, non-zero (with an "error" event)
// otherwise.
//
//   node peer.js initiate --port P --remote AGENT [--host H] [--secret S] [--kind ik|kk]
//       Opens a connection to a Notch responder whose agent id (base64url
//       X25519 public key) is AGENT: a first contact with a ticket (ik) or a
//       reconnection (kk: N then KK). Then receives one message from Notch
//       and answers it.
//   node peer.js respond [--port P] [--secret S]
//       Listens (port 0 = any), prints {"event":"listening",...}, answers one
//       Notch initiator (I, or N then K), sends one message and waits for
//       Notch's answer.
//
// S is the raw X25519 secret in base64url (MyCHIPs's JWK "d"); a fresh key
// is made if it is missing. Events: listening, agent, hello, open, message,
// done, error.
'use strict'

const Net = require('net')
const P = require('./mychips.js')

const TimeoutMs = 10000

function args (argv) {
  const out = { mode: argv[0], host: '127.0.0.1', port: 0, kind: 'ik' }
  for (let i = 1; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '')
    out[name] = argv[i + 1]
  }
  out.port = Number(out.port)
  return out
}

const emit = event => process.stdout.write(JSON.stringify(event) + '\n')

function fail (message, code = 2) {
  emit({ event: 'error', error: message })
  process.exit(code)
}

function frame (socket) {
  const decode = socket.pipe(P.Frame.decode({ maxSize: 65536 }))
  const encode = P.Frame.encode()
  encode.pipe(socket)
  return { decode, encode }
}

function initiator (opt) {
  const keys = opt.secret ? P.keysFromSecret(opt.secret) : P.newKeys()
  emit({ event: 'agent', agent: P.agentOf(keys) })
  if (!opt.remote) fail('--remote AGENT is required')
  const message = opt.kind === 'kk'
    ? { target: 'chit', action: 'pend', object: { uuid: 'c-1', units: 1000 }, from: { cid: 'node-peer' } }
    : { target: 'tally', action: 'ticket', ticket: { token: 'interop-token' }, from: { cid: 'node-peer' } }
  let open = false
  let split = null
  let state = null
  const socket = Net.connect(opt.port, opt.host, () => {
    const { decode, encode } = frame(socket)
    const start = P.initiate(P.Noise, keys, P.keyOf(opt.remote), message)
    state = start.state
    for (const packet of start.packets) encode.write(packet)
    decode.on('data', packet => {
      try {
        if (!open) {
          const header = packet.subarray(0, 1).toString()
          if (header !== 'A') fail('expected an A packet, got ' + JSON.stringify(header))
          split = P.readHandshake(P.Noise, state, packet).split
          open = true
          emit({ event: 'open', kind: start.kind })
          return
        }
        const received = P.readTransport(split, packet)
        emit({ event: 'message', message: received })
        encode.write(P.transportPacket(split, { target: 'chit', action: 'good', object: { echo: received } }))
        emit({ event: 'done' })
        socket.end()
        setTimeout(() => process.exit(0), 50)
      } catch (e) {
        fail('protocol error: ' + e.message, 4)
      }
    })
    decode.on('error', e => fail('framing error: ' + e.message, 4))
  })
  socket.on('error', e => fail('socket error: ' + e.message))
  socket.on('close', () => {
    if (!open) fail('the connection closed before the handshake completed')
  })
}

function responder (opt) {
  const keys = opt.secret ? P.keysFromSecret(opt.secret) : P.newKeys()
  const server = Net.createServer(socket => {
    server.close() // one connection
    const { decode, encode } = frame(socket)
    const peer = new P.Responder(P.Noise, keys)
    let sent = false
    let finished = false
    decode.on('data', packet => {
      try {
        const got = peer.packet(packet)
        if (got.hello) emit({ event: 'hello', ...got.hello })
        if (got.reply) encode.write(got.reply)
        if (got.open && !sent) {
          sent = true
          emit({ event: 'open', kind: got.hello.kind })
          encode.write(P.transportPacket(peer.split, { target: 'tally', action: 'offer', object: { uuid: 't-1', comment: 'from node' } }))
        }
        if (got.message) {
          emit({ event: 'message', message: got.message })
          emit({ event: 'done' })
          finished = true
          socket.end()
          setTimeout(() => process.exit(0), 50)
        }
      } catch (e) {
        socket.destroy()
        fail('protocol error: ' + e.message, 4)
      }
    })
    decode.on('error', e => fail('framing error: ' + e.message, 4))
    socket.on('error', e => fail('socket error: ' + e.message))
    socket.on('close', () => {
      if (!finished) fail('the connection closed before the exchange completed')
    })
  })
  server.listen(opt.port, opt.host, () => {
    emit({ event: 'listening', port: server.address().port, agent: P.agentOf(keys) })
  })
}

const opt = args(process.argv.slice(2))
setTimeout(() => fail('timed out', 3), TimeoutMs).unref()
if (opt.mode === 'initiate') initiator(opt)
else if (opt.mode === 'respond') responder(opt)
else fail('usage: peer.js initiate|respond [--options]', 1)
