// Reads one JSON text on stdin, prints json-stable-stringify of it (no
// newline). This is the library MyCHIPs signs with (lib/crypto.js), so its
// output is the reference for Notch's canonical form.
import stringify from 'json-stable-stringify'
import { readFileSync } from 'node:fs'

const text = readFileSync(0, 'utf8')
process.stdout.write(stringify(JSON.parse(text)))
