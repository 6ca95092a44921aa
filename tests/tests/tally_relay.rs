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
