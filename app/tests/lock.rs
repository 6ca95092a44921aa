//! The lock commands under Tauri's mock runtime: the passphrase guards the
//! recovery phrase, locking refuses every wallet command until unlocked.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Harness, ledger_info, responder};
use notch_ipc::{AppStatus, LockStatus, NewPhrase, PhraseView, code, command};
use serde_json::json;

const PASSPHRASE: &str = "sturdy lantern 7";

#[test]
fn the_phrase_and_the_wallet_are_behind_the_lock_passphrase() {
    let h = Harness::new(&responder("200 OK", ledger_info().to_string()));
    let status: AppStatus =
        serde_json::from_value(h.call(command::APP_STATUS, json!({})).unwrap()).unwrap();
    assert!(!status.locked);
    let phrase: NewPhrase = serde_json::from_value(
        h.call(command::BEGIN_CREATE, json!({ "args": { "words": 12 } }))
            .unwrap(),
    )
    .unwrap();
    let answers: Vec<&String> = phrase
        .check_positions
        .iter()
        .map(|&p| &phrase.words[p])
        .collect();
    h.call(
        command::FINISH_CREATE,
        json!({ "args": { "answers": answers } }),
    )
    .unwrap();

    let lock: LockStatus =
        serde_json::from_value(h.call(command::LOCK_STATUS, json!({})).unwrap()).unwrap();
    assert!(!lock.passphrase_set && !lock.locked);
    assert_eq!(lock.min_chars, 8);
    // Nothing to unlock with: neither locking nor the phrase is possible.
    assert_eq!(
        h.err(command::LOCK_NOW, json!({})).code,
        code::NO_PASSPHRASE
    );
    let reveal = |p: &str| json!({ "args": { "passphrase": p } });
    assert_eq!(
        h.err(command::REVEAL_PHRASE, reveal(PASSPHRASE)).code,
        code::NO_PASSPHRASE
    );
    let set =
        |current: Option<&str>, new: &str| json!({ "args": { "current": current, "new": new } });
    assert_eq!(
        h.err(command::SET_LOCK_PASSPHRASE, set(None, "1234567"))
            .code,
        code::WEAK_PASSPHRASE
    );
    let lock: LockStatus = serde_json::from_value(
        h.call(command::SET_LOCK_PASSPHRASE, set(None, PASSPHRASE))
            .unwrap(),
    )
    .unwrap();
    assert!(lock.passphrase_set);
    assert_eq!(
        h.err(command::SET_LOCK_PASSPHRASE, set(None, "something else"))
            .code,
        code::CURRENT_PASSPHRASE_NEEDED
    );

    assert_eq!(
        h.err(command::REVEAL_PHRASE, reveal("sturdy lantern 8"))
            .code,
        code::WRONG_PASSPHRASE
    );
    let shown: PhraseView =
        serde_json::from_value(h.call(command::REVEAL_PHRASE, reveal(PASSPHRASE)).unwrap())
            .unwrap();
    assert_eq!(shown.words, phrase.words);

    let lock: LockStatus = serde_json::from_value(
        h.call(command::SET_IDLE_LOCK, json!({ "args": { "minutes": 1 } }))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(lock.idle_minutes, 1);
    assert_eq!(
        h.err(
            command::SET_IDLE_LOCK,
            json!({ "args": { "minutes": 100000 } })
        )
        .code,
        code::INVALID
    );

    // Locked: every wallet command is refused, the lock status still reads.
    let status: AppStatus =
        serde_json::from_value(h.call(command::LOCK_NOW, json!({})).unwrap()).unwrap();
    assert!(status.locked);
    for cmd in [
        command::BALANCES,
        command::RECEIVE_ADDRESS,
        command::NOTIFICATIONS,
        command::SYNC_STATE,
    ] {
        assert_eq!(h.err(cmd, json!({})).code, code::LOCKED, "{cmd}");
    }
    assert_eq!(
        h.err(command::REVEAL_PHRASE, reveal(PASSPHRASE)).code,
        code::LOCKED
    );
    let lock: LockStatus =
        serde_json::from_value(h.call(command::LOCK_STATUS, json!({})).unwrap()).unwrap();
    assert!(lock.locked);
    let status: AppStatus =
        serde_json::from_value(h.call(command::APP_STATUS, json!({})).unwrap()).unwrap();
    assert!(status.locked);

    assert_eq!(
        h.err(command::UNLOCK, reveal("not the one")).code,
        code::WRONG_PASSPHRASE
    );
    assert_eq!(h.err(command::BALANCES, json!({})).code, code::LOCKED);
    let status: AppStatus =
        serde_json::from_value(h.call(command::UNLOCK, reveal(PASSPHRASE)).unwrap()).unwrap();
    assert!(!status.locked);
    h.call(command::BALANCES, json!({})).unwrap();

    // Removing the passphrase needs it; afterwards the app can't lock.
    assert_eq!(
        h.err(command::REMOVE_LOCK_PASSPHRASE, reveal("nope nope nope"))
            .code,
        code::WRONG_PASSPHRASE
    );
    let lock: LockStatus = serde_json::from_value(
        h.call(command::REMOVE_LOCK_PASSPHRASE, reveal(PASSPHRASE))
            .unwrap(),
    )
    .unwrap();
    assert!(!lock.passphrase_set);
    assert_eq!(
        h.err(command::LOCK_NOW, json!({})).code,
        code::NO_PASSPHRASE
    );
}
