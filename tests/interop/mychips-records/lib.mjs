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
// - a chit's place in the chain is hashed from its database form
//   (schema/chits.wms chit_json_h, schema/crypto.wms j2h; see
//   databaseForm below);
// - a sign key is exported as {"signkey":{"s":hex salt,"i":hex iv,
//   "d":base64 ciphertext}}, PBKDF2-SHA256 10000 iterations, 8-byte salt,
//   AES-256-GCM 12-byte IV (wyseman lib/encrypt.js).
import stringify from 'json-stable-stringify'
import { createHash, webcrypto } from 'node:crypto'

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

// What MyCHIPs's database hashes (mychips.j2h, schema/crypto.wms: PL/Python
// json.dumps(obj, separators=(',',':'), sort_keys=True)): keys by code
// point, no white space, every character past ASCII (and DEL) escaped as
// \uxxxx. Floats (Python's repr) are not needed by these tests and are
// refused rather than guessed.
export function databaseForm (value) {
  if (value === null || typeof value === 'boolean') return JSON.stringify(value)
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error('databaseForm: floats are not supported here')
    return String(value)
  }
  if (typeof value === 'string') {
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g,
      c => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
  }
  if (Array.isArray(value)) return '[' + value.map(databaseForm).join(',') + ']'
  const byCodePoint = (a, b) => {
    const x = [...a].map(c => c.codePointAt(0))
    const y = [...b].map(c => c.codePointAt(0))
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i]
    return x.length - y.length
  }
  const keys = Object.keys(value).filter(k => value[k] !== undefined).sort(byCodePoint)
  return '{' + keys.map(k => databaseForm(k) + ':' + databaseForm(value[k])).join(',') + '}'
}

// PostgreSQL's jsonb_strip_nulls: object members that are null go, at every
// depth (nulls in arrays stay).
export function stripNulls (value) {
  if (Array.isArray(value)) return value.map(stripNulls)
  if (value && typeof value === 'object') {
    const out = {}
    for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = stripNulls(v)
    return out
  }
  return value
}

// mychips.j2h: SHA-256 of the database form; a bytea, written into JSON
// as PostgreSQL does ('\x' and lowercase hex).
export function j2h (value) {
  return createHash('sha256').update(databaseForm(value)).digest()
}
export const bytea = buf => '\\x' + Buffer.from(buf).toString('hex')

// The tally's digest, where its chit chain begins (tally_opencheck:
// ta.digest = j2h(the tally without "sign")).
export function tallyDigest (tally) {
  const { sign, ...rest } = tally
  return j2h(rest)
}

// The chit's hash (chit_goodcheck: ch.digest = j2h(chit_json_c), the
// members the issuer signs).
export function chitDigest (chit) {
  return j2h(JSON.parse(chitMessage(chit)))
}

// The chain hash of a chit linked at `index` after `prior` (a Buffer):
// chit_json_h = chit_json_c || jsonb_strip_nulls({index, prior, signed}),
// hashed with j2h (schema/chits.wms, schema/chains.wms chain_consense).
export function chainHash (chit, index, prior) {
  const core = JSON.parse(chitMessage(chit))
  return j2h(stripNulls({ ...core, index, prior: bytea(prior), signed: chit.sign ?? null }))
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
