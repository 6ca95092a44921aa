//! The tally commands under Tauri's mock runtime, between two apps with
//! real wallets (SQLite files in temp directories) whose real tally agents
//! talk over loopback: a ticket, its scan, the offer, acceptance, a
//! payment, an invoice approved; what bad input gives; the agent's life
//! with the lock and a new address; deep links.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Harness, ledger_info, responder};
use notch_ipc::tally::{
    AgentStatusView, ChitPage, ChitRow, DeepLink, TallyDetailView, TallyRow, TicketView,
    code as tally_code, command as tc,
};
use notch_ipc::{NotificationView, code, command};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tauri::Listener;

fn get<T: DeserializeOwned>(h: &Harness, cmd: &str, body: Value) -> T {
    match h.call(cmd, body) {
        Ok(v) => serde_json::from_value(v).unwrap(),
        Err(e) => panic!("{cmd}: {} ({})", e.message, e.code),
    }
}

/// Asks again every 50 ms until `f` gives something (30 s at most).
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn listening(h: &Harness) -> AgentStatusView {
    wait_for("the agent to listen", || {
        let s: AgentStatusView = get(h, tc::AGENT_STATUS, json!({}));
        (s.state == "listening").then_some(s)
    })
}

fn tally(h: &Harness, id: &str) -> TallyDetailView {
    get(h, tc::TALLY, json!({ "args": { "id": id } }))
}

fn chits(h: &Harness, id: &str, before: Option<&str>, limit: u32) -> ChitPage {
    get(
        h,
        tc::TALLY_CHITS,
        json!({ "args": { "id": id, "before": before, "limit": limit } }),
    )
}

fn chit(h: &Harness, tally: &str, uuid: &str) -> Option<ChitRow> {
    chits(h, tally, None, 200)
        .rows
        .into_iter()
        .find(|c| c.uuid == uuid)
}

fn notifications(h: &Harness) -> Vec<NotificationView> {
    get(h, command::NOTIFICATIONS, json!({}))
}

/// Every `notch://wallet` event of `h`'s app, as JSON.
fn record_events(h: &Harness) -> Arc<Mutex<Vec<Value>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    h.app().listen(notch_ipc::event::WALLET, move |event| {
        if let Ok(v) = serde_json::from_str::<Value>(event.payload()) {
            keep.lock().unwrap().push(v);
        }
    });
    seen
}

#[test]
fn two_apps_open_a_tally_and_pay_and_invoice_on_it() {
    let gateway = responder("200 OK", ledger_info().to_string());
    let (alice, bob) = (Harness::new(&gateway), Harness::new(&gateway));
    alice.create_wallet();
    bob.create_wallet();
    let a_agent = listening(&alice);
    listening(&bob);
    assert!(a_agent.bound.as_deref().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(a_agent.advertised, a_agent.bound, "loopback tells itself");
    let bob_events = record_events(&bob);

    // Alice's ticket, its QR code an SVG of the MyCHIPs link.
    let ticket: TicketView = get(
        &alice,
        tc::NEW_TICKET,
        json!({ "args": { "expires_in_minutes": 10, "my_limit": "100", "partner_limit": "50.5", "comment": "lunch club" } }),
    );
    assert!(ticket.link.starts_with("https://mychips.org/invite?"));
    assert!(ticket.qr_svg.contains("<svg"));
    assert_eq!(ticket.tally.phase, "draft");
    assert!(ticket.expires_at > 0);
    let a_id = ticket.tally.id.clone();
    let draft = tally(&alice, &a_id);
    assert_eq!(draft.ticket.map(|t| t.link), Some(ticket.link.clone()));

    // Bad CHIPs on a ticket: nothing is issued.
    let before = get::<Vec<TallyRow>>(&alice, tc::TALLIES, json!({})).len();
    let err = alice.err(
        tc::NEW_TICKET,
        json!({ "args": { "expires_in_minutes": null, "my_limit": "1.2345", "partner_limit": null, "comment": null } }),
    );
    assert_eq!(err.code, tally_code::BAD_CHIPS, "{}", err.message);
    assert_eq!(
        get::<Vec<TallyRow>>(&alice, tc::TALLIES, json!({})).len(),
        before
    );

    // Bob scans the link (as pasted text) and is offered the tally.
    let offered: TallyRow = get(
        &bob,
        tc::SCAN_TICKET_TEXT,
        json!({ "args": { "text": format!("  {}\n", ticket.link) } }),
    );
    assert_eq!(offered.phase, "offered", "{offered:?}");
    assert!(offered.offer_to_answer);
    assert_eq!(offered.comment.as_deref(), Some("lunch club"));
    let b_id = offered.id.clone();
    let shown = tally(&bob, &b_id);
    assert_eq!(shown.row.state, "P.offer");
    assert!(shown.partner.agent.is_some());
    assert!(
        shown
            .partner
            .address
            .as_deref()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(shown.record_json.contains("lunch club"));
    let list: Vec<TallyRow> = get(&bob, tc::TALLIES, json!({}));
    assert_eq!(list[0].id, b_id, "an offer to answer comes first");
    let inbox = notifications(&bob);
    assert!(inbox.iter().any(|n| n.kind == "tally_offered"), "{inbox:?}");

    let accepted: TallyRow = get(&bob, tc::TALLY_ACCEPT, json!({ "args": { "id": b_id } }));
    assert_eq!(accepted.phase, "open");
    wait_for("the tally to open on Alice's side", || {
        (tally(&alice, &a_id).row.state == "open").then_some(())
    });
    wait_for("the tally to be open on Bob's side", || {
        (tally(&bob, &b_id).row.state == "open").then_some(())
    });
    let a_row = tally(&alice, &a_id).row;
    assert_eq!(a_row.my_limit.as_deref(), Some("100.000"));
    assert_eq!(a_row.partner_limit.as_deref(), Some("50.500"));
    assert_eq!(
        (a_row.balance.as_str(), a_row.balance_direction.as_str()),
        ("0.000", "even")
    );

    // A bad amount changes nothing.
    for bad in ["1.2345", "0", "-1", "12,5", ""] {
        let err = alice.err(
            tc::TALLY_PAY,
            json!({ "args": { "id": a_id, "amount": bad, "memo": null } }),
        );
        assert_eq!(err.code, tally_code::BAD_CHIPS, "{bad:?}: {}", err.message);
    }
    assert_eq!(chits(&alice, &a_id, None, 10).total, 0);
    let err = alice.err(
        tc::TALLY_PAY,
        json!({ "args": { "id": a_id, "amount": "60", "memo": null } }),
    );
    assert_eq!(err.code, tally_code::OVER_LIMIT, "{}", err.message);
    assert_eq!(chits(&alice, &a_id, None, 10).total, 0);

    // Alice pays Bob 12.5.
    let paid: ChitRow = get(
        &alice,
        tc::TALLY_PAY,
        json!({ "args": { "id": a_id, "amount": " 12.5 ", "memo": "pizza" } }),
    );
    assert_eq!(paid.kind, "payment");
    assert_eq!(paid.direction, "from_me");
    assert_eq!(paid.amount.as_deref(), Some("12.500"));
    assert!(paid.mine);
    assert!(
        ["waiting", "done"].contains(&paid.status.as_str()),
        "{paid:?}"
    );
    let got = wait_for("Bob to have the payment", || {
        chit(&bob, &b_id, &paid.uuid).filter(|c| c.status == "done")
    });
    assert_eq!(got.kind, "payment");
    assert_eq!(got.direction, "to_me");
    assert!(!got.mine);
    assert_eq!(got.running_balance.as_deref(), Some("12.500"));
    assert_eq!(got.running_direction.as_deref(), Some("they_owe_me"));
    wait_for("Alice's payment to be delivered", || {
        chit(&alice, &a_id, &paid.uuid).filter(|c| c.status == "done")
    });
    let b_row = tally(&bob, &b_id).row;
    assert_eq!(
        (b_row.balance.as_str(), b_row.balance_direction.as_str()),
        ("12.500", "they_owe_me")
    );
    assert!(
        notifications(&bob)
            .iter()
            .any(|n| n.kind == "chit_received"),
        "the payment is in Bob's inbox"
    );

    // Bob invoices Alice 2; Alice approves.
    let invoice: ChitRow = get(
        &bob,
        tc::TALLY_INVOICE,
        json!({ "args": { "id": b_id, "amount": "2", "memo": "drinks" } }),
    );
    assert_eq!(invoice.kind, "invoice");
    assert_eq!(invoice.direction, "to_me");
    assert!(!invoice.mine, "the payer signs an invoice");
    let to_approve = wait_for("Alice to get the invoice", || {
        chit(&alice, &a_id, &invoice.uuid).filter(|c| c.status == "to_approve")
    });
    assert_eq!(to_approve.kind, "invoice");
    assert!(to_approve.mine);
    let list: Vec<TallyRow> = get(&alice, tc::TALLIES, json!({}));
    assert_eq!(list[0].id, a_id);
    assert_eq!(list[0].invoices_to_approve, 1);
    let inbox = notifications(&alice);
    let note = inbox
        .iter()
        .find(|n| n.kind == "invoice_to_approve")
        .expect("the invoice is in Alice's inbox");
    assert!(note.title.contains("2.000 CHIP"), "{}", note.title);
    assert!(!note.body.contains("notch chit"), "{}", note.body);
    let approved: ChitRow = get(
        &alice,
        tc::CHIT_APPROVE,
        json!({ "args": { "chit": invoice.uuid } }),
    );
    assert_eq!(approved.kind, "invoice");
    assert_ne!(approved.status, "to_approve");
    let paid_invoice = wait_for("Bob to have the invoice paid", || {
        chit(&bob, &b_id, &invoice.uuid).filter(|c| c.status == "done")
    });
    assert_eq!(paid_invoice.kind, "invoice", "still an invoice once good");
    assert_eq!(paid_invoice.running_balance.as_deref(), Some("14.500"));
    let err = alice.err(
        tc::CHIT_APPROVE,
        json!({ "args": { "chit": invoice.uuid } }),
    );
    assert_eq!(err.code, tally_code::WRONG_STATE, "{}", err.message);

    // Pages: newest first, one at a time, the same rows as one page.
    let all = chits(&bob, &b_id, None, 50);
    assert_eq!(all.total, 2);
    assert_eq!(all.next, None);
    let first = chits(&bob, &b_id, None, 1);
    assert_eq!(first.rows.len(), 1);
    let next = first.next.clone().expect("there is an older page");
    let second = chits(&bob, &b_id, Some(&next), 1);
    assert_eq!(second.next, None);
    assert_eq!(
        [first.rows[0].uuid.clone(), second.rows[0].uuid.clone()],
        [all.rows[0].uuid.clone(), all.rows[1].uuid.clone()]
    );
    assert_eq!(second.rows[0].running_balance.as_deref(), Some("12.500"));
    let err = bob.err(
        tc::TALLY_CHITS,
        json!({ "args": { "id": b_id, "before": "nowhere", "limit": 5 } }),
    );
    assert_eq!(err.code, code::INVALID);

    // A setting: the credit Bob grants.
    let set: ChitRow = get(
        &bob,
        tc::TALLY_SET_LIMIT,
        json!({ "args": { "id": b_id, "limit": "75" } }),
    );
    assert_eq!(set.kind, "setting");
    assert_eq!(set.direction, "none");
    assert_eq!(set.setting.as_deref(), Some("credit limit 75.000"));
    assert_eq!(set.amount, None);

    // The events the screens refresh on.
    let events = bob_events.lock().unwrap().clone();
    for kind in ["tally_changed", "chit_changed", "notification"] {
        assert!(
            events.iter().any(|e| e["type"] == kind),
            "Bob's app told the UI a {kind}: {events:?}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "chit_changed" && e["chit"] == invoice.uuid.as_str()),
        "the invoice's changes are told"
    );
}

#[test]
fn bad_and_expired_tickets_are_refused_with_their_codes() {
    use notch_core::ticket::{AgentId, Chad, LinkForm, Ticket};
    let gateway = responder("200 OK", ledger_info().to_string());
    let h = Harness::new(&gateway);
    h.create_wallet();
    listening(&h);
    let scan = |text: &str| h.err(tc::SCAN_TICKET_TEXT, json!({ "args": { "text": text } }));
    for bad in [
        "https://mychips.org/invite?token=abc",
        "https://example.org/invite?token=abc",
        "notch:ticket?chad=%7B%7D",
        "hello",
    ] {
        let err = scan(bad);
        assert_eq!(err.code, tally_code::BAD_TICKET, "{bad}: {}", err.message);
    }
    let chad = Chad::new("someone", AgentId::from_bytes([7; 32]), "127.0.0.1", 9).unwrap();
    let old = Ticket::new("a".repeat(32), Some(1_600_000_000), chad).unwrap();
    let err = scan(&old.link(LinkForm::MyChips));
    assert_eq!(err.code, tally_code::TICKET_EXPIRED, "{}", err.message);
    assert!(get::<Vec<TallyRow>>(&h, tc::TALLIES, json!({})).is_empty());

    // The same ticket as a picture: a PNG of its QR code.
    let png = old.to_qr_png(LinkForm::MyChips, 6).unwrap();
    let err = h.call_raw(tc::SCAN_TICKET_IMAGE, png).unwrap_err();
    assert_eq!(err.code, tally_code::TICKET_EXPIRED, "{}", err.message);
    let err = h
        .call_raw(tc::SCAN_TICKET_IMAGE, b"not a picture".to_vec())
        .unwrap_err();
    assert_eq!(
        err.code,
        notch_ipc::scan::code::NOT_AN_IMAGE,
        "{}",
        err.message
    );
    let err = h.call_raw(tc::SCAN_TICKET_FRAME, vec![1, 2]).unwrap_err();
    assert_eq!(err.code, notch_ipc::scan::code::BAD_FRAME);

    // Our own ticket is not one to scan.
    let mine: TicketView = get(
        &h,
        tc::NEW_TICKET,
        json!({ "args": { "expires_in_minutes": 5, "my_limit": null, "partner_limit": null, "comment": null } }),
    );
    let err = scan(&mine.link);
    assert_eq!(err.code, tally_code::BAD_TICKET, "{}", err.message);
    // Withdrawn, it is void.
    let void: TallyRow = get(
        &h,
        tc::TALLY_REFUSE,
        json!({ "args": { "id": mine.tally.id } }),
    );
    assert_eq!(void.phase, "void");
    let err = h.err(tc::TALLY_ACCEPT, json!({ "args": { "id": mine.tally.id } }));
    assert_eq!(err.code, tally_code::WRONG_STATE);
    let err = h.err(tc::TALLY, json!({ "args": { "id": "no-such" } }));
    assert_eq!(err.code, code::NOT_FOUND);
}

#[test]
fn the_agent_stops_while_locked_and_moves_to_a_new_address() {
    let gateway = responder("200 OK", ledger_info().to_string());
    let h = Harness::new(&gateway);
    let statuses = Arc::new(Mutex::new(Vec::<AgentStatusView>::new()));
    let keep = statuses.clone();
    h.app()
        .listen(notch_ipc::tally::event::AGENT_STATUS, move |event| {
            if let Ok(v) = serde_json::from_str(event.payload()) {
                keep.lock().unwrap().push(v);
            }
        });
    h.create_wallet();
    let first = listening(&h);
    assert!(
        statuses
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.state == "listening"),
        "the status change was told"
    );

    // Locked, the agent stops; unlocked, it listens again.
    h.call(
        command::SET_LOCK_PASSPHRASE,
        json!({ "args": { "current": null, "new": "sturdy lantern 7" } }),
    )
    .unwrap();
    h.call(command::LOCK_NOW, json!({})).unwrap();
    wait_for("the agent to stop", || {
        let last = statuses.lock().unwrap().last().cloned();
        last.filter(|s| s.state == "stopped")
    });
    assert_eq!(h.err(tc::AGENT_STATUS, json!({})).code, code::LOCKED);
    h.call(
        command::UNLOCK,
        json!({ "args": { "passphrase": "sturdy lantern 7" } }),
    )
    .unwrap();
    let again = listening(&h);
    assert!(again.bound.is_some());

    // Not HOST:PORT: refused, nothing changes.
    for bad in ["nowhere", "127.0.0.1:99999", ""] {
        let err = h.err(
            tc::SET_AGENT_ADDRESS,
            json!({ "args": { "listen": bad, "advertise": null } }),
        );
        assert_eq!(err.code, tally_code::BAD_AGENT_ADDRESS, "{bad:?}");
    }
    // A port in use: refused, and the agent keeps its address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = h.err(
        tc::SET_AGENT_ADDRESS,
        json!({ "args": { "listen": format!("127.0.0.1:{port}"), "advertise": null } }),
    );
    assert_eq!(err.code, tally_code::BAD_AGENT_ADDRESS);
    assert!(err.message.contains("could not start"), "{}", err.message);
    let still = listening(&h);
    assert_eq!(still.bound, again.bound);
    drop(taken);

    // A free one: saved, and the agent moves there, telling partners the
    // address asked for.
    let moved: AgentStatusView = get(
        &h,
        tc::SET_AGENT_ADDRESS,
        json!({ "args": { "listen": "127.0.0.1:0", "advertise": "wallet.example:7777" } }),
    );
    assert_eq!(moved.state, "listening");
    assert_eq!(moved.advertised.as_deref(), Some("wallet.example:7777"));
    assert_eq!(moved.listen, "127.0.0.1:0");
    let _ = first;
}

#[test]
fn links_opened_with_the_app_reach_the_ui_and_nothing_else() {
    let gateway = responder("200 OK", ledger_info().to_string());
    let h = Harness::new(&gateway);
    h.create_wallet();
    let seen = Arc::new(Mutex::new(Vec::<DeepLink>::new()));
    let keep = seen.clone();
    h.app()
        .listen(notch_ipc::tally::event::DEEP_LINK, move |event| {
            if let Ok(v) = serde_json::from_str(event.payload()) {
                keep.lock().unwrap().push(v);
            }
        });
    use notch_core::ticket::{AgentId, Chad, LinkForm, Ticket};
    let chad = Chad::new("bob", AgentId::from_bytes([7; 32]), "127.0.0.1", 9).unwrap();
    let link = Ticket::new("b".repeat(32), None, chad)
        .unwrap()
        .link(LinkForm::Notch);
    let link = link.as_str();
    notch_app::deeplink::opened(&h.app(), link);
    notch_app::deeplink::opened(&h.app(), link);
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "a repeat is told once: {got:?}");
    assert!(
        matches!(&got[0], DeepLink::Ticket { text } if text == link),
        "{got:?}"
    );
    // Nothing was contacted or stored.
    assert!(get::<Vec<TallyRow>>(&h, tc::TALLIES, json!({})).is_empty());
    // No start link here.
    assert_eq!(h.call(tc::TAKE_DEEP_LINK, json!({})).unwrap(), Value::Null);
}
