"""The generated Python bindings of notch-mobile against a real sandbox
gateway on loopback.

Run by `cargo xtask test` (step "mobile bindings: Python"), or by hand:

    cargo build -p notch-mobile -p notch-gateway
    python3 tests/mobile/python/test_bindings.py

NOTCH_MOBILE_LIB: the built libnotch_mobile.so (default target/debug);
NOTCH_GATEWAY: the notch-gateway binary (default target/debug). The test
copies the generated notch.py and the library into a temporary directory
(uniffi's Python module loads the library from beside itself).
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
LIB = os.environ.get("NOTCH_MOBILE_LIB") or os.path.join(TARGET, "debug", "libnotch_mobile.so")
GATEWAY = os.environ.get("NOTCH_GATEWAY") or os.path.join(TARGET, "debug", "notch-gateway")
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


class Gateway:
    """`notch-gateway --sandbox` on a free loopback port, mining on demand."""

    def __init__(self, data_dir):
        os.makedirs(data_dir, exist_ok=True)
        self.log = open(os.path.join(data_dir, "gateway.log"), "w")
        self.process = subprocess.Popen(
            [GATEWAY, "--sandbox", "--block-interval", "0", "--listen", "127.0.0.1:0",
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
        if not self.url:
            self.stop()
            raise RuntimeError("the gateway did not say where it listens")

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

    def test_a_wallet_pair_receives_sends_and_reports(self):
        store_a, store_b = DictStore(), DictStore()
        created = run(notch.create_wallet(self.config("a"), store_a))
        a = created.wallet
        self.assertEqual(len(created.recovery_phrase.split()), 12)
        b = run(notch.create_wallet(self.config("b"), store_b, 24)).wallet
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
        alice = run(notch.create_wallet(self.config("alice"), DictStore())).wallet
        bob = run(notch.create_wallet(self.config("bob"), DictStore())).wallet
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

    def test_bad_input_raises_typed_errors_with_readable_messages(self):
        wallet = run(notch.create_wallet(self.config("bad"), DictStore())).wallet
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
