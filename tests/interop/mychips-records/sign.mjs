// MyCHIPs's side, signing: makes two WebCrypto key pairs, a tally signed by
// both parties and a chit signed by its issuer, and exports the foil's key
// as an encrypted sign key. Prints {tally, chit, signkey, passphrase}.
import { generateKeys, signMessage, tallyMessage, chitMessage, exportSignKey } from './lib.mjs'

const stock = await generateKeys()
const foil = await generateKeys()
const cert = (cid, keys, extra) => ({
  chad: { cid, host: 'localhost', port: 65430, agent: 'QUdFTlQ' },
  date: '2024-05-25T03:16:32.035Z',
  name: { first: cid, surname: 'Ünïcödé ☕' },
  type: 'p',
  place: [],
  public: keys.publicJwk,
  ...extra
})
const tally = {
  version: 1,
  uuid: '6c1f3b0e-2d4a-4e5b-8c7d-9e0f1a2b3c4d',
  date: '2024-05-25T03:16:32.035Z',
  comment: null,
  agree: { domain: 'mychips.org', name: 'Tally_Contract', version: 1 },
  stock: { cert: cert('stock_user', stock, { '\uff61': 'half-width', '\u{1F600}': 'emoji' }), terms: { limit: 100000, rate: 0.05 } },
  foil: { cert: cert('foil_user', foil, { file: null, note: 'line\nbreak "quoted" \\ \u2028' }), terms: {} }
}
const message = tallyMessage(tally)
tally.sign = {
  stock: await signMessage(stock.privateJwk, message),
  foil: await signMessage(foil.privateJwk, message)
}
const chit = {
  tally: tally.uuid,
  by: 'foil',
  type: 'tran',
  uuid: '0a1b2c3d-4e5f-4a6b-8c9d-0e1f2a3b4c5d',
  date: '2024-05-26T10:00:00.5+00:00',
  units: 123456,
  ref: { invoice: 'Nº 17', lines: [1.5, 2, null] },
  memo: 'Déjeuner'
}
chit.sign = await signMessage(foil.privateJwk, chitMessage(chit))
const passphrase = 'pässphrase 🔑'
const signkey = await exportSignKey(foil.privateJwk, passphrase)
process.stdout.write(JSON.stringify({ tally, chit, signkey, passphrase }))
