//! MyCHIPs tally and chit records through notch-core's public API: the
//! reference tally MyCHIPs signed, exhaustive tampering, fixed vectors.

use notch_core::keys::{RecoveryPhrase, TallyPublicKey, WalletKeys};
use notch_core::tally::{
    ChitBuilder, ChitRecord, ChitVerifyError, RecordError, Side, SignatureProblem, TallyBuilder,
    TallyRecord, TallyVerifyError, chain_genesis, export_signkey, import_signkey, verify_chit_json,
    verify_tally_json,
};
use serde_json::{Value, json};

const VALID: &str = include_str!("../testdata/mychips-validtally.json");

fn abandon_key() -> notch_core::keys::TallyKey {
    let phrase = RecoveryPhrase::parse(
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
    )
    .expect("valid phrase");
    WalletKeys::new(&phrase.to_seed(""), 0)
        .and_then(|k| k.tally_key())
        .expect("tally key")
}

#[test]
fn reference_tally_verifies_with_the_documented_hash() {
    let verified = verify_tally_json(VALID).expect("MyCHIPs's tally verifies");
    assert_eq!(verified.record().signed_message().len(), 2189);
    assert_eq!(
        verified.hash_base64url(),
        "3NPx7F5mfAiqyvo2IWPNmqFI5il_cx-8DnYZFEAD4so"
    );
}

/// Every single byte of the file, flipped in turn (lowest bit, and the top
/// bit, which also makes the text invalid UTF-8 or changes a character):
/// the result must fail to parse or fail to verify, never pass.
#[test]
fn flipping_any_byte_of_the_reference_tally_breaks_it() {
    let bytes = VALID.as_bytes();
    let positions: Vec<usize> = (0..bytes.len()).collect();
    let failures = std::thread::scope(|scope| {
        let workers: Vec<_> = positions
            .chunks(bytes.len().div_ceil(2))
            .map(|chunk| {
                scope.spawn(move || {
                    let mut passed = Vec::new();
                    let mut parse_errors = 0usize;
                    let mut signature_errors = 0usize;
                    for &at in chunk {
                        for bit in [0x01u8, 0x80] {
                            let mut copy = bytes.to_vec();
                            copy[at] ^= bit;
                            let Ok(text) = std::str::from_utf8(&copy) else {
                                parse_errors += 1;
                                continue;
                            };
                            match verify_tally_json(text) {
                                Ok(_) => passed.push((at, bit)),
                                Err(TallyVerifyError::Record(_)) => parse_errors += 1,
                                Err(TallyVerifyError::Signatures { .. }) => signature_errors += 1,
                            }
                        }
                    }
                    (passed, parse_errors, signature_errors)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect::<Vec<_>>()
    });
    let passed: Vec<_> = failures.iter().flat_map(|f| f.0.clone()).collect();
    let parse_errors: usize = failures.iter().map(|f| f.1).sum();
    let signature_errors: usize = failures.iter().map(|f| f.2).sum();
    assert!(passed.is_empty(), "these flips still verify: {passed:?}");
    assert_eq!(parse_errors + signature_errors, 2 * bytes.len());
    // Both kinds of failure occur (a test of the test).
    assert!(
        parse_errors > 100 && signature_errors > 100,
        "{parse_errors} {signature_errors}"
    );
}

#[test]
fn which_signature_failed_is_reported() {
    let mut value: Value = serde_json::from_str(VALID).expect("JSON");
    value["stock"]["cert"]["public"]["crv"] = json!("P-256");
    if let Some(sign) = value["sign"].as_object_mut() {
        sign.remove("foil");
    }
    let err = verify_tally_json(&value.to_string()).expect_err("fails");
    match &err {
        TallyVerifyError::Signatures {
            stock: Some(SignatureProblem::BadKey(why)),
            foil: Some(SignatureProblem::Missing),
        } => assert!(why.contains("crv"), "{why}"),
        other => panic!("unexpected: {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("stock signature cannot be checked")
            && text.contains("foil signature is missing"),
        "{text}"
    );
    let err = verify_tally_json("{\"version\":1}").expect_err("not a tally");
    assert!(
        matches!(err, TallyVerifyError::Record(RecordError::Missing { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("\"uuid\""), "{err}");
}

/// A fixed vector for docs/PROTOCOL.md: a chit signed once by the tally key
/// of "abandon … about" (account 0). The signature was made with a random
/// nonce, so it cannot be re-derived, but it must keep verifying.
#[test]
fn fixed_chit_vector_verifies() {
    let key = abandon_key();
    let public = TallyPublicKey::from_jwk(&json!({
        "kty": "EC", "crv": "P-521",
        "x": "ATfo_ilk6b0J01pEp9NKtY-JRxPnj10ogXXsFvJubJbBXl_lipKbg5qd-CRc3U43tuvQ2RDZZBYtApSWLrAyDBkm",
        "y": "AU6C8Rts0Qzu7I5DSPtNY4yXAnaRkJwim7hVOwH59zeUw93NLKzJemsj-OusCLF19MqzaYxZb-XENoZ8NPd9oTpx",
    }))
    .expect("JWK");
    assert_eq!(public, key.public_key());
    let chit = ChitRecord::parse(FIXED_CHIT).expect("chit");
    assert_eq!(chit.signed_message(), FIXED_CHIT_MESSAGE);
    assert_eq!(hex(&chit.hash()), FIXED_CHIT_HASH);
    assert_eq!(chit.verify_with(&public), Ok(()));
    let mut other = chit.to_value();
    other["units"] = json!(1001);
    assert_eq!(
        ChitRecord::from_value(other)
            .expect("chit")
            .verify_with(&public),
        Err(SignatureProblem::Mismatch)
    );
}

const FIXED_CHIT: &str = r#"{"by":"foil","date":"2025-01-02T03:04:05.678+00:00","memo":"Lunch","ref":{"invoice":"A-17"},"sign":"AUD910YL91XzmMq_hVMpsnXnfHC3sukGidmkettnkYI9opUyfTXRS6mNNPqzrnGW6Bd7SKlt_6hB2hBUH177gS54AD1GuYkYEqZilemSK7IpKw1Skb9J3L7Sec2zvB5a_89GBs0pYfI2w5BNEj-8O3SfV06ysvx2HZOO1mK_CxALmhwW","tally":"9c2b1d7e-6f3a-4c1b-9d2e-5a8f7b6c4d3e","type":"tran","units":1000,"uuid":"4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8"}"#;
const FIXED_CHIT_MESSAGE: &str = r#"{"by":"foil","date":"2025-01-02T03:04:05.678+00:00","memo":"Lunch","ref":{"invoice":"A-17"},"tally":"9c2b1d7e-6f3a-4c1b-9d2e-5a8f7b6c4d3e","type":"tran","units":1000,"uuid":"4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8"}"#;
const FIXED_CHIT_HASH: &str = "0d13de98b73271c8babe7d1cf66c776545c548c49629b12bdc4a1a2a6934511b";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_full_tally_with_chits_round_trips_through_json() {
    let stock = abandon_key();
    let foil = WalletKeys::new(
        &RecoveryPhrase::parse(
            "legal winner thank year wave sausage worth useful legal winner thank yellow",
        )
        .expect("phrase")
        .to_seed(""),
        0,
    )
    .and_then(|k| k.tally_key())
    .expect("key");
    let cert = |cid: &str, k: &notch_core::keys::TallyKey| {
        json!({"chad": {"cid": cid, "agent": "AGENT", "host": "h", "port": 1},
               "name": {"first": cid}, "type": "p", "public": k.public_key().to_jwk(),
               "extension-from-the-future": {"ünïcödé": ["\u{1F600}", null]}})
    };
    let mut tally = TallyBuilder::new(
        "9c2b1d7e-6f3a-4c1b-9d2e-5a8f7b6c4d3e",
        "2025-01-02T03:04:05.678+00:00",
        json!({"domain": "mychips.org", "name": "Tally_Contract", "version": 1}),
    )
    .comment("Café ☕")
    .party(
        Side::Stock,
        cert("stock_cid", &stock),
        json!({"limit": 5_000_000}),
    )
    .party(Side::Foil, cert("foil_cid", &foil), json!({"limit": 0}))
    .build()
    .expect("tally");
    tally.sign(Side::Foil, &foil).expect("foil signs");
    tally.sign(Side::Stock, &stock).expect("stock signs");
    let verified = verify_tally_json(&tally.to_json()).expect("verifies");
    let tally = verified.into_record();

    let mut chit = ChitBuilder::transaction(
        tally.uuid(),
        Side::Foil,
        "4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8",
        "2025-01-02T03:04:05.678+00:00",
        1000,
    )
    .memo("Lunch")
    .reference(json!({"invoice": "A-17"}))
    .build()
    .expect("chit");
    chit.sign_for(&tally, &foil).expect("signs");
    let verified = verify_chit_json(&chit.to_json(), &tally).expect("chit verifies");
    assert_eq!(verified.record(), &chit);
    assert_ne!(
        chain_genesis(&tally),
        tally.hash(),
        "non-ASCII: the database form differs"
    );
    assert!(matches!(
        verify_chit_json(
            &chit.to_json().replace("\"units\":1000", "\"units\":1001"),
            &tally
        ),
        Err(ChitVerifyError::Signature {
            side: Side::Foil,
            problem: SignatureProblem::Mismatch
        })
    ));

    // The key survives MyCHIPs's sign key export.
    let exported = export_signkey(&foil, "a long passphrase").expect("export");
    assert_eq!(
        import_signkey(&exported, "a long passphrase").expect("import"),
        foil
    );
    let _ = TallyRecord::from_value(tally.to_value()).expect("still a tally");
}
