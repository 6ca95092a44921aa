#!/usr/bin/env node
// Prints the deterministic transcripts of docs/PROTOCOL.md ("Peer
// transport", test vectors) as made by MyCHIPs's Noise library: the same
// packets, byte for byte, that Notch's snow-based code makes
// (notch_core::peer::vector::transcript, checked in core/tests/peer_noise.rs).
//
// Noise is randomized by its ephemeral keys; noise-protocol draws them from
// dh.generateKeypair, so this builds the handshake over a dh that hands out
// fixed keys instead. Output: {"ik": [hex packet, ...], "kk": [...]}, each
// packet with its frame-stream length prefix, in wire order: I (or N, K),
// A, T from the initiator, T from the responder.
'use strict'

const { crypto_scalarmult_base } = require('sodium-universal/crypto_scalarmult')
const realDh = require('noise-protocol/dh')()
const hash = require('noise-protocol/hash')({ dh: realDh })
const cipher = require('noise-protocol/cipher')()
const cipherState = require('noise-protocol/cipher-state')({ cipher })
const symmetricState = require('noise-protocol/symmetric-state')({ hash, cipherState })
const createHandshake = require('noise-protocol/handshake-state')
const P = require('./mychips.js')

const fill = byte => Buffer.alloc(32, byte).toString('base64url')
const Keys = {
  initiatorStatic: fill(0x11),
  responderStatic: fill(0x22),
  identifyEphemeral: Buffer.alloc(32, 0x33),
  initiatorEphemeral: Buffer.alloc(32, 0x44),
  responderEphemeral: Buffer.alloc(32, 0x55)
}

// A noise-protocol instance whose ephemeral keys come from `queue`.
function fixedNoise (queue) {
  const dh = Object.assign({}, realDh, {
    generateKeypair (pk, sk) {
      const next = queue.shift()
      if (!next) throw new Error('no fixed ephemeral key left')
      sk.set(next)
      crypto_scalarmult_base(pk, sk)
    }
  })
  return createHandshake({ dh, hash, cipher, cipherState, symmetricState })
}

const framed = packet => {
  const length = Buffer.alloc(4)
  length.writeUInt32BE(packet.length) // frame-stream's encoder
  return Buffer.concat([length, packet]).toString('hex')
}

function transcript (hello, first, answer) {
  const initiatorKeys = P.keysFromSecret(Keys.initiatorStatic)
  const responderKeys = P.keysFromSecret(Keys.responderStatic)
  hello.from.agent = P.agentOf(initiatorKeys)
  const firstContact = hello.action === 'ticket'
  const initiatorNoise = fixedNoise(firstContact
    ? [Keys.initiatorEphemeral]
    : [Keys.identifyEphemeral, Keys.initiatorEphemeral])
  const responderNoise = fixedNoise([Keys.responderEphemeral])

  const start = P.initiate(initiatorNoise, initiatorKeys, responderKeys.publicKey, hello)
  const out = start.packets.map(framed)
  const responder = new P.Responder(responderNoise, responderKeys)
  let reply
  for (const packet of start.packets) reply = responder.packet(packet).reply || reply
  out.push(framed(reply))
  const { split } = P.readHandshake(initiatorNoise, start.state, reply)
  out.push(framed(P.transportPacket(split, first)))
  out.push(framed(P.transportPacket(responder.split, answer)))
  return out
}

// Keys in sorted order: Notch's serde_json writes objects sorted, and the
// vector must be the same bytes from both.
const ik = transcript(
  { action: 'ticket', from: { agent: '', cid: 'alice' }, target: 'tally', ticket: { token: 'vector-token' } },
  { action: 'offer', object: { memo: 'vector' }, target: 'tally' },
  { action: 'open', target: 'tally' }
)
const kk = transcript(
  { action: 'pend', from: { agent: '', cid: 'alice' }, object: { units: 1500 }, target: 'chit' },
  { action: 'offer', object: { memo: 'vector' }, target: 'tally' },
  { action: 'open', target: 'tally' }
)
process.stdout.write(JSON.stringify({ ik, kk }, null, 1) + '\n')
