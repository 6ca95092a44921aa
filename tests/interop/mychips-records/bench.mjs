// WebCrypto (what MyCHIPs uses) ECDSA P-521 / SHA-384 sign and verify rates
// on a chit-sized record, serialization included, single-threaded.
// Usage: node bench.mjs [seconds per measurement, default 2]
// Prints one JSON line: {"sign_per_s":…, "verify_per_s":…, …}.
import { generateKeys, subtle, KeyConfig, chitMessage } from './lib.mjs'

const seconds = Number(process.argv[2] || 2)
const { privateJwk, publicJwk } = await generateKeys()
const privateKey = await subtle.importKey('jwk', privateJwk, KeyConfig, false, ['sign'])
const publicKey = await subtle.importKey('jwk', publicJwk, KeyConfig, false, ['verify'])
const chit = {
  tally: '6c1f3b0e-2d4a-4e5b-8c7d-9e0f1a2b3c4d',
  by: 'foil',
  type: 'tran',
  uuid: '0a1b2c3d-4e5f-4a6b-8c9d-0e1f2a3b4c5d',
  date: '2024-05-26T10:00:00.5+00:00',
  units: 123456,
  ref: { invoice: 'A-17' },
  memo: 'Lunch'
}
const encoder = new TextEncoder()
const signature = await subtle.sign(KeyConfig, privateKey, encoder.encode(chitMessage(chit)))

async function rate (op) {
  for (let i = 0; i < 20; i++) await op() // warm up
  let count = 0
  const start = process.hrtime.bigint()
  const end = start + BigInt(Math.round(seconds * 1e9))
  let now = start
  while (now < end) {
    await op()
    count++
    now = process.hrtime.bigint()
  }
  return count / (Number(now - start) / 1e9)
}

const sign = await rate(() => subtle.sign(KeyConfig, privateKey, encoder.encode(chitMessage(chit))))
const verify = await rate(async () => {
  const ok = await subtle.verify(KeyConfig, publicKey, signature, encoder.encode(chitMessage(chit)))
  if (!ok) throw new Error('verification failed')
})
process.stdout.write(JSON.stringify({
  sign_per_s: Math.round(sign),
  verify_per_s: Math.round(verify),
  message_bytes: chitMessage(chit).length,
  node: process.version
}) + '\n')
