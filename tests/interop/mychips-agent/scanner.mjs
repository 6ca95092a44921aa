#!/usr/bin/env node
// A MyCHIPs user who was handed a tally invitation (a ticket) made by a
// Notch wallet, for tests/tests/mychips_agent.rs. It does what MyCHIPs does
// on the scanning side, with the building blocks MyCHIPs uses:
// - the peer connection: ../mychips-noise/mychips.js (npm noise-protocol and
//   frame-stream, as MyCHIPs lib/peernoise.js and lib/noisewrap.js use them);
// - the invitation link: npm query-string, as MyCHIPs's app (client/chark)
//   reads it;
// - records: ../mychips-records/lib.mjs (json-stable-stringify and Node's
//   WebCrypto, ECDSA P-521 / SHA-384, keys as JWK, as MyCHIPs lib/crypto.js).
// Nothing of Notch's is used here.
//
// The flow (gotchoices/MyCHIPs lib/tally.js, doc/learn-tally.md):
//   present: read the invite link, make the `ticket` message that lib/tally.js
//     local_ticket makes ({target, action, to: chad, from: cert.chad,
//     ticket: {token, cert}}), open a first contact (Noise IK, header I) to
//     the agent the link names, and wait for the issuer's answer on that
//     connection: an `offer` (the draft tally signed by the issuer), which is
//     checked as lib/tally.js signCheck does (every signature present must
//     verify with the key in its own half's cert.public), or Notch's `refuse`.
//   accept: sign the offered tally as the foil (lib/tally.js local_open: the
//     object with both signatures), open a reconnection (Noise N + KK, headers
//     N and K) to the issuer's agent and send the `open` message. With
//     --tamper signature|terms a bad acceptance is sent instead.
//   pay: as the foil of the open tally, sign a payment chit (lib/chit.js: the
//     issuer signs {by, date, memo, ref, tally, type, units, uuid}), link it
//     at the end of our chain, index 1 after the tally's digest
//     (schema/chains.wms chain_consense: the foil orders the chain), and send
//     it as `good` with its digest, index and chain hash (chit_json_r) over a
//     reconnection; then read what the partner sends on that connection
//     until --expect chits from it have come (or --linger MS passed), and
//     check each chit's signature with the stock's key in the tally
//     (lib/chit.js signCheck) and its digest.
//
//   node scanner.mjs present --ticket URL --state FILE [--name FIRST] [--quiet MS]
//   node scanner.mjs accept --state FILE [--tamper signature|terms] [--linger MS]
//   node scanner.mjs pay --state FILE --units MILLICHIPS [--memo TEXT] [--expect N] [--linger MS]
//
// FILE keeps this user's keys (X25519 agent key, P-521 tally key) and the
// offer between runs; it is created by the first `present`. Prints one JSON
// event per line; exits 0 when the step completed (a refusal is a completed
// step), non-zero with an {"event":"error"} otherwise. Events: agent, ticket,
// sent, connected, offer, refuse, quiet, closed, message, open, paid, chit,
// error.
import { createRequire } from 'node:module'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import Net from 'node:net'
import qs from 'query-string'
import { randomUUID } from 'node:crypto'
import {
  generateKeys, signMessage, verifyMessage, tallyMessage, chitMessage, stringify,
  tallyDigest, chitDigest, chainHash, bytea
} from '../mychips-records/lib.mjs'

const require = createRequire(import.meta.url)
const P = require('../mychips-noise/mychips.js')

const TimeoutMs = 15000

const emit = event => process.stdout.write(JSON.stringify(event) + '\n')

function fail (message, code = 2) {
  emit({ event: 'error', error: message })
  process.exit(code)
}

function args (argv) {
  const out = { mode: argv[0] }
  for (let i = 1; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1]
  return out
}

// The invitation link as MyCHIPs's app reads it (client/chark HomeScreen
// parseTallyInvitation: `qs.parseUrl(url).query`, then `token` and
// `JSON.parse(query.chad)`), with the npm query-string MyCHIPs's app uses.
// Older MyCHIPs calls the user id `cid`, newer `cuid`. `expires` is
// optional (MyCHIPs's own links do not carry it) and is not checked here,
// so that the issuer's own check is what is tested.
function parseTicket (text) {
  const { url, query } = qs.parseUrl(text)
  if (url !== 'https://mychips.org/invite') throw new Error('not a MyCHIPs invitation link: ' + text)
  const token = query.token
  const chad = JSON.parse(query.chad)
  const cid = chad.cid ?? chad.cuid
  if (!token || !cid || !chad.agent || !chad.host || !chad.port) {
    throw new Error('the invitation lacks token, cid, agent, host or port')
  }
  return { token, chad, cid, expires: query.expires ?? null }
}

async function loadState (file, name) {
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8'))
  const agentKeys = P.newKeys()
  const tallyKeys = await generateKeys()
  const state = {
    agentSecret: Buffer.from(agentKeys.secretKey).toString('base64url'),
    agent: P.agentOf(agentKeys),
    tallyKeys,
    name: name || 'Morgan'
  }
  writeFileSync(file, JSON.stringify(state))
  return state
}

// Our certificate, shaped as MyCHIPs's (test/auto/unit/validtally.js): the
// CHIP address of our agent, our name, our P-521 public key as JWK. No
// host/port: like a phone, this user is reached only when it calls.
function certificate (state) {
  return {
    chad: { cid: 'mychips_' + state.agent.slice(0, 6).toLowerCase(), agent: state.agent },
    date: new Date().toISOString(),
    name: { first: state.name, surname: 'Chips' },
    type: 'p',
    place: [{ type: 'bill', city: 'Mytown', country: 'US' }],
    connect: [{ media: 'email', address: 'morgan@example.com' }],
    public: state.tallyKeys.publicJwk
  }
}

// lib/tally.js signCheck: every signature that is there must verify with the
// key in its own half's certificate, over the tally without `sign`.
async function signCheck (tally) {
  const message = tallyMessage(tally)
  const checked = {}
  for (const side of ['stock', 'foil']) {
    const sign = tally.sign?.[side]
    if (!sign) continue
    checked[side] = await verifyMessage(tally[side]?.cert?.public, message, sign).catch(() => false)
  }
  return checked
}

// One connection: sends `packets`, hands each decrypted message to `onMessage`
// (which returns true when done). Resolves with how it ended.
function converse (host, port, keys, remoteAgent, message, onMessage) {
  return new Promise((resolve) => {
    let open = false
    let split = null
    let ended = false
    const end = (how) => {
      if (ended) return
      ended = true
      socket.end()
      resolve(how)
    }
    const socket = Net.connect(Number(port), host, () => {
      const decode = socket.pipe(P.Frame.decode({ maxSize: 65536 }))
      const encode = P.Frame.encode()
      encode.pipe(socket)
      const start = P.initiate(P.Noise, keys, P.keyOf(remoteAgent), message)
      for (const packet of start.packets) encode.write(packet)
      emit({ event: 'sent', kind: start.kind, message })
      decode.on('data', packet => {
        try {
          if (!open) {
            const header = packet.subarray(0, 1).toString()
            if (header !== 'A') return fail('expected an A packet, got ' + JSON.stringify(header), 4)
            const got = P.readHandshake(P.Noise, start.state, packet)
            split = got.split
            open = true
            emit({ event: 'connected', kind: start.kind })
            if (got.data && onMessage(got.data)) end('done')
            return
          }
          if (onMessage(P.readTransport(split, packet))) end('done')
        } catch (e) {
          fail('protocol error: ' + e.message, 4)
        }
      })
      decode.on('error', e => fail('framing error: ' + e.message, 4))
    })
    socket.on('error', e => fail('socket error: ' + e.message))
    socket.on('close', () => {
      if (!ended) {
        ended = true
        resolve(open ? 'closed' : 'refused')
      }
    })
    converse.end = end
  })
}

async function present (opt) {
  const state = await loadState(opt.state, opt.name)
  emit({ event: 'agent', agent: state.agent })
  const ticket = parseTicket(opt.ticket)
  emit({ event: 'ticket', token: ticket.token, cid: ticket.cid, agent: ticket.chad.agent, host: ticket.chad.host, port: ticket.chad.port, expires: ticket.expires })
  const cert = certificate(state)
  // lib/tally.js local_ticket
  const msg = { target: 'tally', action: 'ticket', to: ticket.chad, from: { ...cert.chad }, ticket: { token: ticket.token, cert } }
  const keys = P.keysFromSecret(state.agentSecret)
  let answer = null
  const quiet = opt.quiet ? setTimeout(() => { emit({ event: 'quiet' }); converse.end('quiet') }, Number(opt.quiet)) : null
  const how = await converse(ticket.chad.host, ticket.chad.port, keys, ticket.chad.agent, msg, (m) => {
    if (m.target === 'tally' && (m.action === 'offer' || m.action === 'refuse')) {
      answer = m
      return true
    }
    emit({ event: 'message', message: m })
    return false
  })
  if (quiet) clearTimeout(quiet)
  if (!answer) {
    if (how !== 'quiet') emit({ event: 'closed', how })
    return
  }
  if (answer.action === 'refuse') {
    emit({ event: 'refuse', reason: answer.reason, token: answer.ticket?.token, message: answer })
    return
  }
  const tally = answer.object
  const checked = await signCheck(tally)
  const ours = tally.foil?.cert?.public?.x === state.tallyKeys.publicJwk.x ? 'foil'
    : tally.stock?.cert?.public?.x === state.tallyKeys.publicJwk.x ? 'stock' : null
  const other = ours === 'foil' ? 'stock' : 'foil'
  const problems = []
  if (!ours) problems.push('neither half carries our key')
  else {
    if (stringify(tally[ours].cert) !== stringify(cert)) problems.push('our certificate was changed')
    if (tally.sign?.[ours]) problems.push('our half is already signed')
    if (checked[other] !== true) problems.push(`the ${other} signature does not verify`)
    if (tally[other]?.cert?.chad?.agent !== ticket.chad.agent) problems.push('the offering half is not the ticket\'s agent')
  }
  state.offer = tally
  state.side = ours
  state.issuer = { ...ticket.chad, cid: ticket.cid }
  writeFileSync(opt.state, JSON.stringify(state))
  emit({
    event: 'offer',
    side: ours,
    signatures: checked,
    valid: problems.length === 0,
    problems,
    from: answer.from,
    to: answer.to,
    canonical: stringify(tally),
    signed: tallyMessage(tally)
  })
}

async function accept (opt) {
  const state = JSON.parse(readFileSync(opt.state, 'utf8'))
  if (!state.offer) fail('no offer to accept', 1)
  const tally = JSON.parse(JSON.stringify(state.offer))
  const side = state.side
  const other = side === 'foil' ? 'stock' : 'foil'
  if ((await signCheck(tally))[other] !== true) fail('the offer does not verify', 1)
  if (opt.tamper === 'terms') tally[side].terms = { limit: 1000000 } // then signed: a valid signature over other contents
  const signature = await signMessage(state.tallyKeys.privateJwk, tallyMessage(tally))
  tally.sign = { ...tally.sign, [side]: signature }
  if (opt.tamper === 'signature') {
    // One character of the signature changed (still 132 bytes of base64url).
    const i = 60
    const c = signature[i] === 'A' ? 'B' : 'A'
    tally.sign[side] = signature.slice(0, i) + c + signature.slice(i + 1)
  }
  // Where the issuer is: its own half's certificate (what it signed), else
  // the ticket's CHIP address.
  const signed = tally[other].cert.chad
  const issuer = signed?.agent && signed?.host && signed?.port ? signed : state.issuer
  const msg = { target: 'tally', action: 'open', to: issuer, from: { ...tally[side].cert.chad }, object: tally }
  const keys = P.keysFromSecret(state.agentSecret)
  const linger = Number(opt.linger || 800)
  const timer = setTimeout(() => converse.end('linger'), linger)
  const how = await converse(issuer.host, issuer.port, keys, issuer.agent, msg, (m) => {
    emit({ event: 'message', message: m })
    return false
  })
  clearTimeout(timer)
  // lib/tally.js local_open: transmitted → status open (MyCHIPs has no
  // acknowledgement to wait for).
  const checked = await signCheck(tally)
  if (!opt.tamper) {
    state.tally = tally
    state.issuerAt = issuer
    writeFileSync(opt.state, JSON.stringify(state))
  }
  emit({
    event: 'open',
    delivered: how === 'linger' || how === 'closed',
    how,
    signatures: checked,
    state: opt.tamper ? 'offer' : 'open',
    canonical: stringify(tally)
  })
}

async function pay (opt) {
  const state = JSON.parse(readFileSync(opt.state, 'utf8'))
  if (!state.tally) fail('no open tally to pay on', 1)
  const tally = state.tally
  const side = state.side
  const other = side === 'foil' ? 'stock' : 'foil'
  if (side !== 'foil') fail('this user pays as the foil only (the foil orders the chain)', 1)
  const units = Number(opt.units)
  if (!Number.isSafeInteger(units) || units <= 0) fail('--units MILLICHIPS is required', 1)
  const chit = {
    tally: tally.uuid,
    by: side,
    type: 'tran',
    uuid: randomUUID(),
    date: new Date().toISOString(),
    units,
    memo: opt.memo ?? 'from MyCHIPs'
  }
  chit.sign = await signMessage(state.tallyKeys.privateJwk, chitMessage(chit))
  // Our chain (the foil's) is empty: the chit goes to index 1, after the
  // tally's digest.
  const index = 1
  const chain = chainHash(chit, index, tallyDigest(tally))
  const object = { ...chit, digest: bytea(chitDigest(chit)), index, chain: bytea(chain) }
  const issuer = state.issuerAt
  const msg = { target: 'chit', action: 'good', to: issuer, from: { ...tally[side].cert.chad }, object }
  const keys = P.keysFromSecret(state.agentSecret)
  const expect = Number(opt.expect || 0)
  const linger = Number(opt.linger || 800)
  const timer = setTimeout(() => converse.end('linger'), linger)
  const chits = []
  const pending = []
  const how = await converse(issuer.host, issuer.port, keys, issuer.agent, msg, (m) => {
    emit({ event: 'message', message: m })
    if (m.target === 'chit' && m.action === 'good' && m.object?.by === other) {
      chits.push(m.object)
      return chits.length >= expect && expect > 0
    }
    return false
  })
  clearTimeout(timer)
  emit({
    event: 'paid',
    delivered: how === 'linger' || how === 'closed' || how === 'done',
    how,
    chit: { uuid: chit.uuid, units, index, chain: bytea(chain), digest: object.digest }
  })
  for (const got of chits) {
    // lib/chit.js signCheck: the issuer's key is in its half of the tally.
    const valid = got.tally === tally.uuid &&
      await verifyMessage(tally[other].cert.public, chitMessage(got), got.sign || got.signed || '').catch(() => false)
    pending.push({
      event: 'chit',
      uuid: got.uuid,
      by: got.by,
      units: got.units,
      memo: got.memo ?? null,
      valid,
      digest_ok: got.digest === bytea(chitDigest(got))
    })
  }
  for (const e of pending) emit(e)
}

const opt = args(process.argv.slice(2))
setTimeout(() => fail('timed out', 3), TimeoutMs).unref()
if (!opt.state) fail('--state FILE is required', 1)
try {
  if (opt.mode === 'present') {
    if (!opt.ticket) fail('--ticket URL is required', 1)
    await present(opt)
  } else if (opt.mode === 'accept') {
    await accept(opt)
  } else if (opt.mode === 'pay') {
    await pay(opt)
  } else {
    fail('usage: scanner.mjs present|accept|pay [--options]', 1)
  }
  process.exit(0)
} catch (e) {
  fail(e.message, 2)
}
