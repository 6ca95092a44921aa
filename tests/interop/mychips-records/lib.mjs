// What MyCHIPs does with tallies, chits and sign keys, written with the
// same building blocks MyCHIPs uses (Node's WebCrypto and
// json-stable-stringify), so Notch can be tested against it:
// - a record is signed as ECDSA P-521 / SHA-384 over
//   json-stable-stringify(record), the signature raw r||s in base64url
//   (MyCHIPs lib/crypto.js);
// - a tally is signed without its "sign" member, by both parties, each with
//   the key in its cert.public (test/auto/unit/validtally.js);
// - a chit is signed over {by, date, memo, ref, tally, type, units, uuid}
//   by its issuer (lib/chit.js, signCheck);
// - a sign key is exported as {"signkey":{"s":hex salt,"i":hex iv,
//   "d":base64 ciphertext}}, PBKDF2-SHA256 10000 iterations, 8-byte salt,
//   AES-256-GCM 12-byte IV (wyseman lib/encrypt.js).
import stringify from 'json-stable-stringify'
import { webcrypto } from 'node:crypto'

export const subtle = webcrypto.subtle
export const KeyConfig = { name: 'ECDSA', namedCurve: 'P-521', hash: { name: 'SHA-384' } }
export const CHIT_SIGNED = ['by', 'date', 'memo', 'ref', 'tally', 'type', 'units', 'uuid']
export { stringify }

const encoder = new TextEncoder()

export async function generateKeys () {
  const pair = await subtle.generateKey(KeyConfig, true, ['sign', 'verify'])
  return {
    privateJwk: await subtle.exportKey('jwk', pair.privateKey),
    publicJwk: await subtle.exportKey('jwk', pair.publicKey)
  }
}

export async function signMessage (privateJwk, message) {
  const key = await subtle.importKey('jwk', privateJwk, KeyConfig, true, ['sign'])
  const signature = await subtle.sign(KeyConfig, key, encoder.encode(message))
  return Buffer.from(signature).toString('base64url')
}

export async function verifyMessage (publicJwk, message, signature) {
  const jwk = typeof publicJwk === 'string' ? JSON.parse(publicJwk) : publicJwk
  const key = await subtle.importKey('jwk', jwk, KeyConfig, true, ['verify'])
  return subtle.verify(KeyConfig, key, Buffer.from(signature, 'base64url'), encoder.encode(message))
}

export function tallyMessage (tally) {
  const { sign, ...rest } = tally
  return stringify(rest)
}

export function chitMessage (chit) {
  const core = {}
  for (const name of CHIT_SIGNED) {
    if (name in chit) core[name] = chit[name]
  }
  return stringify(core)
}

async function passKey (passphrase, salt) {
  const base = await subtle.importKey('raw', Buffer.from(passphrase), 'PBKDF2', false, ['deriveKey'])
  return subtle.deriveKey({ name: 'PBKDF2', salt, iterations: 10000, hash: 'SHA-256' },
    base, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt'])
}

export async function exportSignKey (privateJwk, passphrase) {
  const salt = webcrypto.getRandomValues(new Uint8Array(8))
  const iv = webcrypto.getRandomValues(new Uint8Array(12))
  const key = await passKey(passphrase, salt)
  const data = await subtle.encrypt({ name: 'AES-GCM', iv }, key, Buffer.from(JSON.stringify(privateJwk)))
  return JSON.stringify({
    signkey: {
      s: Buffer.from(salt).toString('hex'),
      i: Buffer.from(iv).toString('hex'),
      d: Buffer.from(data).toString('base64')
    }
  })
}

export async function importSignKey (text, passphrase) {
  const parsed = JSON.parse(text)
  const { s, i, d } = parsed.signkey || parsed
  const key = await passKey(passphrase, Buffer.from(s, 'hex'))
  const plain = await subtle.decrypt({ name: 'AES-GCM', iv: Buffer.from(i, 'hex') }, key, Buffer.from(d, 'base64'))
  return JSON.parse(Buffer.from(plain).toString())
}

export async function readStdin () {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}
