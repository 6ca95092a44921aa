// MyCHIPs's side, verifying: reads {tally, chits?, signkey?, passphrase?,
// keys?} on stdin (what Notch made) and checks it with WebCrypto and
// json-stable-stringify: both tally signatures, each chit's signature by
// its issuer's key in the tally, and that the sign key decrypts to the
// private key of the given side. Exit 0 only if everything is valid.
import { verifyMessage, tallyMessage, chitMessage, importSignKey, readStdin } from './lib.mjs'

const input = JSON.parse(await readStdin())
const problems = []
const { tally } = input
if (tally) {
  const message = tallyMessage(tally)
  for (const side of ['stock', 'foil']) {
    const ok = await verifyMessage(tally[side].cert.public, message, (tally.sign || {})[side] || '')
      .catch(e => { problems.push(`tally ${side}: ${e.message}`); return null })
    if (ok === false) problems.push(`tally ${side} signature does not verify`)
  }
}
for (const [n, chit] of (input.chits || []).entries()) {
  const key = input.chitKey || (tally && tally[chit.by].cert.public)
  const ok = await verifyMessage(key, chitMessage(chit), chit.sign || '')
    .catch(e => { problems.push(`chit ${n}: ${e.message}`); return null })
  if (ok === false) problems.push(`chit ${n} signature does not verify`)
}
if (input.signkey) {
  try {
    const jwk = await importSignKey(input.signkey, input.passphrase)
    const expected = tally[input.signkeySide].cert.public
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-521' || !jwk.d) problems.push('sign key is not a private P-521 JWK')
    if (jwk.x !== expected.x || jwk.y !== expected.y) problems.push('sign key is not the key of the tally')
  } catch (e) {
    problems.push(`sign key does not decrypt: ${e.message}`)
  }
}
if (problems.length) {
  process.stderr.write(problems.join('\n') + '\n')
  process.exit(1)
}
process.stdout.write('valid\n')
