//! The tally state machine, case by case and under random event sequences.

#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::keys::{Seed, WalletKeys};
use crate::peer::LocalKey;
use crate::tally::verify_tally_json;

struct Party {
    key: TallyKey,
    agent: AgentId,
}

impl Party {
    fn new(seed: u8) -> Self {
        let keys = WalletKeys::new(&Seed::from_bytes(&[seed; 64]).unwrap(), 0).unwrap();
        Party {
            key: keys.tally_key().unwrap(),
            agent: LocalKey::from_agent_key(&keys.agent_key().unwrap()).agent(),
        }
    }

    fn me(&self) -> Me<'_> {
        Me {
            agent: self.agent,
            key: &self.key,
        }
    }

    fn cert(&self, name: &str) -> Value {
        json!({"chad": {"cid": name, "agent": self.agent.to_string(), "host": "127.0.0.1", "port": 1},
               "name": {"first": name}, "public": self.key.public_key().to_jwk(), "type": "p"})
    }
}

/// Alice issues (stock), Bob scans (foil), Zed is a stranger.
struct World {
    alice: Party,
    bob: Party,
    zed: Party,
    draft: Map<String, Value>,
    /// Alice's offer to Bob (her signature).
    offer: TallyRecord,
    /// The same, accepted by Bob (both signatures).
    accepted: TallyRecord,
    /// Accepted, but Bob changed his terms first and signed that.
    tampered: TallyRecord,
    /// Bob's signature only.
    bob_only: TallyRecord,
    /// Alice's revised offer (other terms, her signature).
    revised: TallyRecord,
    /// Alice offering to Zed instead.
    to_zed: TallyRecord,
    /// Zed's offer to Bob.
    from_zed: TallyRecord,
}

fn draft_of(issuer: &Party, name: &str, uuid: &str) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "version": 1, "uuid": uuid, "date": "2025-01-02T03:04:05.678+00:00",
        "comment": null, "agree": {"domain": "mychips.org", "name": "Tally_Contract", "version": 1},
        "stock": {"cert": issuer.cert(name), "terms": {"limit": 100}},
        "foil": {"terms": {}},
    }) else {
        unreachable!("an object")
    };
    map
}

fn record_with(draft: &Map<String, Value>, foil: &Value, foil_terms: Value) -> TallyRecord {
    let mut map = draft.clone();
    map["foil"] = json!({"cert": foil, "terms": foil_terms});
    TallyRecord::from_value(Value::Object(map)).unwrap()
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let (alice, bob, zed) = (Party::new(1), Party::new(2), Party::new(3));
        let draft = draft_of(&alice, "alice", "11111111-2222-4333-8444-555555555555");
        let mut offer = record_with(&draft, &bob.cert("bob"), json!({}));
        offer.sign(Side::Stock, &alice.key).unwrap();
        let mut accepted = offer.clone();
        accepted.sign(Side::Foil, &bob.key).unwrap();
        let mut tampered = record_with(&draft, &bob.cert("bob"), json!({"limit": 999}));
        let mut value = tampered.to_value();
        value["sign"] = json!({"stock": offer.signature(Side::Stock)});
        tampered = TallyRecord::from_value(value).unwrap();
        tampered.sign(Side::Foil, &bob.key).unwrap();
        let mut bob_only = record_with(&draft, &bob.cert("bob"), json!({}));
        bob_only.sign(Side::Foil, &bob.key).unwrap();
        let mut revised = record_with(&draft, &bob.cert("bob"), json!({"limit": 5}));
        revised.sign(Side::Stock, &alice.key).unwrap();
        let mut to_zed = record_with(&draft, &zed.cert("zed"), json!({}));
        to_zed.sign(Side::Stock, &alice.key).unwrap();
        let zed_draft = draft_of(&zed, "zed", "99999999-2222-4333-8444-555555555555");
        let mut from_zed = record_with(&zed_draft, &bob.cert("bob"), json!({}));
        from_zed.sign(Side::Stock, &zed.key).unwrap();
        World {
            alice,
            bob,
            zed,
            draft,
            offer,
            accepted,
            tampered,
            bob_only,
            revised,
            to_zed,
            from_zed,
        }
    })
}

fn alice_draft(w: &World) -> Tally {
    Tally {
        state: TallyState::Draft,
        side: Some(Side::Stock),
        partner: None,
        body: Body::Draft(w.draft.clone()),
    }
}

fn bob_ticket(w: &World) -> Tally {
    Tally {
        state: TallyState::Ticket,
        side: None,
        partner: Some(w.alice.agent),
        body: Body::Ticket,
    }
}

const NOW: u64 = 1_000;
const FRESH: TokenInfo = TokenInfo {
    expires: 2_000,
    used_by: None,
};

fn moved(outcome: Outcome) -> Change {
    match outcome {
        Outcome::Moved(change) => *change,
        other => panic!("expected a move, got {other:?}"),
    }
}

fn ticket_from(p: &Party, cert: Value, token: TokenInfo) -> Event {
    Event::Ticket {
        from: p.agent,
        cert,
        token,
        now: NOW,
    }
}

#[test]
fn state_names_are_mychips_names() {
    let names: Vec<&str> = TallyState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "ticket",
            "draft",
            "draft.offer",
            "H.offer",
            "P.offer",
            "P.offer.void",
            "B.offer.open",
            "open",
            "closing",
            "closed",
            "void"
        ]
    );
    for s in TallyState::ALL {
        assert_eq!(TallyState::from_name(s.as_str()), Some(s));
        assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
    }
    for a in Action::ALL {
        assert_eq!(Action::from_name(a.as_str()), Some(a));
    }
}

#[test]
fn ticket_offer_accept_opens_on_both_sides() {
    let w = world();
    // Alice: Bob presents her ticket; she signs and offers.
    let event = ticket_from(&w.bob, w.bob.cert("bob"), FRESH);
    let change = moved(transition(Some(&alice_draft(w)), &event, &w.alice.me()).unwrap());
    assert_eq!(change.tally.state, TallyState::DraftOffer);
    assert_eq!(change.tally.partner, Some(w.bob.agent));
    assert_eq!(change.send, Some(Action::Offer));
    assert!(change.use_token);
    let offer = change.tally.body.record().unwrap().clone();
    assert!(offer.signature(Side::Stock).is_some());
    assert!(offer.signature(Side::Foil).is_none());
    assert_eq!(offer.party(Side::Foil).cert(), &w.bob.cert("bob"));
    let alice = change.tally;
    let alice = moved(
        transition(
            Some(&alice),
            &Event::Delivered(Action::Offer),
            &w.alice.me(),
        )
        .unwrap(),
    )
    .tally;
    assert_eq!(alice.state, TallyState::HOffer);

    // Bob: the offer answers his ticket.
    let event = Event::Offer {
        from: w.alice.agent,
        record: offer.clone(),
    };
    let change = moved(transition(Some(&bob_ticket(w)), &event, &w.bob.me()).unwrap());
    assert_eq!(change.tally.state, TallyState::POffer);
    assert_eq!(change.tally.side, Some(Side::Foil));
    assert_eq!(change.notice, Some(Notice::Offered));
    let bob = change.tally;
    // The same offer again changes nothing.
    assert_eq!(
        transition(Some(&bob), &event, &w.bob.me()),
        Ok(Outcome::Unchanged { resend: None })
    );
    let change = moved(transition(Some(&bob), &Event::Accept, &w.bob.me()).unwrap());
    assert_eq!(change.tally.state, TallyState::BOfferOpen);
    assert_eq!(change.send, Some(Action::Open));
    let accepted = change.tally.body.record().unwrap().clone();
    verify_tally_json(&accepted.to_json()).unwrap();
    let bob = change.tally;
    let change =
        moved(transition(Some(&bob), &Event::Delivered(Action::Open), &w.bob.me()).unwrap());
    assert_eq!(change.tally.state, TallyState::Open);
    assert_eq!(change.notice, Some(Notice::Opened));

    // Alice takes Bob's acceptance.
    let event = Event::Open {
        from: w.bob.agent,
        record: accepted.clone(),
    };
    let change = moved(transition(Some(&alice), &event, &w.alice.me()).unwrap());
    assert_eq!(change.tally.state, TallyState::Open);
    assert_eq!(change.notice, Some(Notice::Opened));
    let open = change.tally;
    assert_eq!(open.body.record().unwrap().to_json(), accepted.to_json());
    // A repeat changes nothing; the open tally refuses everything else.
    assert_eq!(
        transition(Some(&open), &event, &w.alice.me()),
        Ok(Outcome::Unchanged { resend: None })
    );
    assert!(matches!(
        transition(
            Some(&open),
            &Event::Void { from: w.bob.agent },
            &w.alice.me()
        ),
        Err(Refusal::Final { .. })
    ));
}

#[test]
fn tickets_are_refused_with_their_reason() {
    let w = world();
    let draft = alice_draft(w);
    let me = w.alice.me();
    let bob_cert = w.bob.cert("bob");
    let expired = TokenInfo {
        expires: NOW,
        used_by: None,
    };
    assert_eq!(
        transition(
            Some(&draft),
            &ticket_from(&w.bob, bob_cert.clone(), expired),
            &me
        ),
        Err(Refusal::TicketExpired { expires: NOW })
    );
    assert_eq!(
        transition(None, &ticket_from(&w.bob, bob_cert.clone(), FRESH), &me),
        Err(Refusal::TicketUnknown)
    );
    // Used by Bob: Zed is refused; Bob presenting it again is a repeat that
    // asks for the offer again.
    let offered = moved(
        transition(
            Some(&draft),
            &ticket_from(&w.bob, bob_cert.clone(), FRESH),
            &me,
        )
        .unwrap(),
    )
    .tally;
    let used = TokenInfo {
        expires: 2_000,
        used_by: Some(w.bob.agent),
    };
    assert_eq!(
        transition(
            Some(&offered),
            &ticket_from(&w.zed, w.zed.cert("zed"), used),
            &me
        ),
        Err(Refusal::TicketUsed)
    );
    assert_eq!(
        transition(
            Some(&offered),
            &ticket_from(&w.bob, bob_cert.clone(), used),
            &me
        ),
        Ok(Outcome::Unchanged {
            resend: Some(Action::Offer)
        })
    );
    // Withdrawn.
    let void = moved(transition(Some(&draft), &Event::Refuse, &me).unwrap()).tally;
    assert_eq!(void.state, TallyState::Void);
    assert_eq!(
        transition(
            Some(&void),
            &ticket_from(&w.bob, bob_cert.clone(), FRESH),
            &me
        ),
        Err(Refusal::TicketWithdrawn)
    );
    // Certificates that do not belong to whoever connected, or are ours.
    for (from, cert) in [
        (&w.zed, bob_cert.clone()),
        (&w.bob, w.alice.cert("me")),
        (&w.bob, json!({"chad": {"agent": w.bob.agent.to_string()}})),
        (&w.bob, json!("not an object")),
    ] {
        let refused = transition(Some(&draft), &ticket_from(from, cert, FRESH), &me);
        assert!(
            matches!(refused, Err(Refusal::BadCertificate(_))),
            "{refused:?}"
        );
    }
}

#[test]
fn offers_that_are_not_ours_or_not_signed_are_refused() {
    let w = world();
    let me = w.bob.me();
    let ticket = bob_ticket(w);
    let offer_from = |from: &Party, record: &TallyRecord| Event::Offer {
        from: from.agent,
        record: record.clone(),
    };
    assert_eq!(
        transition(Some(&ticket), &offer_from(&w.zed, &w.from_zed), &me),
        Err(Refusal::WrongPartner)
    );
    for record in [&w.to_zed, &w.bob_only, &w.accepted] {
        let refused = transition(Some(&ticket), &offer_from(&w.alice, record), &me);
        assert!(matches!(refused, Err(Refusal::BadOffer(_))), "{refused:?}");
    }
    // A forged signature: Alice's offer with Bob's terms changed after she signed.
    let mut value = w.offer.to_value();
    value["foil"]["terms"] = json!({"limit": 1});
    let forged = TallyRecord::from_value(value).unwrap();
    let refused = transition(Some(&ticket), &offer_from(&w.alice, &forged), &me);
    assert!(
        matches!(&refused, Err(Refusal::BadOffer(why)) if why.contains("stock signature")),
        "{refused:?}"
    );
    // A revised offer replaces the first, and is notified again.
    let bob = moved(transition(Some(&ticket), &offer_from(&w.alice, &w.offer), &me).unwrap()).tally;
    let change = moved(transition(Some(&bob), &offer_from(&w.alice, &w.revised), &me).unwrap());
    assert_eq!(change.notice, Some(Notice::Offered));
    assert_eq!(change.tally.body.record(), Some(&w.revised));
}

#[test]
fn an_acceptance_must_carry_both_signatures_over_what_was_offered() {
    let w = world();
    let me = w.alice.me();
    let alice = Tally {
        state: TallyState::HOffer,
        side: Some(Side::Stock),
        partner: Some(w.bob.agent),
        body: Body::Record(w.offer.clone()),
    };
    let open = |from: &Party, record: &TallyRecord| Event::Open {
        from: from.agent,
        record: record.clone(),
    };
    assert_eq!(
        transition(Some(&alice), &open(&w.bob, &w.tampered), &me),
        Err(Refusal::Changed)
    );
    assert!(matches!(
        transition(Some(&alice), &open(&w.bob, &w.offer), &me),
        Err(Refusal::BadSignatures(_))
    ));
    assert_eq!(
        transition(Some(&alice), &open(&w.zed, &w.accepted), &me),
        Err(Refusal::WrongPartner)
    );
    // Bob refuses instead.
    let change = moved(transition(Some(&alice), &Event::Void { from: w.bob.agent }, &me).unwrap());
    assert_eq!(change.tally.state, TallyState::Void);
    assert_eq!(change.notice, Some(Notice::Refused));
    assert!(matches!(
        transition(Some(&change.tally), &open(&w.bob, &w.accepted), &me),
        Err(Refusal::Final { .. })
    ));
}

#[test]
fn refusals_and_give_ups_end_in_void() {
    let w = world();
    let me = w.bob.me();
    let bob = moved(
        transition(
            Some(&bob_ticket(w)),
            &Event::Offer {
                from: w.alice.agent,
                record: w.offer.clone(),
            },
            &me,
        )
        .unwrap(),
    )
    .tally;
    let change = moved(transition(Some(&bob), &Event::Refuse, &me).unwrap());
    assert_eq!(change.tally.state, TallyState::POfferVoid);
    assert_eq!(change.send, Some(Action::Void));
    let change =
        moved(transition(Some(&change.tally), &Event::Delivered(Action::Void), &me).unwrap());
    assert_eq!(change.tally.state, TallyState::Void);
    // A ticket refused by its issuer, or given up, is void with the reason.
    let event = Event::TicketRefused {
        from: w.alice.agent,
        reason: "this ticket was already used".into(),
    };
    let change = moved(transition(Some(&bob_ticket(w)), &event, &me).unwrap());
    assert_eq!(change.tally.state, TallyState::Void);
    assert_eq!(
        change.reason.as_deref(),
        Some("this ticket was already used")
    );
    assert!(change.cancel_outbox);
    let change = moved(
        transition(
            Some(&bob_ticket(w)),
            &Event::GiveUp {
                reason: "expired".into(),
            },
            &me,
        )
        .unwrap(),
    );
    assert_eq!(change.tally.state, TallyState::Void);
    // Nobody else can refuse Bob's ticket for Alice.
    let event = Event::TicketRefused {
        from: w.zed.agent,
        reason: "no".into(),
    };
    assert_eq!(
        transition(Some(&bob_ticket(w)), &event, &me),
        Err(Refusal::WrongPartner)
    );
}

/// Every event the property tests draw from.
fn event_pool() -> Vec<Event> {
    let w = world();
    let mut pool = vec![
        Event::Accept,
        Event::Refuse,
        Event::GiveUp {
            reason: "gave up".into(),
        },
    ];
    pool.extend(Action::ALL.into_iter().map(Event::Delivered));
    let parties = [&w.alice, &w.bob, &w.zed];
    let records = [
        &w.offer,
        &w.accepted,
        &w.tampered,
        &w.bob_only,
        &w.revised,
        &w.to_zed,
        &w.from_zed,
    ];
    for from in parties {
        for record in records {
            pool.push(Event::Offer {
                from: from.agent,
                record: record.clone(),
            });
            pool.push(Event::Open {
                from: from.agent,
                record: record.clone(),
            });
        }
        pool.push(Event::Void { from: from.agent });
        pool.push(Event::TicketRefused {
            from: from.agent,
            reason: "refused".into(),
        });
        for cert_of in parties {
            for used_by in [None, Some(w.bob.agent), Some(w.zed.agent)] {
                for now in [NOW, 5_000] {
                    pool.push(Event::Ticket {
                        from: from.agent,
                        cert: cert_of.cert("x"),
                        token: TokenInfo {
                            expires: 2_000,
                            used_by,
                        },
                        now,
                    });
                }
            }
        }
    }
    pool
}

fn pool() -> &'static [Event] {
    static POOL: OnceLock<Vec<Event>> = OnceLock::new();
    POOL.get_or_init(event_pool)
}

/// The next step of an honest exchange (or of an honest refusal), so
/// random runs get deep too.
fn honest_next(as_bob: bool, state: TallyState, refuse: bool) -> Option<Event> {
    let w = world();
    if refuse {
        return Some(match (as_bob, state) {
            (false, TallyState::HOffer | TallyState::DraftOffer) => {
                Event::Void { from: w.bob.agent }
            }
            (true, TallyState::POffer) => Event::Refuse,
            (true, TallyState::POfferVoid) => Event::Delivered(Action::Void),
            (true, TallyState::Ticket) => Event::TicketRefused {
                from: w.alice.agent,
                reason: "used".into(),
            },
            _ => return honest_next(as_bob, state, false),
        });
    }
    Some(match (as_bob, state) {
        (false, TallyState::Draft) => ticket_from(&w.bob, w.bob.cert("bob"), FRESH),
        (false, TallyState::DraftOffer) => Event::Delivered(Action::Offer),
        (false, TallyState::HOffer) => Event::Open {
            from: w.bob.agent,
            record: w.accepted.clone(),
        },
        (true, TallyState::Ticket) => Event::Offer {
            from: w.alice.agent,
            record: w.offer.clone(),
        },
        (true, TallyState::POffer) => Event::Accept,
        (true, TallyState::BOfferOpen) => Event::Delivered(Action::Open),
        _ => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// From Alice's draft or Bob's scanned ticket, any sequence of events:
    /// a final state never moves, nothing is open without both signatures
    /// verifying, a void or refused tally never opens, the partner never
    /// changes once known, and our half always carries our key.
    #[test]
    fn the_state_machine_keeps_its_promises(
        as_bob in any::<bool>(),
        picks in proptest::collection::vec((0u8..4, 0usize..10_000), 1..14),
    ) {
        let w = world();
        let (me, mut tally) = if as_bob {
            (w.bob.me(), bob_ticket(w))
        } else {
            (w.alice.me(), alice_draft(w))
        };
        let events = pool();
        let mut refused_once = false;
        for (mode, pick) in picks {
            // 0, 1: any event; 2: the honest next step; 3: an honest refusal.
            let next = (mode >= 2)
                .then(|| honest_next(as_bob, tally.state, mode == 3 && pick % 3 == 0))
                .flatten();
            let event = next.as_ref().unwrap_or(&events[pick % events.len()]);
            let before = tally.clone();
            let Ok(outcome) = transition(Some(&tally), event, &me) else {
                continue;
            };
            let Outcome::Moved(change) = outcome else {
                continue;
            };
            prop_assert!(!before.state.is_final(), "{:?} moved out of {}", event, before.state);
            tally = change.tally;
            if let Some(partner) = before.partner {
                prop_assert_eq!(tally.partner, Some(partner));
            }
            if matches!(tally.state, TallyState::Void | TallyState::POfferVoid) {
                refused_once = true;
            }
            if tally.state == TallyState::Open {
                prop_assert!(!refused_once, "a refused tally opened");
                let record = tally.body.record().expect("an open tally has its record");
                prop_assert!(verify_tally_json(&record.to_json()).is_ok());
            }
            if let (Some(record), Some(side)) = (tally.body.record(), tally.side) {
                prop_assert_eq!(record.party(side).public_key().ok(), Some(me.key.public_key()));
            }
        }
    }
}

#[test]
fn closing_states_have_mychips_names_and_settle_on_the_balance() {
    use crate::tally::chain::CloseState as C;
    use crate::tally::lifecycle::settle;
    for state in TallyState::ALL {
        assert_eq!(TallyState::from_name(state.as_str()), Some(state));
    }
    assert_eq!(TallyState::Closing.as_str(), "closing");
    assert_eq!(TallyState::Closed.as_str(), "closed");
    assert_eq!(settle(TallyState::Open, C::Open), Some(TallyState::Open));
    assert_eq!(
        settle(TallyState::Open, C::Closing),
        Some(TallyState::Closing)
    );
    assert_eq!(
        settle(TallyState::Open, C::Closed),
        Some(TallyState::Closed)
    );
    assert_eq!(
        settle(TallyState::Closing, C::Closed),
        Some(TallyState::Closed)
    );
    // A late signed chit moves a closed tally's balance: closing again.
    assert_eq!(
        settle(TallyState::Closed, C::Closing),
        Some(TallyState::Closing)
    );
    // Never back to open.
    assert_eq!(
        settle(TallyState::Closing, C::Open),
        Some(TallyState::Closing)
    );
    for state in [
        TallyState::Ticket,
        TallyState::Draft,
        TallyState::HOffer,
        TallyState::POffer,
        TallyState::BOfferOpen,
        TallyState::Void,
    ] {
        assert_eq!(settle(state, C::Closed), None);
    }
    for state in [TallyState::Open, TallyState::Closing, TallyState::Closed] {
        assert!(state.is_final() && state.has_chits());
    }
}
