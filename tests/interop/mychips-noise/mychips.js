// The MyCHIPs peer wire format, written against the same libraries MyCHIPs
// uses (noise-protocol for Noise, frame-stream for framing), so Notch's Rust
// transport can be tested against them. Follows gotchoices/MyCHIPs
// lib/peernoise.js and lib/noisewrap.js; see docs/PROTOCOL.md in Notch.
//
// Wire: frame-stream packet = u32 big-endian length (of what follows), then
// one ASCII header byte, then one Noise message:
//   I  Noise_IK msg 1 (first contact, payload = JSON ticket message)
//   N  Noise_N  msg   (payload = JSON string of the initiator's agent id)
//   K  Noise_KK msg 1 (payload = JSON message)
//   A  msg 2 of IK/KK (empty payload)
//   T  transport message (JSON)
'use strict'

const Crypto = require('crypto')
const Noise = require('noise-protocol')
const cipher = require('noise-protocol/cipher')()
const cipherState = require('noise-protocol/cipher-state')({ cipher })
const Frame = require('frame-stream')

const Prologue = Buffer.alloc(0) // noisewrap.js: prolog = Buffer.alloc(0)
// Room for e, s (encrypted) and two tags around a payload. MyCHIPs's current
// noisewrap.js reserves (PKLEN * 2) + MACLEN + 1, which is 16 bytes short of
// an IK first message (noise-protocol then throws "output buffer must be at
// least plaintext plus MACLEN bytes long"); its earlier version reserved
// (PKLEN + MACLEN) * 2 + 1, which fits, and is used here.
const BufferAdd = (Noise.PKLEN + cipherState.MACLEN) * 2 + 1

// An X25519 key pair from its raw secret (base64url), the way MyCHIPs's
// bin/agentkey makes agent keys with Node's crypto: the agent id is the
// JWK "x", the Noise secret is the JWK "d".
function keysFromSecret (secretB64) {
  const secret = Buffer.from(secretB64, 'base64url')
  if (secret.length !== 32) throw new Error('an X25519 secret is 32 bytes')
  const der = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), secret])
  const priv = Crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
  const jwk = priv.export({ format: 'jwk' })
  return {
    publicKey: Buffer.from(jwk.x, 'base64url'),
    secretKey: Buffer.from(jwk.d, 'base64url')
  }
}

function newKeys () {
  const { privateKey } = Crypto.generateKeyPairSync('x25519')
  const jwk = privateKey.export({ format: 'jwk' })
  return keysFromSecret(jwk.d)
}

// peernoise.js: this.agent = Buffer.from(this.keys.publicKey).toString('base64url')
const agentOf = keys => Buffer.from(keys.publicKey).toString('base64url')

// peernoise.js setPeerInfo: Buffer.from(agent, 'base64url')
const keyOf = agent => Buffer.from(agent, 'base64url')

// spewNoise/initiate: header byte, then the Noise message.
function handshakePacket (noise, state, header, payload) {
  const messageBuf = Buffer.from(payload)
  const packetBuf = Buffer.alloc(messageBuf.byteLength + BufferAdd)
  packetBuf.write(header)
  const split = noise.writeMessage(state, messageBuf, packetBuf.subarray(1))
  return { packet: packetBuf.subarray(0, noise.writeMessage.bytes + 1), split }
}

// eatNoise: read a handshake message; returns the parsed JSON payload (or
// null when empty, as packetParse does) and the split, if any.
function readHandshake (noise, state, packet) {
  const receiveBuf = Buffer.alloc(packet.byteLength)
  const split = noise.readMessage(state, packet.subarray(1), receiveBuf)
  const bytes = noise.readMessage.bytes
  const data = bytes > 0 ? JSON.parse(receiveBuf.subarray(0, bytes).toString()) : null
  return { data, split }
}

// encrypt(): 'T' + ChaChaPoly(JSON)
function transportPacket (split, message) {
  const plain = Buffer.from(JSON.stringify(message))
  const packetBuf = Buffer.alloc(plain.byteLength + BufferAdd)
  cipherState.encryptWithAd(split.tx, packetBuf.subarray(1), null, plain)
  const sendBuf = packetBuf.subarray(0, cipherState.encryptWithAd.bytesWritten + 1)
  sendBuf.write('T')
  return sendBuf
}

// decrypt(): only T packets
function readTransport (split, packet) {
  const header = packet.subarray(0, 1).toString()
  if (header !== 'T') throw new Error('expected a T packet, got ' + JSON.stringify(header))
  const decryptBuf = Buffer.alloc(packet.byteLength)
  cipherState.decryptWithAd(split.rx, decryptBuf, null, packet.subarray(1))
  return JSON.parse(decryptBuf.subarray(0, cipherState.decryptWithAd.bytesWritten).toString())
}

// MyCHIPs's initiate(): the packets that open a connection carrying
// `message`. A tally/ticket message with a ticket is a first contact (IK);
// anything else first names us in an N packet, then opens KK.
function initiate (noise, keys, peerKey, message) {
  const { target, action, ticket } = message
  const packets = []
  let hs1 = 'K'
  if (target === 'tally' && action === 'ticket' && ticket) {
    hs1 = 'I'
  } else {
    const ns = noise.initialize('N', true, Prologue, null, null, peerKey)
    packets.push(handshakePacket(noise, ns, 'N', JSON.stringify(agentOf(keys))).packet)
    noise.destroy(ns)
  }
  if (!message.from) message.from = {}
  message.from.agent = agentOf(keys) // Object.assign(messageObj.from, this.manager.chad)
  const state = noise.initialize(hs1 + 'K', true, Prologue, keys, null, peerKey)
  packets.push(handshakePacket(noise, state, hs1, JSON.stringify(message)).packet)
  return { packets, state, kind: hs1 === 'I' ? 'ik' : 'kk' }
}

// Packets in, events out, for one connection (what fromInitiator /
// fromResponder do). Each call to `packet` returns { reply?, hello?, open?,
// message? } or throws.
class Responder {
  constructor (noise, keys) {
    this.noise = noise
    this.keys = keys
    this.state = 'none'
  }

  packet (packet) {
    const header = packet.subarray(0, 1).toString()
    if (this.state === 'open') return { message: readTransport(this.split, packet) }
    if (this.state === 'none' && header === 'I') {
      this.hs = this.noise.initialize('IK', false, Prologue, this.keys, null, null)
      const { data } = readHandshake(this.noise, this.hs, packet)
      if (!data || !data.ticket || !data.from) throw new Error('first contact without ticket or from')
      const proved = Buffer.from(this.hs.rs).toString('base64url')
      if (data.from.agent && data.from.agent !== proved) throw new Error('public key discrepancy')
      return this.acknowledge('ik', proved, data)
    }
    if (this.state === 'none' && header === 'N') {
      const ns = this.noise.initialize('N', false, Prologue, this.keys, null, null)
      const { data } = readHandshake(this.noise, ns, packet)
      this.noise.destroy(ns)
      if (typeof data !== 'string') throw new Error('N packet without an agent id')
      this.peerAgent = data
      this.state = 'id'
      return {}
    }
    if (this.state === 'id' && header === 'K') {
      this.hs = this.noise.initialize('KK', false, Prologue, this.keys, null, keyOf(this.peerAgent))
      const { data } = readHandshake(this.noise, this.hs, packet)
      return this.acknowledge('kk', this.peerAgent, data)
    }
    throw new Error('unexpected ' + JSON.stringify(header) + ' packet in state ' + this.state)
  }

  acknowledge (kind, remote, hello) {
    const { packet, split } = handshakePacket(this.noise, this.hs, 'A', '')
    this.split = split
    this.state = 'open'
    return { reply: packet, hello: { kind, remote, message: hello }, open: true }
  }
}

module.exports = {
  Noise,
  Frame,
  BufferAdd,
  keysFromSecret,
  newKeys,
  agentOf,
  keyOf,
  handshakePacket,
  readHandshake,
  transportPacket,
  readTransport,
  initiate,
  Responder
}
