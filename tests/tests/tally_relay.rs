//! A phone's tally agent reached through the gateway's relay (ADR 6), with real parts only:
//! the real `notch-gateway --sandbox` (its relay on loopback), two real wallets in temporary
//! directories. Bob's agent is in relay mode: it opens no listener, registers with the relay
//! over its outbound control connection, and his tickets carry the relay's host and his
//! port there. Alice's agent listens, as a desktop or a MyCHIPs server does.
//!
//! Alice scans Bob's ticket and her agent connects to the relay's port for Bob; the relay
//! tells Bob's agent, which connects out for her, and the sessions are spliced: the tally
//! opens, Alice pays Bob (through the relay), Bob pays Alice (his agent connects to her
//! directly). Then the gateway is killed and started again on the same data directory: Bob's
//! agent registers again by itself, gets the same port (so his ticket stays valid), and a
//! payment reaches him again through the relay.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::time::Duration;

use notch_core::tally::Side;
use notch_core::{AgentConfig, TicketOptions};
use notch_tests::gateway::Sandbox;
use notch_tests::tally::{
    NO_GATEWAY, agent, agent_config, converged, eventually, name_alice_and_bob, state_of, wait_chit,
};
use notch_tests::wallet::new_wallet;
use serde_json::json;

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn relay_mode(relay: &str) -> AgentConfig {
    AgentConfig {
        relay: Some(relay.to_owned()),
        ..agent_config("127.0.0.1:0")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_keeps_a_tally_through_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (control, port) = (free_port(), free_port());
    let control_addr = format!("127.0.0.1:{control}");
    let ports = port.to_string();
    let args = [
        "--relay-listen",
        control_addr.as_str(),
        "--relay-ports",
        ports.as_str(),
    ];
    let gw_dir = dir.path().join("gateway");
    let gateway = Sandbox::start_with_args(gw_dir.clone(), "127.0.0.1:0", &args);
    let relay = gateway.relay.clone().expect("the sandbox runs the relay");
    assert_eq!(relay, control_addr);

    let (alice, _) = new_wallet(&dir.path().join("alice"), NO_GATEWAY).await;
    let (bob, _) = new_wallet(&dir.path().join("bob"), NO_GATEWAY).await;
    name_alice_and_bob(&alice, &bob).await;
    let _a_agent = agent(&alice, "127.0.0.1:0").await;
    let b_agent = bob.start_agent(relay_mode(&relay)).await.unwrap();
    assert!(b_agent.relayed());
    // Partners are told the relay's host and Bob's port there.
    assert_eq!(b_agent.advertised(), ("127.0.0.1", port));

    // Bob (the phone) issues the ticket; Alice scans it.
    let (ticket, draft) = bob
        .tally_ticket_with(TicketOptions {
            expires_in: Duration::from_secs(600),
            side: Side::Stock,
            my_terms: json!({"limit": 100}),
            partner_terms: json!({"limit": 100}),
            comment: None,
        })
        .await
        .unwrap();
    let link = ticket.to_string();
    assert!(link.contains(&port.to_string()), "{link}");
    let offered = alice.tally_scan(&link).await.unwrap();
    assert_eq!(offered.state.as_str(), "P.offer");
    let accepted = alice.tally_accept(&offered.id).await.unwrap();
    assert_eq!(accepted.state.as_str(), "open");
    let (a_id, b_id) = (offered.id, draft.id);
    eventually(
        "the tally to open on Bob's side",
        Duration::from_secs(30),
        || async { (state_of(&bob, &b_id).await == "open").then_some(()) },
    )
    .await;

    // Alice pays Bob: her agent reaches his through the relay.
    let paid = alice.tally_pay(&a_id, 12_500, None).await.unwrap();
    wait_chit(&bob, &b_id, &paid.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -12_500);
    // Bob pays Alice: his agent connects to hers, which listens.
    let back = bob.tally_pay(&b_id, 2_000, None).await.unwrap();
    wait_chit(&alice, &a_id, &back.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -10_500);

    // The relay goes away and comes back: Bob's agent registers again by itself and keeps
    // its port.
    drop(gateway);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gateway = Sandbox::start_with_args(gw_dir, "127.0.0.1:0", &args);
    assert_eq!(gateway.relay.as_deref(), Some(control_addr.as_str()));
    let again = alice.tally_pay(&a_id, 500, None).await.unwrap();
    wait_chit(&bob, &b_id, &again.uuid, "A.good").await;
    assert_eq!(converged(&alice, &a_id, &bob, &b_id).await, -11_000);
    assert_eq!(b_agent.advertised(), ("127.0.0.1", port));
    b_agent.stop().await;
    drop(gateway);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_mode_fails_clearly_without_a_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (bob, _) = new_wallet(dir.path(), NO_GATEWAY).await;
    let nowhere = format!("127.0.0.1:{}", free_port());
    let error = bob.start_agent(relay_mode(&nowhere)).await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("cannot register with the relay"), "{text}");
    let error = bob.start_agent(relay_mode("no-port")).await.unwrap_err();
    assert!(error.to_string().contains("HOST:PORT"), "{error}");
}

/// What the running agent tells a partner who presents a ticket at `port`: the `from` of
/// its answer (a refusal: the token is none of Bob's). The probe is a bare Noise peer of
/// its own key, as any partner's agent would be.
async fn from_address_at(port: u16, ticket: &notch_core::ticket::Ticket) -> serde_json::Value {
    use notch_core::peer::{AgentId, LocalKey, PeerConfig, connect};
    let local = LocalKey::from_x25519_secret([7; 32]);
    let remote = AgentId::parse(&ticket.chad().agent().to_base64url()).unwrap();
    let hello = json!({
        "target": "tally",
        "action": "ticket",
        "to": {"cid": ticket.chad().cuid(), "agent": remote.to_string()},
        "from": {"cid": "probe"},
        "ticket": {"token": "0123456789abcdef0123456789abcdef", "cert": {}},
    });
    let config = PeerConfig::default();
    let mut session = connect(("127.0.0.1", port), &local, &remote, &hello, &config)
        .await
        .unwrap();
    let answer = session.recv().await.unwrap();
    assert_eq!(answer["action"], "refuse", "{answer:#}");
    answer["from"].clone()
}

/// The relay gives the agent another port on a re-registration (here: the gateway started
/// again on a fresh data directory, so it no longer knows the agent, with another port
/// range): the running agent tells partners the new port from then on, in what it sends
/// (`from`), in its handle, in new tickets and certificates; a tally opened from a new
/// ticket works through the new port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_relay_port_is_what_the_agent_tells_partners() {
    let dir = tempfile::tempdir().unwrap();
    let (control, first, second) = (free_port(), free_port(), free_port());
    assert_ne!(first, second);
    let control_addr = format!("127.0.0.1:{control}");
    let gateway = |data: &str, port: u16| {
        let ports = port.to_string();
        Sandbox::start_with_args(
            dir.path().join(data),
            "127.0.0.1:0",
            &["--relay-listen", &control_addr, "--relay-ports", &ports],
        )
    };
    let gw = gateway("gateway-1", first);
    let (alice, _) = new_wallet(&dir.path().join("alice"), NO_GATEWAY).await;
    let (bob, _) = new_wallet(&dir.path().join("bob"), NO_GATEWAY).await;
    name_alice_and_bob(&alice, &bob).await;
    let _a_agent = agent(&alice, "127.0.0.1:0").await;
    let b_agent = bob.start_agent(relay_mode(&control_addr)).await.unwrap();
    assert_eq!(b_agent.advertised(), ("127.0.0.1", first));
    let (old_ticket, _) = bob.tally_ticket(Duration::from_secs(600)).await.unwrap();
    assert_eq!(old_ticket.chad().port(), first);
    assert_eq!(from_address_at(first, &old_ticket).await["port"], first);

    // A relay that has forgotten Bob, and hands out another port.
    drop(gw);
    let _gw = gateway("gateway-2", second);
    eventually(
        "Bob's agent to register on the new port",
        Duration::from_secs(20),
        || async { (b_agent.advertised().1 == second).then_some(()) },
    )
    .await;
    assert_eq!(b_agent.advertised(), ("127.0.0.1", second));
    assert_eq!(bob.tally_profile().await.unwrap().port, Some(second));
    // What the running agent sends names the new port (it named the old one until a
    // restart of the agent, before).
    let from = from_address_at(second, &old_ticket).await;
    assert_eq!(from["host"], "127.0.0.1");
    assert_eq!(from["port"], second, "{from:#}");

    // A new ticket carries it, and a tally opened from it is reached there.
    let (ticket, draft) = bob
        .tally_ticket_with(TicketOptions {
            expires_in: Duration::from_secs(600),
            // Bob lends Alice up to 1 CHIP, so that she can pay him.
            my_terms: json!({"limit": 1}),
            ..TicketOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(ticket.chad().port(), second);
    let offered = alice.tally_scan(&ticket.to_string()).await.unwrap();
    let accepted = alice.tally_accept(&offered.id).await.unwrap();
    assert_eq!(accepted.state.as_str(), "open");
    assert_eq!(
        alice.tally(&offered.id).await.unwrap().info.partner_address,
        Some(format!("127.0.0.1:{second}")),
        "Bob's certificate in the tally names the new port"
    );
    eventually(
        "the tally to open on Bob's side",
        Duration::from_secs(30),
        || async { (state_of(&bob, &draft.id).await == "open").then_some(()) },
    )
    .await;
    let paid = alice.tally_pay(&offered.id, 700, None).await.unwrap();
    wait_chit(&bob, &draft.id, &paid.uuid, "A.good").await;
    b_agent.stop().await;
}
