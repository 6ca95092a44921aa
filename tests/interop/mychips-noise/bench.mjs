#!/usr/bin/env node
// Noise_IK_25519_ChaChaPoly_BLAKE2b handshakes per second with npm
// noise-protocol (MyCHIPs's library): initiator and responder in one
// process, static keys made once, each round a full IK handshake (two
// messages, empty payloads) and the split. Single thread.
//
//   node bench.mjs [--seconds S] [--json]
//
// Prints a line of text, or with --json one JSON object:
// {"library":"noise-protocol","version":...,"pattern":...,"handshakes":N,
//  "seconds":S,"per_second":R}
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const Noise = require('noise-protocol')
const { version } = require('noise-protocol/package.json')

const argv = process.argv.slice(2)
const seconds = Number(argv[argv.indexOf('--seconds') + 1] || 0) || 3
const json = argv.includes('--json')

const prologue = Buffer.alloc(0)
const initiatorKeys = Noise.keygen()
const responderKeys = Noise.keygen()
const empty = Buffer.alloc(0)
const msg1 = Buffer.alloc(96)
const msg2 = Buffer.alloc(48)
const payload = Buffer.alloc(16)

function handshake () {
  const i = Noise.initialize('IK', true, prologue, initiatorKeys, null, responderKeys.publicKey)
  const r = Noise.initialize('IK', false, prologue, responderKeys)
  Noise.writeMessage(i, empty, msg1)
  Noise.readMessage(r, msg1.subarray(0, Noise.writeMessage.bytes), payload)
  const rs = Noise.writeMessage(r, empty, msg2)
  const is = Noise.readMessage(i, msg2.subarray(0, Noise.writeMessage.bytes), payload)
  if (!rs || !is) throw new Error('handshake did not finish')
  Noise.destroy(i)
  Noise.destroy(r)
}

for (let n = 0; n < 200; n++) handshake() // warm up

let count = 0
const start = process.hrtime.bigint()
const limit = start + BigInt(Math.round(seconds * 1e9))
let now = start
while (now < limit) {
  for (let n = 0; n < 100; n++) handshake()
  count += 100
  now = process.hrtime.bigint()
}
const elapsed = Number(now - start) / 1e9
const perSecond = count / elapsed

if (json) {
  console.log(JSON.stringify({
    library: 'noise-protocol',
    version,
    node: process.version,
    pattern: 'Noise_IK_25519_ChaChaPoly_BLAKE2b',
    handshakes: count,
    seconds: Number(elapsed.toFixed(3)),
    per_second: Math.round(perSecond)
  }))
} else {
  console.log(`noise-protocol ${version} (Node ${process.version}): ${Math.round(perSecond)} Noise_IK_25519_ChaChaPoly_BLAKE2b handshakes/s (${count} in ${elapsed.toFixed(2)} s)`)
}
