"""The generated Python bindings of notch-mobile against a real sandbox
gateway on loopback.

Run by `cargo xtask test` (step "mobile bindings: Python"), or by hand
(after `cargo xtask bindings`, which builds the library, the gateway and
the CLI). The tally with a CLI wallet runs `notch` processes that share
their wallet's seed through the OS keystore, so the test needs a running,
unlocked Secret Service, as the xtask gives it:

    dbus-run-session -- sh -c 'printf pw | gnome-keyring-daemon --unlock \
        --components=secrets >/dev/null; python3 tests/mobile/python/test_bindings.py'

NOTCH_MOBILE_LIB: the built libnotch_mobile.so (default target/debug);
NOTCH_GATEWAY: the notch-gateway binary, NOTCH_CLI: the notch binary (both
default target/debug). The test copies the generated notch.py and the
library into a temporary directory (uniffi's Python module loads the
library from beside itself).

The library's log lines go to a Python HostLogger at DEBUG from the start;
every test checks that none of them holds a secret of its wallets.
"""

import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
LIB = os.environ.get("NOTCH_MOBILE_LIB") or os.path.join(TARGET, "debug", "libnotch_mobile.so")
GATEWAY = os.environ.get("NOTCH_GATEWAY") or os.path.join(TARGET, "debug", "notch-gateway")
CLI = os.environ.get("NOTCH_CLI") or os.path.join(TARGET, "debug", "notch")
BINDINGS = os.path.join(ROOT, "mobile-bindings", "bindings", "python", "notch.py")

WORK = tempfile.mkdtemp(prefix="notch-mobile-py-")
shutil.copy(BINDINGS, WORK)
shutil.copy(LIB, WORK)
sys.path.insert(0, WORK)
import notch  # noqa: E402  (the generated module, next to its library)


class DictStore(notch.HostSecretStore):
    """The host's secret store: a dictionary (and a log of what it was asked)."""

    def __init__(self):
        self.secrets = {}
        self.calls = []
        self.lock = threading.Lock()

    def get(self, name):
        with self.lock:
            self.calls.append(("get", name))
            return self.secrets.get(name)

    def set(self, name, secret):
        with self.lock:
            self.calls.append(("set", name))
            self.secrets[name] = bytes(secret)

    def delete(self, name):
        with self.lock:
            self.calls.append(("delete", name))
            self.secrets.pop(name, None)

    def description(self):
        return "test dictionary"


class LockedStore(notch.HostSecretStore):
    """A store that refuses, as a locked phone's keystore would."""

    def get(self, name):
        raise notch.SecretStoreError.AccessDenied("the device is locked")

    def set(self, name, secret):
        raise notch.SecretStoreError.AccessDenied("the device is locked")

    def delete(self, name):
        raise notch.SecretStoreError.AccessDenied("the device is locked")

    def description(self):
        return "locked keystore"


class Listener(notch.WalletListener):
    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def on_event(self, event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, predicate, seconds=20.0):
        deadline = time.monotonic() + seconds
        with self.cond:
            while True:
                found = [e for e in self.events if predicate(e)]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such event in {self.events}")
                self.cond.wait(left)


class Lines(notch.HostLogger):
    """The host's log: every line the library sends, kept."""

    def __init__(self):
        self.lines = []
        self.cond = threading.Condition()

    def log(self, level, target, message):
        with self.cond:
            self.lines.append((level, target, message))
            self.cond.notify_all()

    def snapshot(self):
        with self.cond:
            return list(self.lines)

    def wait_for(self, what, predicate, seconds=20.0):
        deadline = time.monotonic() + seconds
        with self.cond:
            while True:
                found = [line for line in self.lines if predicate(*line)]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no log line: {what} (of {len(self.lines)}: "
                                         f"{self.lines[-5:]})")
                self.cond.wait(left)

    def settle(self, quiet=0.3, seconds=10.0):
        """Waits until no line came for `quiet` seconds (the library hands
        lines over on a thread of its own)."""
        deadline = time.monotonic() + seconds
        count = -1
        while time.monotonic() < deadline:
            now = len(self.snapshot())
            if now == count:
                return
            count = now
            time.sleep(quiet)


class Throwing(notch.HostLogger):
    """A logger that throws on every line, as a broken host's would."""

    def __init__(self):
        self.calls = 0

    def log(self, level, target, message):
        self.calls += 1
        raise RuntimeError("the host's logger broke")


# The library's log, from before the first wallet on.
LOG = Lines()
LOG_INSTALLED = notch.set_logger(LOG, notch.LogLevel.DEBUG)

def secret_forms(phrase, stored):
    """What of a wallet's secrets must never appear in a log line: every two
    words of its phrase in a row (however separated: the phrase printed,
    or its words as a list), and the BIP-39 seed, the stored secret and
    the phrase's entropy, each as hex, base64 and a list of bytes. One
    word alone is not a finding: ordinary log lines hold BIP-39 words
    (agent, open, state, payment, pool …), so a random phrase shares one
    with them now and then."""
    words = phrase.split()
    patterns = [re.compile(rf"\b{a}\W{{1,4}}{b}\b", re.IGNORECASE)
                for a, b in zip(words, words[1:])]
    seed = hashlib.pbkdf2_hmac("sha512", phrase.encode(), b"mnemonic", 2048)
    entropy = stored[2:2 + stored[1]] if len(stored) > 2 else stored
    texts = []
    for blob in (seed, stored, entropy):
        texts += [blob.hex(), blob.hex().upper(), base64.b64encode(blob).decode().rstrip("="),
                  base64.urlsafe_b64encode(blob).decode().rstrip("="),
                  ", ".join(str(b) for b in blob)]
    return patterns, texts


def leaked(lines, phrase, stored):
    """The first line holding one of the wallet's secrets, and which."""
    patterns, texts = secret_forms(phrase, stored)
    for line in lines:
        text = " ".join(str(part) for part in line)
        for pattern in patterns:
            if pattern.search(text):
                return line, f"two words of the recovery phrase ({pattern.pattern})"
        for form in texts:
            if form in text:
                return line, "the seed, in one of its forms"
    return None


class Gateway:
    """`notch-gateway --sandbox` on a free loopback port, mining on demand,
    with its agent relay (ADR 6) on free loopback ports too (`relay`: where
    agents register)."""

    def __init__(self, data_dir):
        os.makedirs(data_dir, exist_ok=True)
        self.log = open(os.path.join(data_dir, "gateway.log"), "w")
        self.process = subprocess.Popen(
            [GATEWAY, "--sandbox", "--block-interval", "0", "--listen", "127.0.0.1:0",
             "--relay-listen", "127.0.0.1:0", "--relay-ports", "0",
             "--data-dir", data_dir],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.url = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if "listening on " in line:
                self.url = line.split("listening on ", 1)[1].strip()
                break
        # The next line says where the relay is (it runs: --relay-listen).
        relay = self.process.stdout.readline() if self.url else ""
        prefix = "notch-gateway relay at "
        self.relay = relay[len(prefix):].strip() if relay.startswith(prefix) else None
        if not self.url or not self.relay:
            self.stop()
            raise RuntimeError("the gateway did not say where it listens and where its relay is")

    def post(self, path, body):
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(),
            headers={"content-type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=20) as answer:
            return json.loads(answer.read() or b"null")

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=20) as answer:
            return json.loads(answer.read())

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.log.close()


class CliWallet:
    """A wallet of the `notch` CLI: its own data directory, one process a
    command (JSON out), and `notch agent` in the background."""

    def __init__(self, data_dir, gateway_url):
        self.dir, self.url = data_dir, gateway_url
        self.agent = None
        self.printed = []
        os.makedirs(data_dir, exist_ok=True)

    def command(self, *args):
        return [CLI, "--data-dir", self.dir, "--gateway", self.url, "--json", *args]

    def run(self, *args):
        """Runs `notch ARGS`, which must succeed; its JSON."""
        out = subprocess.run(self.command(*args), capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=120)
        if out.returncode != 0:
            raise AssertionError(f"notch {' '.join(args)} failed ({out.returncode}): "
                                 f"{out.stderr.strip()}")
        return json.loads(out.stdout)

    def start_agent(self):
        """`notch agent --listen 127.0.0.1:0`, once it says where it listens."""
        log = open(os.path.join(self.dir, "agent.log"), "a")
        self.agent = subprocess.Popen(self.command("agent", "--listen", "127.0.0.1:0"),
                                      stdout=subprocess.PIPE, stderr=log, text=True,
                                      stdin=subprocess.DEVNULL)
        log.close()
        said = threading.Event()

        def read():
            for line in self.agent.stdout:
                self.printed.append(line.strip())
                if '"listening"' in line:
                    said.set()

        threading.Thread(target=read, daemon=True).start()
        if not said.wait(30):
            self.stop_agent()
            raise AssertionError("the CLI's agent did not say where it listens")
        return json.loads(next(p for p in self.printed if '"listening"' in p))

    def stop_agent(self):
        """Ctrl-C, as a person stops it."""
        if self.agent is None:
            return
        self.agent.send_signal(signal.SIGINT)
        try:
            self.agent.wait(20)
        except subprocess.TimeoutExpired:
            self.agent.kill()
            self.agent.wait()
        self.agent.stdout.close()
        self.agent = None

    def tally(self, tally_id):
        return self.run("tally", "show", tally_id)

    def wait(self, tally_id, what, check, seconds=60.0):
        """`notch tally show ID` until `check` holds for it; what it showed."""
        def shown():
            detail = self.tally(tally_id)
            return detail if check(detail) else None
        return eventually(f"the CLI wallet: {what}", shown, seconds)


def settled(chits):
    """Every chit good and linked into the chain, or void."""
    return all((state.endswith(".good") and consensus == "linked") or state.endswith(".void")
               for state, consensus in chits)


def png_to_luma(png):
    """Grey bytes, width, height of an 8-bit greyscale PNG (what the core
    draws): a camera frame's luminance plane, as a phone would hand it."""
    import struct
    import zlib
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", data[:10])
            assert (depth, color) == (8, 0), "8-bit greyscale expected"
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw, out, prev = zlib.decompress(idat), bytearray(), bytearray(width)
    for row in range(height):
        start = row * (width + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + width])
        for i in range(width):
            left = line[i - 1] if i else 0
            up, up_left = prev[i], (prev[i - 1] if i else 0)
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                line[i] = (line[i] + pred) & 255
        out += line
        prev = line
    return bytes(out), width, height


def eventually(what, check, seconds=30.0):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def run(coroutine):
    return asyncio.run(coroutine)


def all_files(directory):
    for base, _, names in os.walk(directory):
        for name in names:
            yield os.path.join(base, name)


class BindingsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gateway = Gateway(os.path.join(WORK, "gateway"))
        native = [a for a in cls.gateway.get("/v1/info")["assets"] if a["native"]][0]
        cls.symbol, cls.decimals = native["symbol"], native["decimals"]

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()

    def config(self, name):
        return notch.WalletConfig(data_dir=os.path.join(WORK, name),
                                  gateway_url=self.gateway.url,
                                  network=notch.Network.SANDBOX)

    def setUp(self):
        self.secrets = []

    def tearDown(self):
        # No line the library logged holds a secret of this test's wallets.
        LOG.settle()
        lines = LOG.snapshot()
        for phrase, stored in self.secrets:
            found = leaked(lines, phrase, stored)
            self.assertIsNone(found, f"a secret reached the log: {found}")

    def wallet(self, name, store=None, words=12):
        """A new wallet (and its store), its secrets kept for tearDown."""
        store = store if store is not None else DictStore()
        created = run(notch.create_wallet(self.config(name), store, words))
        stored = store.secrets[created.wallet.wallet_id()]
        self.secrets.append((created.recovery_phrase, stored))
        return created, store

    def test_a_wallet_pair_receives_sends_and_reports(self):
        created, store_a = self.wallet("a")
        a = created.wallet
        self.assertEqual(len(created.recovery_phrase.split()), 12)
        created_b, store_b = self.wallet("b", words=24)
        b = created_b.wallet
        self.assertEqual(len(created_b.recovery_phrase.split()), 24)
        listener = Listener()
        a.set_listener(listener)

        # The host's store holds the wallet's one secret, under its id.
        self.assertEqual(list(store_a.secrets), [a.wallet_id()])
        secret = store_a.secrets[a.wallet_id()]
        self.assertGreaterEqual(len(secret), 16)

        # Faucet -> block -> sync: the payment and the sync reach the listener.
        address = run(a.receive_address())
        self.assertTrue(address.startswith("nsb1"), address)
        amount = 5 * 10 ** self.decimals
        self.gateway.post("/v1/sandbox/faucet",
                          {"address": address, "asset": self.symbol, "amount": amount})
        self.gateway.post("/v1/sandbox/mine", {"blocks": 1})
        report = run(a.sync())
        self.assertGreaterEqual(report.height, 1)
        [balance] = [x for x in run(a.balances()) if x.symbol == self.symbol]
        self.assertEqual(balance.spendable, str(amount))
        received = listener.wait_for(lambda e: e.is_PAYMENT_RECEIVED())
        self.assertEqual(received.amounts[0].amount, str(amount))
        listener.wait_for(lambda e: e.is_SYNC_DONE())

        # Send 1 coin to B: review (fee), confirm, mine, both sides see it.
        prepared = run(a.prepare_send([notch.Recipient(address=run(b.receive_address()),
                                                       amount="1")]))
        summary = prepared.summary()
        self.assertGreater(summary.fee, 0)
        self.assertEqual(summary.recipients[0].amount, 10 ** self.decimals)
        txid = run(a.confirm_send(prepared))
        self.assertEqual(txid, summary.txid)
        self.assertEqual(run(a.confirm_send(prepared)), txid, "confirming twice sends once")
        self.gateway.post("/v1/sandbox/mine", {"blocks": 1})
        run(a.sync())
        run(b.sync())
        status = run(a.tx_status(txid))
        self.assertEqual(status.state, notch.TxState.CONFIRMED)
        self.assertEqual(status.confirmations, 1)
        listener.wait_for(lambda e: e.is_TX_STATE_CHANGED() and e.txid == txid
                          and e.to == notch.TxState.CONFIRMED)
        [got] = [x for x in run(b.balances()) if x.symbol == self.symbol]
        self.assertEqual(got.confirmed, str(10 ** self.decimals))
        history = run(a.history())
        self.assertEqual(history[0].txid, txid)
        self.assertFalse(history[0].incoming)
        only_in = run(a.history(notch.HistoryFilter(incoming=True)))
        self.assertTrue(all(h.incoming for h in only_in) and only_in)

        # B pulls its events instead of listening.
        pulled = []
        while (event := run(b.next_event(200))) is not None:
            pulled.append(event)
        self.assertTrue(any(e.is_PAYMENT_RECEIVED() for e in pulled), pulled)
        self.assertIsNone(run(b.next_event(50)))

        # The inbox has the payment.
        kinds = [n.kind for n in run(b.notifications())]
        self.assertIn("payment_received", kinds)

        # Reopened with the host's store, it is the same wallet.
        a.set_listener(None)
        again = run(notch.open_wallet(self.config("a"), store_a))
        self.assertEqual(again.wallet_id(), a.wallet_id())

        # The library wrote no secret anywhere but the host's store: not
        # the seed bytes, the phrase or any of its words' run in the data
        # directories.
        phrase = created.recovery_phrase.encode()
        for path in list(all_files(os.path.join(WORK, "a"))) + list(all_files(os.path.join(WORK, "b"))):
            with open(path, "rb") as f:
                data = f.read()
            self.assertNotIn(secret, data, path)
            self.assertNotIn(phrase, data, path)
            for sec in store_b.secrets.values():
                self.assertNotIn(sec, data, path)
        self.assertTrue(all(op in ("get", "set", "delete") for op, _ in store_a.calls))

    def test_a_tally_from_a_ticket_png_and_a_camera_frame_with_payments_both_ways(self):
        alice = self.wallet("alice")[0].wallet
        bob = self.wallet("bob")[0].wallet
        run(alice.set_tally_profile("alice", "Alice"))
        run(bob.set_tally_profile("bob", "Bob"))
        listener = Listener()
        bob.set_listener(listener)
        # Both agents listen before the tally is drafted, so each
        # certificate says where its agent is.
        run(alice.start_agent(notch.AgentOptions(listen="127.0.0.1:0")))
        run(bob.start_agent(notch.AgentOptions(listen="127.0.0.1:0")))
        terms = notch.TicketOptions(expires_in_secs=600, my_terms_json='{"limit": 100}',
                                    partner_terms_json='{"limit": 100}')

        # Alice's ticket as a PNG file; Bob scans the picture and accepts.
        ticket = run(alice.my_ticket(terms))
        self.assertTrue(ticket.link.startswith("https://mychips.org/invite?"), ticket.link)
        self.assertTrue(ticket.notch_link.startswith("notch:ticket"), ticket.notch_link)
        self.assertEqual(ticket.tally.state, "draft")
        png = os.path.join(WORK, "ticket.png")
        with open(png, "wb") as f:
            f.write(ticket.qr_png)
        offered = run(bob.scan_ticket_image_file(png))
        self.assertEqual(offered.state, "P.offer")
        self.assertEqual(json.loads(offered.partner_terms_json), {"limit": 100})
        self.assertEqual(run(bob.tally_accept(offered.id)).state, "open")
        eventually("the tally to open on Alice's side",
                   lambda: run(alice.tally(ticket.tally.id)).info.state == "open")
        listener.wait_for(lambda e: e.is_TALLY_CHANGED() and e.state == "open")

        # A second ticket read from a camera frame (grey bytes): offered,
        # then refused.
        second = run(alice.my_ticket(terms))
        luma, width, height = png_to_luma(second.qr_png)
        from_frame = run(bob.scan_ticket_frame(luma, width, height))
        self.assertIn(from_frame.state, ("P.offer", "ticket"))
        # (kept as `ticket` when the issuer's answer is late: the agent
        # presents it again)
        eventually("the second offer", lambda: run(bob.tally(from_frame.id)).info.state == "P.offer")
        self.assertIn(run(bob.tally_refuse(from_frame.id)).state, ("P.offer.void", "void"))

        # Payments both ways; both sides agree on the balance.
        paid = run(alice.tally_pay(ticket.tally.id, 12_500, "lunch"))
        self.assertTrue(paid.mine)
        self.assertEqual(paid.amount, -12_500)
        eventually("Bob to have the payment", lambda: any(
            c.uuid == paid.uuid and c.state == "A.good" for c in run(bob.tally_chits(offered.id))))
        back = run(bob.tally_pay(offered.id, 2_000))
        eventually("Alice to have the payment back", lambda: any(
            c.uuid == back.uuid and c.state == "A.good"
            for c in run(alice.tally_chits(ticket.tally.id))))
        eventually("both balances to agree", lambda:
                   run(alice.tally(ticket.tally.id)).info.balance == -10_500
                   and run(bob.tally(offered.id)).info.balance == 10_500)
        self.assertEqual([t.id for t in run(bob.tallies()) if t.state == "open"], [offered.id])
        with self.assertRaises(notch.ChitError.OverLimit) as caught:
            run(alice.tally_pay(ticket.tally.id, 1_000_000))
        self.assertTrue(str(caught.exception), "a readable message")
        run(alice.stop_agent())
        run(bob.stop_agent())
        bob.set_listener(None)

    def test_a_tally_with_a_cli_wallet_from_its_ticket_png_with_payments_both_ways(self):
        """The partner is the real `notch` CLI: its ticket PNG scanned here,
        a payment each way, both sides agreeing on the balance. The bindings
        wallet is a phone: its agent listens nowhere and is reached through
        the gateway's relay (ADR 6), so the CLI's payment can only come that
        way."""
        self.assertTrue(os.access(CLI, os.X_OK), f"no notch CLI at {CLI} (NOTCH_CLI)")
        cli = CliWallet(os.path.join(WORK, "cli-carol"), self.gateway.url)
        try:
            init = cli.run("init")
        except AssertionError as e:
            raise AssertionError(
                f"{e}\nThe CLI keeps its seed in the OS keystore: run this test inside a "
                "session with an unlocked Secret Service (see the module's docstring)") from e
        self.assertEqual(len(init["phrase"].split()), 12, init)
        dave = self.wallet("dave")[0].wallet
        run(dave.set_tally_profile("dave", "Dave"))
        listener = Listener()
        dave.set_listener(listener)
        try:
            # Both agents run before the tally is drafted, so each
            # certificate says where its agent is: the CLI's listens, the
            # phone's is registered with the relay and told its port there.
            said = cli.start_agent()
            self.assertTrue(said["listening"].startswith("127.0.0.1:"), said)
            reached_at = run(dave.start_agent(notch.AgentOptions(relay=self.gateway.relay)))
            host, port = reached_at.rsplit(":", 1)
            self.assertEqual(host, "127.0.0.1", reached_at)
            self.assertNotEqual(reached_at, self.gateway.relay, "a port of its own")
            self.assertEqual(run(dave.tally_profile()).port, int(port))

            # The CLI's ticket as a PNG; the bindings wallet scans the file.
            png = os.path.join(WORK, "cli-ticket.png")
            issued = cli.run("tally", "ticket", "--qr", png, "--name", "Carol",
                             "--terms", '{"limit":100}', "--partner-terms", '{"limit":100}')
            self.assertTrue(issued["url"].startswith("https://mychips.org/invite?"), issued)
            self.assertEqual(issued["qr"], png)
            cli_id = issued["tally"]
            offered = run(dave.scan_ticket_image_file(png))
            self.assertEqual(offered.state, "P.offer", offered)
            self.assertEqual(offered.partner_name, "Carol")
            self.assertEqual(json.loads(offered.partner_terms_json), {"limit": 100})
            self.assertEqual(run(dave.tally_accept(offered.id)).state, "open")
            shown = cli.wait(cli_id, "the tally open", lambda t: t["state"] == "open")
            listener.wait_for(lambda e: e.is_TALLY_CHANGED() and e.tally == offered.id
                              and e.state == "open")
            mine = run(dave.tally(offered.id)).info
            self.assertIsNotNone(mine.uuid)
            self.assertEqual(shown["uuid"], mine.uuid, "one tally, the same record on both sides")
            self.assertEqual((shown["side"], mine.side), ("stock", "foil"))
            eventually("the CLI's agent to print the tally opening", lambda: any(
                '"tally_changed"' in p and cli_id in p and '"open"' in p for p in cli.printed))

            # The bindings wallet pays the CLI 12.5 CHIPs ...
            paid = run(dave.tally_pay(offered.id, 12_500, "from the phone"))
            self.assertEqual(paid.amount, -12_500)
            got = cli.wait(cli_id, "the phone's payment", lambda t: any(
                c["uuid"] == paid.uuid and c["state"].endswith(".good") for c in t["chits"]))
            [chit] = [c for c in got["chits"] if c["uuid"] == paid.uuid]
            self.assertEqual((chit["amount"], chit["memo"], chit["mine"]),
                             (12_500, "from the phone", False))

            # ... and the CLI pays 2 CHIPs back: its agent calls the phone's
            # certificate's address, the relay's port for it.
            back = cli.run("tally", "pay", cli_id, "2", "--memo", "from the cli")
            self.assertEqual((back["amount"], back["mine"]), (-2_000, True), back)
            eventually("the CLI's payment in the bindings wallet", lambda: any(
                c.uuid == back["uuid"] and c.state.endswith(".good") and c.amount == 2_000
                and c.memo == "from the cli" and not c.mine
                for c in run(dave.tally_chits(offered.id))))

            # Both sides agree: the CLI is owed 10.5 CHIPs, every chit settled.
            final = cli.wait(cli_id, "balance 10,500, settled", lambda t: t["balance"] == 10_500
                             and settled((c["state"], c["consensus"]) for c in t["chits"]))
            self.assertEqual(len(final["chits"]), 2)
            eventually("the bindings wallet's balance and chits", lambda:
                       run(dave.tally(offered.id)).info.balance == -10_500
                       and settled((c.state, c.consensus)
                                   for c in run(dave.tally_chits(offered.id))))
            [listed] = [t for t in cli.run("tally", "list") if t["id"] == cli_id]
            self.assertEqual((listed["state"], listed["balance"]), ("open", 10_500))
        finally:
            cli.stop_agent()
            run(dave.stop_agent())
            dave.set_listener(None)

    def test_the_host_logger_gets_the_library_s_lines_at_its_level(self):
        self.assertTrue(LOG_INSTALLED, "the library's subscriber is the process's")
        wallet = self.wallet("logged")[0].wallet
        try:
            # The core's lines at DEBUG and above reach the logger set at
            # import: an INFO line of the agent with its fields, DEBUG events.
            listening = run(wallet.start_agent(notch.AgentOptions(listen="127.0.0.1:0")))
            port = listening.rsplit(":", 1)[1]
            level, _, message = LOG.wait_for("the agent listening", lambda lv, target, m:
                                             target.startswith("notch_core::agent")
                                             and m.startswith("tally agent listening")
                                             and f"port={port}" in m)
            self.assertEqual(level, notch.LogLevel.INFO, message)
            run(wallet.stop_agent())
            run(wallet.sync())
            LOG.wait_for("a wallet event", lambda lv, target, m: lv == notch.LogLevel.DEBUG
                         and target == "notch_core::events" and m.startswith("wallet event"))

            # A second call swaps the logger and the level: INFO and above
            # only, and the first logger hears no more.
            LOG.settle()
            before = len(LOG.snapshot())
            info = Lines()
            self.assertTrue(notch.set_logger(info, notch.LogLevel.INFO), "swapped, still ours")
            run(wallet.sync())
            listening = run(wallet.start_agent(notch.AgentOptions(listen="127.0.0.1:0")))
            port = listening.rsplit(":", 1)[1]
            info.wait_for("the agent listening again", lambda lv, target, m:
                          m.startswith("tally agent listening") and f"port={port}" in m)
            run(wallet.stop_agent())
            info.settle()
            LOG.settle()
            self.assertEqual([line for line in info.snapshot() if line[0] not in
                              (notch.LogLevel.ERROR, notch.LogLevel.WARN, notch.LogLevel.INFO)], [])
            self.assertEqual(LOG.snapshot()[before:], [], "the first logger was replaced")

            # A logger that throws loses its lines; the wallet goes on, and
            # so does the next logger.
            thrower = Throwing()
            self.assertTrue(notch.set_logger(thrower, notch.LogLevel.INFO))
            run(wallet.start_agent(notch.AgentOptions(listen="127.0.0.1:0")))
            eventually("the throwing logger to be called", lambda: thrower.calls > 0)
            run(wallet.stop_agent())
            self.assertGreaterEqual(run(wallet.sync()).height, 0)
        finally:
            self.assertTrue(notch.set_logger(LOG, notch.LogLevel.DEBUG))
        listening = run(wallet.start_agent(notch.AgentOptions(listen="127.0.0.1:0")))
        port = listening.rsplit(":", 1)[1]
        LOG.wait_for("a line after the throwing logger", lambda lv, target, m:
                     m.startswith("tally agent listening") and f"port={port}" in m)
        run(wallet.stop_agent())

    def test_without_a_logger_warnings_go_to_stderr_and_nothing_less(self):
        """A process that sets no logger: stderr at WARN (no DEBUG event
        line), until set_logger(None, DEBUG) lets them through; then a
        logger that throws, said once on stderr."""
        script = textwrap.dedent(f"""
            import asyncio, sys, time
            sys.path.insert(0, {WORK!r})
            import notch

            class Store(notch.HostSecretStore):
                def __init__(self):
                    self.secrets = {{}}
                def get(self, name):
                    return self.secrets.get(name)
                def set(self, name, secret):
                    self.secrets[name] = bytes(secret)
                def delete(self, name):
                    self.secrets.pop(name, None)
                def description(self):
                    return "dictionary"

            store = Store()
            config = notch.WalletConfig(data_dir={os.path.join(WORK, "stderr")!r},
                                        gateway_url={self.gateway.url!r},
                                        network=notch.Network.SANDBOX)
            created = asyncio.run(notch.create_wallet(config, store))
            print(created.recovery_phrase)
            print(store.secrets[created.wallet.wallet_id()].hex(), flush=True)
            asyncio.run(created.wallet.sync())
            time.sleep(0.5)
            print("-- set_logger(None, DEBUG)", file=sys.stderr, flush=True)
            assert notch.set_logger(None, notch.LogLevel.DEBUG)
            asyncio.run(created.wallet.sync())
            time.sleep(0.5)

            class Throwing(notch.HostLogger):
                def log(self, level, target, message):
                    raise RuntimeError("the logger broke")

            print("-- a logger that throws", file=sys.stderr, flush=True)
            assert notch.set_logger(Throwing(), notch.LogLevel.DEBUG)
            asyncio.run(created.wallet.sync())
            asyncio.run(created.wallet.sync())
            time.sleep(0.5)
        """)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        before, switched, after = out.stderr.partition("-- set_logger(None, DEBUG)")
        after, threw, throwing = after.partition("-- a logger that throws")
        self.assertTrue(switched and threw, out.stderr)
        self.assertNotRegex(before, r"notch (INFO|DEBUG|TRACE) ")
        self.assertRegex(after, r"(?m)^notch DEBUG notch_core::events: wallet event")
        # The throwing logger: its lines lost, said once, no panic message
        # (and the wallet went on: the script ran to its end).
        said = [line for line in throwing.splitlines() if "the app's logger threw" in line]
        self.assertEqual(len(said), 1, throwing)
        self.assertIn("the logger broke", said[0])
        self.assertNotIn("panicked", throwing)
        self.assertNotIn("wallet event", throwing)
        phrase, stored = out.stdout.splitlines()[:2]
        found = leaked([(line,) for line in out.stderr.splitlines()], phrase, bytes.fromhex(stored))
        self.assertIsNone(found, f"a secret reached stderr: {found}")

    def test_bad_input_raises_typed_errors_with_readable_messages(self):
        wallet = self.wallet("bad")[0].wallet
        with self.assertRaises(notch.SendError.NotSynced) as caught:
            run(wallet.prepare_send([notch.Recipient(address="not-an-address", amount="1")]))
        self.assertIn("sync first", str(caught.exception))
        run(wallet.sync())

        with self.assertRaises(notch.SendError.BadAddress) as caught:
            run(wallet.prepare_send([notch.Recipient(address="not-an-address", amount="1")]))
        self.assertIn("is not a valid address", str(caught.exception))
        self.assertIsInstance(caught.exception, notch.SendError)

        with self.assertRaises(notch.SendError.NoRecipients) as caught:
            run(wallet.prepare_send([]))
        self.assertIn("add at least one recipient", str(caught.exception))

        with self.assertRaises(notch.WalletError.BadTxid) as caught:
            run(wallet.tx_status("zz"))
        self.assertIn("is not a transaction id", str(caught.exception))

        with self.assertRaises(notch.OpenError.BadConfig) as caught:
            run(notch.create_wallet(self.config("bad-words"), DictStore(), 13))
        self.assertIn("12 or 24 words", str(caught.exception))

        with self.assertRaises(notch.OpenError.WalletExists) as caught:
            run(notch.create_wallet(self.config("bad"), DictStore()))
        self.assertIn("there is already a wallet", str(caught.exception))

        with self.assertRaises(notch.OpenError.BadPhrase) as caught:
            run(notch.restore_wallet(self.config("bad-phrase"), "abandon " * 11 + "zebra", DictStore()))
        self.assertIn("recovery phrase", str(caught.exception))

        # A store the host cannot open: the host's reason reaches the message.
        with self.assertRaises(notch.OpenError.SecretStore) as caught:
            run(notch.create_wallet(self.config("locked"), LockedStore()))
        self.assertIn("the device is locked", str(caught.exception))

        # Without its secret the wallet does not open, and says why.
        with self.assertRaises(notch.OpenError.SecretMissing) as caught:
            run(notch.open_wallet(self.config("bad"), DictStore()))
        self.assertIn("restore the wallet", str(caught.exception))

        with self.assertRaises(notch.ScanError.NotATicket) as caught:
            run(wallet.scan_ticket_text("https://example.org/hello"))
        self.assertIn("a tally ticket is a https://mychips.org/invite", str(caught.exception))

        with self.assertRaises(notch.ScanError.Picture) as caught:
            run(wallet.scan_ticket_frame(bytes(10), 4, 4))
        self.assertIn("camera frame", str(caught.exception))

        with self.assertRaises(notch.ScanError.File):
            run(wallet.scan_ticket_image_file(os.path.join(WORK, "missing.png")))

        with self.assertRaises(notch.TallyError.UnknownTally):
            run(wallet.tally("no-such-tally"))


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"{max(result.testsRun - failed, 0)} passed, {failed} failed")
    shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(1 if failed else 0)
