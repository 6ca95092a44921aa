//! Chits between two simulated parties, with real P-521 signatures and the
//! real serialized messages, through an in-memory network the test
//! controls: payments and invoices both ways, chits that cross in flight,
//! random interleavings with duplicates, reordering and drops, and the
//! messages that must be refused.

use std::collections::BTreeMap;

use notch_core::keys::{RecoveryPhrase, TallyKey, WalletKeys};
use notch_core::tally::chain::{ApplyError, ApproveError, IssueError, LedgerNotice, OverLimit};
use notch_core::tally::{
    ChainLink, ChitBuilder, ChitLedger, ChitMessage, ChitOutcome, ChitRecord, ChitRow, Consensus,
    Ignored, MessageError, Side, TallyBuilder, VerifiedTally,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const STOCK_PHRASE: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
const FOIL_PHRASE: &str =
    "legal winner thank year wave sausage worth useful legal winner thank yellow";
const TALLY: &str = "0f6c1e2a-7b1d-4c3e-9a5f-2d8e4b6a1c3f";
const DATE: &str = "2025-03-04T05:06:07.089+00:00";

fn key(phrase: &str) -> TallyKey {
    let phrase = RecoveryPhrase::parse(phrase).expect("valid phrase");
    WalletKeys::new(&phrase.to_seed(""), 0)
        .and_then(|k| k.tally_key())
        .expect("tally key")
}

/// An open tally: the stock grants the foil `stock_limit` CHIPs, the foil
/// grants the stock `foil_limit`.
fn open_tally(
    uuid: &str,
    stock: &TallyKey,
    foil: &TallyKey,
    stock_limit: Value,
    foil_limit: Value,
) -> VerifiedTally {
    let cert = |k: &TallyKey, cid: &str| json!({"chad": {"cid": cid, "agent": "x"}, "public": k.public_key().to_jwk()});
    let mut tally = TallyBuilder::new(
        uuid,
        "2025-03-01T00:00:00+00:00",
        json!({"domain": "mychips.org", "name": "deluxe", "version": 1}),
    )
    .party(
        Side::Stock,
        cert(stock, "vendor"),
        json!({"limit": stock_limit}),
    )
    .party(
        Side::Foil,
        cert(foil, "client"),
        json!({"limit": foil_limit}),
    )
    .build()
    .expect("tally");
    tally.sign(Side::Stock, stock).expect("stock signs");
    tally.sign(Side::Foil, foil).expect("foil signs");
    tally.verify().expect("both signatures verify")
}

fn payment(by: Side, uuid: &str, units: u64) -> ChitRecord {
    ChitBuilder::transaction(TALLY, by, uuid, DATE, units)
        .memo(format!("payment {uuid}"))
        .build()
        .expect("chit")
}

/// One party: its ledger, its key, and what it has written to its store
/// (the rows of every change set, applied in order).
struct Party {
    ledger: ChitLedger,
    key: TallyKey,
    store: BTreeMap<String, ChitRow>,
    confirmed: u64,
}

impl Party {
    fn new(tally: &VerifiedTally, side: Side, key: TallyKey) -> Self {
        Self {
            ledger: ChitLedger::new(tally, side),
            key,
            store: BTreeMap::new(),
            confirmed: 0,
        }
    }

    fn persist(&mut self, outcome: &ChitOutcome) {
        for row in &outcome.changes.chits {
            self.store.insert(row.uuid.clone(), row.clone());
        }
        if let Some(confirmed) = outcome.changes.confirmed {
            self.confirmed = confirmed;
        }
    }

    /// The ledger rebuilt from the store equals the live one.
    fn check_store(&self) {
        let restored = ChitLedger::restore(
            self.ledger.tally(),
            self.ledger.side(),
            self.store.values().cloned(),
            self.confirmed,
        )
        .expect("the stored rows restore");
        assert_eq!(
            restored.rows(),
            self.ledger.rows(),
            "store of the {}",
            self.ledger.side()
        );
        assert_eq!(restored.confirmed(), self.ledger.confirmed());
    }

    fn state(&self, uuid: &str) -> String {
        self.ledger
            .state(uuid)
            .map(|s| s.code())
            .unwrap_or_default()
    }
}

/// Two parties and the messages in flight between them, as JSON text.
struct World {
    tally: VerifiedTally,
    stock: Party,
    foil: Party,
    /// (recipient, message text)
    flight: Vec<(Side, String)>,
    /// Dropped by the network; the sender's outbox sends them again later.
    dropped: Vec<(Side, String)>,
}

impl World {
    fn new(stock_limit: Value, foil_limit: Value) -> Self {
        let (sk, fk) = (key(STOCK_PHRASE), key(FOIL_PHRASE));
        let tally = open_tally(TALLY, &sk, &fk, stock_limit, foil_limit);
        Self {
            stock: Party::new(&tally, Side::Stock, sk),
            foil: Party::new(&tally, Side::Foil, fk),
            tally,
            flight: Vec::new(),
            dropped: Vec::new(),
        }
    }

    fn party(&mut self, side: Side) -> &mut Party {
        match side {
            Side::Stock => &mut self.stock,
            Side::Foil => &mut self.foil,
        }
    }

    /// Persists an outcome of `side` and hands its messages to the network;
    /// a chit's request is then marked sent (the outbox delivered it to the
    /// transport; a drop is retried by the outbox, below).
    fn post(&mut self, side: Side, outcome: ChitOutcome) {
        let party = self.party(side);
        party.persist(&outcome);
        let mut sent = Vec::new();
        for message in &outcome.outgoing {
            if let ChitMessage::Chit { chit, .. } = message {
                sent.push(chit.uuid().to_owned());
            }
        }
        for uuid in sent {
            let party = self.party(side);
            if party
                .ledger
                .state(&uuid)
                .is_some_and(|s| s.request.is_some())
            {
                let done = party.ledger.sent(&uuid).expect("sent");
                party.persist(&done);
            }
        }
        for message in outcome.outgoing {
            self.flight.push((side.other(), message.to_json()));
        }
    }

    /// Delivers the message at `at` (taken out of flight).
    fn deliver(&mut self, at: usize) {
        let (to, text) = self.flight.remove(at);
        self.receive(to, &text);
    }

    fn receive(&mut self, to: Side, text: &str) {
        let party = self.party(to);
        let outcome = party
            .ledger
            .apply_json(text)
            .unwrap_or_else(|e| panic!("the {to} refused a genuine message: {e}\n{text}"));
        self.post(to, outcome);
    }

    fn deliver_all(&mut self) {
        while !self.flight.is_empty() {
            self.deliver(0);
        }
    }

    fn issue(&mut self, side: Side, chit: ChitRecord) -> Result<(), IssueError> {
        let party = self.party(side);
        let outcome = party.ledger.issue(&party.key, chit)?;
        self.post(side, outcome);
        Ok(())
    }

    fn pay(&mut self, side: Side, uuid: &str, units: u64) {
        self.issue(side, payment(side, uuid, units)).expect("pays");
    }

    /// `payee` asks the other side to pay `units`.
    fn invoice(&mut self, payee: Side, uuid: &str, units: u64, memo: &str) {
        let chit = ChitBuilder::transaction(TALLY, payee.other(), uuid, DATE, units)
            .memo(memo)
            .build()
            .expect("invoice");
        let outcome = self.party(payee).ledger.invoice(chit).expect("invoices");
        self.post(payee, outcome);
    }

    fn approve(&mut self, payer: Side, uuid: &str) -> Result<(), ApproveError> {
        let party = self.party(payer);
        let outcome = party.ledger.approve(&party.key, uuid)?;
        self.post(payer, outcome);
        Ok(())
    }

    fn reject(&mut self, payer: Side, uuid: &str) {
        let outcome = self.party(payer).ledger.reject(uuid).expect("rejects");
        self.post(payer, outcome);
    }

    fn sync(&mut self, side: Side) {
        let messages = self.party(side).ledger.sync();
        for message in messages {
            self.flight.push((side.other(), message.to_json()));
        }
    }

    /// Whether both halves are consensed on the same chain.
    fn same_chain(&self) -> bool {
        let (s, f) = (&self.stock.ledger, &self.foil.ledger);
        s.is_consensed() && f.is_consensed() && s.links() == f.links()
    }

    /// Both halves hold the same chain, the same chits (in mirrored
    /// states) and opposite balances; their stores restore to them.
    fn assert_converged(&self) {
        let (s, f) = (&self.stock.ledger, &self.foil.ledger);
        assert!(s.is_consensed(), "stock not consensed: {:?}", s.rows());
        assert!(f.is_consensed(), "foil not consensed");
        assert_eq!(s.links(), f.links(), "chains differ");
        assert_eq!(s.confirmed(), f.confirmed());
        assert_eq!(s.end(), f.end());
        assert_eq!(s.balance(), f.balance().flipped(), "balances differ");
        let (srows, frows) = (s.rows(), f.rows());
        assert_eq!(srows.len(), frows.len(), "chit sets differ");
        for row in &srows {
            let theirs = f.state(&row.uuid).expect("the foil has every chit");
            assert_eq!(row.state.status, theirs.status, "{}", row.uuid);
            assert_ne!(row.state.direction, theirs.direction, "{}", row.uuid);
            assert_eq!(row.state.request, None, "{} still owes a message", row.uuid);
            assert_eq!(theirs.request, None);
            assert_eq!(
                f.chit(&row.uuid).map(ChitRecord::hash),
                Some(row.record.hash())
            );
        }
        self.stock.check_store();
        self.foil.check_store();
    }
}

#[test]
fn payments_and_invoices_both_ways() {
    let mut w = World::new(json!(100), json!(50));
    // The foil (client) pays the stock (vendor) 1.5 CHIPs.
    w.pay(Side::Foil, "f-pay-1", 1500);
    assert_eq!(w.foil.state("f-pay-1"), "L.good");
    w.deliver_all();
    assert_eq!(w.stock.state("f-pay-1"), "A.good");
    assert_eq!(w.stock.ledger.balance().good, 1500);
    assert_eq!(w.foil.ledger.balance().good, -1500);
    w.assert_converged();

    // The stock refunds 0.2 CHIPs.
    w.pay(Side::Stock, "s-pay-1", 200);
    w.deliver_all();
    assert_eq!(w.stock.ledger.balance().good, 1300);
    w.assert_converged();

    // The stock invoices the foil 3 CHIPs; the foil pays it.
    w.invoice(Side::Stock, "s-inv-1", 3000, "consulting");
    assert_eq!(w.stock.state("s-inv-1"), "A.pend");
    w.deliver_all();
    assert_eq!(w.foil.state("s-inv-1"), "L.pend");
    assert_eq!(w.stock.ledger.balance().pending, 4300);
    assert_eq!(w.stock.ledger.balance().good, 1300);
    w.approve(Side::Foil, "s-inv-1").expect("approves");
    w.deliver_all();
    assert_eq!(w.stock.state("s-inv-1"), "A.good");
    assert_eq!(w.stock.ledger.balance().good, 4300);
    w.assert_converged();

    // The foil invoices the stock; the stock refuses, the foil resubmits
    // a changed invoice, the stock pays that one.
    w.invoice(Side::Foil, "f-inv-1", 700, "parts");
    w.deliver_all();
    assert_eq!(w.stock.state("f-inv-1"), "L.pend");
    w.reject(Side::Stock, "f-inv-1");
    w.deliver_all();
    assert_eq!(w.stock.state("f-inv-1"), "L.void");
    assert_eq!(w.foil.state("f-inv-1"), "A.void");
    // The same invoice again is refused: the stock could not tell it from
    // a replay.
    let same = ChitBuilder::transaction(TALLY, Side::Stock, "f-inv-1", DATE, 700)
        .memo("parts")
        .build()
        .expect("invoice");
    assert!(w.foil.ledger.invoice(same).is_err());
    w.invoice(Side::Foil, "f-inv-1", 600, "parts, discounted");
    w.deliver_all();
    assert_eq!(w.stock.state("f-inv-1"), "L.pend");
    assert_eq!(
        w.stock.ledger.chit("f-inv-1").and_then(ChitRecord::memo),
        Some("parts, discounted")
    );
    w.approve(Side::Stock, "f-inv-1").expect("pays");
    w.deliver_all();
    assert_eq!(w.foil.state("f-inv-1"), "A.good");
    assert_eq!(w.stock.ledger.balance().good, 4300 - 600);
    w.assert_converged();
    // Four signed chits, in the order the foil linked them.
    let order: Vec<&str> = w.foil.ledger.links().iter().map(|l| l.1).collect();
    assert_eq!(order, ["f-pay-1", "s-pay-1", "s-inv-1", "f-inv-1"]);
}

/// Both sides pay at the same moment: both link their chit at index 1.
/// The foil's order wins; the stock moves its chit to index 2. In every
/// order of arrival: the foil's chit first, the stock's first, and the
/// foil's answer to the stock's chit before the foil's own chit.
#[test]
fn chits_crossing_in_flight_converge() {
    for order in ["foil chit first", "stock chit first", "answer before chit"] {
        let mut w = World::new(json!(100), json!(100));
        w.pay(Side::Stock, "s1", 111);
        w.pay(Side::Foil, "f1", 222);
        let provisional = w
            .stock
            .ledger
            .row("s1")
            .and_then(|r| r.link)
            .expect("linked");
        assert_eq!(provisional.index, 1);
        assert_eq!(w.stock.ledger.confirmed(), 0);
        assert_eq!(w.foil.ledger.confirmed(), 1);
        // In flight: s1 → foil, then f1 → stock.
        assert_eq!(w.flight.len(), 2);
        match order {
            "foil chit first" => w.deliver(1),
            "stock chit first" => w.deliver(0),
            _ => {
                w.deliver(0);
                // In flight now: f1 → stock, then the foil's upd.
                assert!(w.flight[1].1.contains("\"sub\":\"upd\""));
                w.deliver(1);
                assert!(
                    w.stock.ledger.is_consensed(),
                    "the update alone places both"
                );
            }
        }
        w.deliver_all();
        w.assert_converged();
        let order: Vec<&str> = w.foil.ledger.links().iter().map(|l| l.1).collect();
        assert_eq!(order, ["f1", "s1"]);
        let moved = w
            .stock
            .ledger
            .row("s1")
            .and_then(|r| r.link)
            .expect("linked");
        assert_eq!(moved.index, 2);
        assert_ne!(moved.hash, provisional.hash);
        assert_eq!(w.stock.ledger.balance().good, 222 - 111);
    }
}

/// Several chits from both sides cross; the foil's answers arrive before
/// its chits, out of order, twice.
#[test]
fn many_crossing_chits_with_reordering_and_duplicates() {
    let mut w = World::new(json!(1000), json!(1000));
    for i in 0..4 {
        w.pay(Side::Stock, &format!("s{i}"), 10 + i);
        w.pay(Side::Foil, &format!("f{i}"), 20 + i);
    }
    // Deliver the stock's chits to the foil first (the foil answers each),
    // then everything in flight to the stock, newest first, twice.
    let (to_foil, mut to_stock): (Vec<_>, Vec<_>) =
        w.flight.drain(..).partition(|(to, _)| *to == Side::Foil);
    for (to, text) in to_foil {
        w.receive(to, &text);
    }
    to_stock.append(&mut w.flight);
    to_stock.reverse();
    for (to, text) in to_stock.iter().chain(to_stock.iter()) {
        w.receive(*to, text);
    }
    w.deliver_all();
    w.assert_converged();
    assert_eq!(w.foil.ledger.links().len(), 8);
}

/// The foil's chits reach the stock newest first. The stock keeps each one
/// it cannot link yet with the place the foil gave (a claim), asks for the
/// chits before it, and links them all as soon as the first arrives.
#[test]
fn foil_chits_arriving_newest_first() {
    let mut w = World::new(json!(100), json!(100));
    for i in 1..=3 {
        w.pay(Side::Foil, &format!("f{i}"), i);
    }
    w.flight.reverse();
    w.deliver(0);
    assert_eq!(w.stock.ledger.consensus("f3"), Some(Consensus::Unlinked));
    let claim = w
        .stock
        .ledger
        .row("f3")
        .and_then(|r| r.claim)
        .expect("claim");
    assert_eq!(claim.index, 3);
    assert_eq!(w.stock.ledger.balance().good, 3, "kept, though not linked");
    // Its request for the chits after index 0 is on its way to the foil.
    assert!(
        w.flight
            .iter()
            .any(|(to, t)| *to == Side::Foil && t.contains("\"sub\":\"req\""))
    );
    w.deliver(0); // f2: out of reach too
    w.deliver(0); // f1: links, and with it f2 and f3
    assert!(w.stock.ledger.is_consensed());
    assert_eq!(w.stock.ledger.links(), w.foil.ledger.links());
    w.deliver_all();
    w.assert_converged();
}

/// A foil chit is lost for good; the next one shows the stock the gap, and
/// the stock's own request brings the lost one.
#[test]
fn a_gap_makes_the_stock_ask() {
    let mut w = World::new(json!(100), json!(100));
    w.pay(Side::Foil, "f1", 1);
    w.flight.clear();
    w.pay(Side::Foil, "f2", 2);
    w.deliver_all();
    w.assert_converged();
    assert_eq!(w.stock.ledger.links().len(), 2);
}

/// Messages lost for good (not retried by an outbox) are recovered by a
/// consensus check: the stock's `req`, the foil's end announcement, and
/// the chit messages the ledger still owes.
#[test]
fn lost_messages_are_recovered_by_sync() {
    let mut w = World::new(json!(100), json!(100));
    w.pay(Side::Foil, "f1", 5);
    w.pay(Side::Stock, "s1", 6);
    w.pay(Side::Foil, "f2", 7);
    w.flight.clear(); // all three lost after they left
    assert!(w.stock.ledger.unsent().is_empty(), "they were sent");
    w.sync(Side::Stock);
    w.deliver_all();
    w.assert_converged();
    assert_eq!(w.stock.ledger.links().len(), 3);

    // The foil's answer to a stock chit is lost: the stock stays
    // provisional until the foil announces its end.
    w.pay(Side::Stock, "s2", 8);
    w.deliver(0); // s2 reaches the foil
    w.flight.clear(); // its answer is lost
    assert!(!w.stock.ledger.is_consensed());
    w.sync(Side::Foil);
    w.deliver_all();
    w.assert_converged();
}

/// A long run of chits the stock lacks comes in pages that fit one
/// transport packet; the stock asks again until it has them all.
#[test]
fn long_runs_come_in_pages() {
    let mut w = World::new(json!(1000), json!(1000));
    let memo = "x".repeat(10_000);
    for i in 0..12 {
        let chit = ChitBuilder::transaction(TALLY, Side::Foil, format!("f{i}"), DATE, 1)
            .memo(memo.as_str())
            .build()
            .expect("chit");
        w.issue(Side::Foil, chit).expect("pays");
    }
    w.flight.clear();
    w.sync(Side::Stock);
    let mut pages = 0;
    while let Some((to, text)) = w.flight.first().cloned() {
        if to == Side::Stock && text.contains("\"chits\"") {
            pages += 1;
            // One Noise transport message holds at most 65519 bytes.
            assert!(text.len() <= 65_519 - 1_000, "{} bytes", text.len());
        }
        w.deliver(0);
    }
    assert!(pages >= 3, "{pages} pages");
    w.assert_converged();
}

/// Replays change nothing, whenever they arrive.
#[test]
fn replayed_messages_change_nothing() {
    let mut w = World::new(json!(100), json!(100));
    w.pay(Side::Foil, "f1", 5);
    w.pay(Side::Stock, "s1", 6);
    let first: Vec<(Side, String)> = w.flight.clone();
    w.deliver_all();
    w.assert_converged();
    for (to, text) in &first {
        let party = w.party(*to);
        let before = (party.ledger.rows(), party.ledger.confirmed());
        let outcome = party.ledger.apply_json(text).expect("a replay is accepted");
        assert!(outcome.changes.is_empty(), "a replay changed something");
        assert_eq!(outcome.ignored, Some(Ignored::Duplicate));
        assert_eq!((party.ledger.rows(), party.ledger.confirmed()), before);
        // The foil answers a repeated chit again (harmless for the stock).
        for message in outcome.outgoing {
            w.flight.push((to.other(), message.to_json()));
        }
    }
    let before = w.stock.ledger.rows();
    w.deliver_all();
    assert_eq!(w.stock.ledger.rows(), before);
    w.assert_converged();

    // An invoice refused, then its old pend replayed: stays refused.
    w.invoice(Side::Stock, "inv", 50, "x");
    let pend = w.flight[0].1.clone();
    w.deliver_all();
    w.reject(Side::Foil, "inv");
    let void = w.flight[0].1.clone();
    w.deliver_all();
    let outcome = w.foil.ledger.apply_json(&pend).expect("replay");
    assert!(outcome.changes.is_empty());
    assert_eq!(w.foil.state("inv"), "L.void");
    // The refusal of the first version does not refuse a resubmission.
    w.invoice(Side::Stock, "inv", 40, "y");
    w.deliver_all();
    assert_eq!(w.stock.state("inv"), "A.pend");
    let outcome = w.stock.ledger.apply_json(&void).expect("late void");
    assert!(outcome.changes.is_empty());
    assert!(matches!(outcome.ignored, Some(Ignored::Stale { .. })));
    assert_eq!(w.stock.state("inv"), "A.pend");
    w.assert_converged();
}

/// Every single-byte change of a genuine message is either refused with
/// the ledger unchanged, or has exactly the effect of the genuine message
/// (a change in a member nobody reads), or only keeps the genuine chit
/// aside (a changed index that points past the agreed chain): it never
/// makes the ledger accept something the signer did not sign, nor links a
/// chit where the foil did not put it.
#[test]
fn tampered_messages_are_refused() {
    let mut w = World::new(json!(100), json!(100));
    w.pay(Side::Foil, "f1", 5);
    w.deliver_all();
    // A genuine foil chit at index 2, and a genuine update with chits
    // (the foil's answer to a stock chit that crossed another foil chit).
    w.pay(Side::Foil, "f2", 7);
    let chit_message = w.flight.pop().expect("f2").1;
    w.pay(Side::Stock, "s1", 3);
    let stock_chit = w.flight.pop().expect("s1").1;
    w.receive(Side::Foil, &stock_chit);
    let update = w.flight.pop().expect("upd").1;
    assert!(update.contains("\"sub\":\"upd\"") && update.contains("\"chits\""));

    for genuine in [&chit_message, &update] {
        let ledger = &w.stock.ledger;
        let before = (ledger.rows(), ledger.confirmed());
        let mut good = ledger.clone();
        good.apply_json(genuine)
            .expect("the genuine message applies");
        let after_good = (good.rows(), good.confirmed());
        assert_ne!(
            after_good, before,
            "the genuine message must change something"
        );
        let mut refused = BTreeMap::<&'static str, usize>::new();
        for at in 0..genuine.len() {
            let mut bytes = genuine.as_bytes().to_vec();
            bytes[at] ^= 0x01;
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            let mut copy = ledger.clone();
            match copy.apply_json(&text) {
                Err(error) => {
                    assert_eq!(
                        (copy.rows(), copy.confirmed()),
                        before,
                        "refused but changed"
                    );
                    *refused.entry(kind(&error)).or_default() += 1;
                }
                Ok(_) => {
                    // Chits are compared by what is signed: a changed
                    // member name nobody signs is kept as an extra member.
                    let signed =
                        |r: &ChitRow| (r.record.hash(), r.record.signature().map(str::to_owned));
                    let chits_ok = copy
                        .rows()
                        .iter()
                        .all(|r| good.row(&r.uuid).map(|g| signed(&g)) == Some(signed(r)));
                    assert!(chits_ok, "byte {at}: a chit nobody signed was kept\n{text}");
                    let chain_ok = copy.links() == ledger.links() || copy.links() == good.links();
                    assert!(chain_ok, "byte {at}: the chain changed otherwise\n{text}");
                    let confirmed = copy.confirmed();
                    assert!(
                        confirmed == before.1 || confirmed == after_good.1,
                        "byte {at}"
                    );
                }
            }
        }
        // A test of the test: each kind of refusal happened.
        for expected in ["json", "message", "signature", "link"] {
            assert!(
                refused.get(expected).is_some_and(|n| *n > 0),
                "no {expected} refusal: {refused:?}"
            );
        }
    }
}

fn kind(error: &ApplyError) -> &'static str {
    match error {
        ApplyError::Message(MessageError::Json(_)) => "json",
        ApplyError::Message(_) => "message",
        ApplyError::Signature { .. } => "signature",
        ApplyError::BadLink { .. } | ApplyError::Fork { .. } => "link",
        ApplyError::WrongTally { .. } => "tally",
        _ => "other",
    }
}

/// A chit of another tally (even between the same two keys) is refused,
/// and so is one relabelled with this tally's uuid.
#[test]
fn chits_for_another_tally_are_refused() {
    let mut w = World::new(json!(100), json!(100));
    let (sk, fk) = (key(STOCK_PHRASE), key(FOIL_PHRASE));
    let other = open_tally(
        "aaaaaaaa-0000-4000-8000-000000000000",
        &sk,
        &fk,
        json!(100),
        json!(100),
    );
    let mut other_ledger = ChitLedger::new(&other, Side::Foil);
    let chit = ChitBuilder::transaction(other.record().uuid(), Side::Foil, "x1", DATE, 5)
        .build()
        .expect("chit");
    let outcome = other_ledger
        .issue(&fk, chit)
        .expect("pays on the other tally");
    let text = outcome.outgoing[0].to_json();
    let before = w.stock.ledger.rows();
    assert!(matches!(
        w.stock.ledger.apply_json(&text),
        Err(ApplyError::WrongTally { .. })
    ));
    // The same chit claiming to be on this tally (its digest left out, as
    // a forger would): the foil never signed that.
    let mut relabelled: Value = serde_json::from_str(&text).expect("json");
    relabelled["object"]["tally"] = json!(TALLY);
    if let Some(object) = relabelled["object"].as_object_mut() {
        object.remove("digest");
    }
    assert!(matches!(
        w.stock.ledger.apply_json(&relabelled.to_string()),
        Err(ApplyError::Signature { .. })
    ));
    assert_eq!(w.stock.ledger.rows(), before);
    // Issuing on the wrong tally is refused before signing.
    let stray = ChitBuilder::transaction("elsewhere", Side::Foil, "x2", DATE, 5)
        .build()
        .expect("chit");
    assert!(matches!(
        w.foil.ledger.issue(&fk, stray),
        Err(IssueError::WrongTally { .. })
    ));
    // Updates and requests name their tally too.
    let req = ChitMessage::Request {
        tally: "elsewhere".into(),
        after: ChainLink {
            index: 0,
            hash: [0; 32],
        },
    };
    assert!(matches!(
        w.foil.ledger.apply(&req),
        Err(ApplyError::WrongTally { .. })
    ));
}

/// The limit the partner grants is checked before anything is signed: with
/// the wrong key, an over-limit payment still fails on the limit (a check
/// after signing would fail on the key first).
#[test]
fn payments_over_the_limit_are_refused_before_signing() {
    // The stock lets the foil owe 10 CHIPs; the foil lets the stock owe 2.
    let mut w = World::new(json!(10), json!(2));
    let before = w.foil.ledger.rows();
    let wrong_key = key(STOCK_PHRASE);
    let over = w
        .foil
        .ledger
        .issue(&wrong_key, payment(Side::Foil, "big", 10_001))
        .expect_err("over the limit");
    assert_eq!(
        over,
        IssueError::OverLimit(OverLimit {
            balance: 0,
            units: 10_001,
            limit: notch_core::tally::CreditLimit {
                granted_by: Side::Stock,
                milli_chips: 10_000
            }
        })
    );
    assert_eq!(w.foil.ledger.rows(), before);
    assert!(w.flight.is_empty());
    // Exactly the limit is fine; then nothing more, signed or pending.
    w.pay(Side::Foil, "all", 10_000);
    assert!(matches!(
        w.foil
            .ledger
            .issue(&w.foil.key, payment(Side::Foil, "one-more", 1)),
        Err(IssueError::OverLimit(_))
    ));
    w.deliver_all();
    // The stock may pay back (its own limit is 2 CHIPs beyond zero).
    w.pay(Side::Stock, "back", 12_000);
    assert!(matches!(
        w.stock
            .ledger
            .issue(&w.stock.key, payment(Side::Stock, "more", 1)),
        Err(IssueError::OverLimit(_))
    ));
    w.deliver_all();
    assert_eq!(w.foil.ledger.balance().good, 2_000);
    assert_eq!(w.foil.ledger.available(), Ok(12_000));

    // An approval is checked the same way, and the invoice stays to decide.
    w.invoice(Side::Stock, "inv", 12_001, "too much");
    w.deliver_all();
    assert!(matches!(
        w.foil.ledger.approve(&wrong_key, "inv"),
        Err(ApproveError::OverLimit(_))
    ));
    assert_eq!(w.foil.state("inv"), "L.pend");
    // The stock raises the foil's credit with a setting chit…
    let raise = ChitBuilder::setting(TALLY, Side::Stock, "raise", DATE, json!({"limit": 20}))
        .build()
        .expect("setting");
    w.issue(Side::Stock, raise).expect("sets");
    let settings = w
        .stock
        .ledger
        .limit_granted_by(Side::Stock)
        .expect("limit")
        .milli_chips;
    assert_eq!(settings, 20_000);
    w.deliver_all();
    // …and then the approval goes through.
    w.approve(Side::Foil, "inv").expect("within the new limit");
    w.deliver_all();
    w.assert_converged();
    assert_eq!(w.stock.ledger.balance().good, 12_001 - 2_000);

    // A limit Notch cannot read stops payments instead of being guessed.
    let mut odd = World::new(json!("amort(10000, 240)"), json!(0));
    assert!(matches!(
        odd.foil
            .ledger
            .issue(&odd.foil.key, payment(Side::Foil, "p", 1)),
        Err(IssueError::Limit(_))
    ));
    // The partner's chit past our limit is still accepted: it binds them.
    let signed = {
        let mut chit = payment(Side::Stock, "gift", 1_000_000);
        chit.sign_for(odd.tally.record(), &odd.stock.key)
            .expect("signs");
        chit
    };
    let message = ChitMessage::Chit {
        action: notch_core::tally::ChitAction::Good,
        chit: signed,
        link: None,
    };
    let outcome = odd.foil.ledger.apply(&message).expect("accepted");
    assert_eq!(odd.foil.state("gift"), "A.good");
    assert!(
        outcome
            .changes
            .notices
            .iter()
            .any(|n| matches!(n, LedgerNotice::Chit { .. }))
    );
}

/// Messages that make no sense for the side that gets them.
#[test]
fn misdirected_messages_are_refused() {
    let mut w = World::new(json!(100), json!(100));
    w.pay(Side::Foil, "f1", 5);
    let good = w.flight[0].1.clone();
    // The foil's own chit sent back to it.
    assert!(matches!(
        w.foil.ledger.apply_json(&good),
        Err(ApplyError::UnexpectedIssuer { .. })
    ));
    w.deliver_all();
    let sync = w.foil.ledger.sync();
    // Only the foil sends updates, only the stock requests.
    assert!(matches!(
        w.foil.ledger.apply(&sync[0]),
        Err(ApplyError::WrongRole { .. })
    ));
    let req = w.stock.ledger.sync();
    assert!(matches!(
        w.stock.ledger.apply(&req[0]),
        Err(ApplyError::WrongRole { .. })
    ));
    // A request from a chain that differs from ours.
    let forged = ChitMessage::Request {
        tally: TALLY.into(),
        after: ChainLink {
            index: 1,
            hash: [7; 32],
        },
    };
    let error = w.foil.ledger.apply(&forged).expect_err("fork");
    assert_eq!(error, ApplyError::Fork { index: 1 });
    let err = w.foil.ledger.error_message(&error).expect("an err message");
    let outcome = w
        .stock
        .ledger
        .apply_json(&err.to_json())
        .expect("err is reported");
    assert!(matches!(
        outcome.changes.notices[..],
        [LedgerNotice::PartnerError { index: Some(1), .. }]
    ));
}

// ---- random interleavings ---------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Pay { foil: bool, units: u16 },
    Invoice { payee_foil: bool, units: u16 },
    Decide { payer_foil: bool, approve: bool },
    Deliver(usize),
    Duplicate(usize),
    Drop(usize),
    Resend,
    Sync(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (any::<bool>(), 1u16..5000).prop_map(|(foil, units)| Step::Pay { foil, units }),
        1 => (any::<bool>(), 1u16..5000).prop_map(|(payee_foil, units)| Step::Invoice { payee_foil, units }),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(payer_foil, approve)| Step::Decide { payer_foil, approve }),
        8 => any::<usize>().prop_map(Step::Deliver),
        2 => any::<usize>().prop_map(Step::Duplicate),
        2 => any::<usize>().prop_map(Step::Drop),
        1 => Just(Step::Resend),
        1 => any::<bool>().prop_map(Step::Sync),
    ]
}

fn side(foil: bool) -> Side {
    if foil { Side::Foil } else { Side::Stock }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random chits from both sides, random delivery order, duplicates and
    /// drops (retried later, as an outbox does): once everything is
    /// delivered, both halves agree on the chain, the chits and the balance,
    /// and what each wrote to its store restores to the same ledger.
    #[test]
    fn random_interleavings_converge(
        steps in proptest::collection::vec(step(), 1..70),
        order in any::<u64>(),
        lose_for_good in any::<bool>(),
    ) {
        let mut w = World::new(json!(40), json!(40));
        let mut n = 0;
        for step in steps {
            match step {
                Step::Pay { foil, units } => {
                    n += 1;
                    let who = side(foil);
                    let before = w.party(who).ledger.rows();
                    match w.issue(who, payment(who, &format!("p{n}"), u64::from(units))) {
                        Ok(()) => {}
                        Err(IssueError::OverLimit(_)) => prop_assert_eq!(w.party(who).ledger.rows(), before),
                        Err(e) => panic!("{e}"),
                    }
                }
                Step::Invoice { payee_foil, units } => {
                    n += 1;
                    w.invoice(side(payee_foil), &format!("i{n}"), u64::from(units), "invoice");
                }
                Step::Decide { payer_foil, approve } => {
                    let payer = side(payer_foil);
                    let open: Option<String> = w.party(payer).ledger.rows().into_iter()
                        .find(|r| r.state.needs_action())
                        .map(|r| r.uuid);
                    if let Some(uuid) = open {
                        if approve {
                            let before = w.party(payer).ledger.rows();
                            match w.approve(payer, &uuid) {
                                Ok(()) => {}
                                Err(ApproveError::OverLimit(_)) => prop_assert_eq!(w.party(payer).ledger.rows(), before),
                                Err(e) => panic!("{e}"),
                            }
                        } else {
                            w.reject(payer, &uuid);
                        }
                    }
                }
                Step::Deliver(i) if !w.flight.is_empty() => {
                    let at = i % w.flight.len();
                    w.deliver(at);
                }
                Step::Duplicate(i) if !w.flight.is_empty() => {
                    let (to, text) = w.flight[i % w.flight.len()].clone();
                    w.receive(to, &text);
                }
                Step::Drop(i) if !w.flight.is_empty() => {
                    let at = i % w.flight.len();
                    let lost = w.flight.remove(at);
                    w.dropped.push(lost);
                }
                Step::Resend => {
                    let again: Vec<_> = w.dropped.drain(..).collect();
                    w.flight.extend(again);
                }
                Step::Sync(foil) => w.sync(side(foil)),
                _ => {}
            }
        }
        // Quiescence: the outboxes resend what was dropped, and everything
        // in flight is delivered, in an order of the test's choosing. Or
        // the chain messages dropped are lost for good (the invoices' pend
        // and void are not part of the consensus and stay with the outbox),
        // and consensus checks (`sync`) recover them.
        if lose_for_good {
            w.dropped.retain(|(_, t)| t.contains("\"action\":\"pend\"") || t.contains("\"action\":\"void\""));
        }
        let mut rng = order | 1;
        let mut rounds = 0;
        let mut syncs = 0;
        loop {
            let again: Vec<_> = w.dropped.drain(..).collect();
            w.flight.extend(again);
            if w.flight.is_empty() {
                if w.same_chain() {
                    break;
                }
                prop_assert!(lose_for_good, "quiet but not consensed");
                syncs += 1;
                prop_assert!(syncs < 10, "consensus checks do not recover");
                w.sync(Side::Stock);
                w.sync(Side::Foil);
                continue;
            }
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let at = (rng % w.flight.len() as u64) as usize;
            w.deliver(at);
            rounds += 1;
            prop_assert!(rounds < 20_000, "the exchange does not end");
        }
        w.assert_converged();
    }
}
