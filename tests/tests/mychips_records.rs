//! Tally and chit records against MyCHIPs's own building blocks: Node's
//! WebCrypto and npm json-stable-stringify, driven by the scripts in
//! `tests/interop/mychips-records/` (which `npm install` fetches once).
//!
//! Both directions, each with a tampered case that must fail:
//! - Node signs a tally (both parties) and a chit and exports a sign key;
//!   Notch verifies and imports them;
//! - Notch signs a tally and a chit and exports a sign key; Node verifies
//!   and decrypts them.
//!
//! And the canonical form: Notch's serialization of tricky JSON equals
//! json-stable-stringify's, byte for byte.

#![allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use notch_core::keys::{RecoveryPhrase, Seed, TallyKey, WalletKeys};
use notch_core::tally::{
    ChitBuilder, ChitRecord, ChitVerifyError, Side, SignatureProblem, TallyBuilder,
    TallyVerifyError, export_signkey, import_signkey, parse_json, stable_stringify,
    verify_chit_json, verify_tally_json,
};
use serde_json::{Value, json};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/mychips-records")
}

/// Installs json-stable-stringify (from the committed lock file) once.
fn node_ready() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        let dir = interop_dir();
        let version = Command::new("node").arg("--version").output();
        assert!(
            matches!(&version, Ok(o) if o.status.success()),
            "these tests need Node 20+ on PATH (`node --version` failed: {version:?})"
        );
        if !dir.join("node_modules/json-stable-stringify").exists() {
            let out = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .output()
                .expect("npm runs");
            assert!(
                out.status.success(),
                "npm install failed in {}:\n{}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    })
}

fn node(script: &str, stdin: &str) -> Output {
    let dir = node_ready();
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn node_ok(script: &str, stdin: &str) -> String {
    let out = node(script, stdin);
    assert!(
        out.status.success(),
        "node {script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn key(phrase: &str) -> TallyKey {
    let seed = match RecoveryPhrase::parse(phrase) {
        Ok(p) => p.to_seed(""),
        Err(_) => Seed::from_bytes(phrase.as_bytes()).unwrap(),
    };
    WalletKeys::new(&seed, 0).unwrap().tally_key().unwrap()
}

#[test]
fn notch_verifies_what_node_signed() {
    let out: Value = serde_json::from_str(&node_ok("sign.mjs", "")).unwrap();
    let tally_text = out["tally"].to_string();
    let verified = verify_tally_json(&tally_text).expect("Node's tally verifies in Notch");
    let tally = verified.record().clone();
    assert!(tally.signed_message().contains("\"comment\":null"));

    let chit_text = out["chit"].to_string();
    let chit = verify_chit_json(&chit_text, &tally).expect("Node's chit verifies in Notch");
    assert_eq!(chit.record().units(), Some(123_456));
    assert_eq!(chit.record().by(), Side::Foil);

    // The sign key Node exported is the foil's key of the tally.
    let imported = import_signkey(
        out["signkey"].as_str().unwrap(),
        out["passphrase"].as_str().unwrap(),
    )
    .expect("Node's sign key imports");
    assert_eq!(imported.public_key(), *verified.public_key(Side::Foil));
    assert!(import_signkey(out["signkey"].as_str().unwrap(), "wrong").is_err());

    // Tampered: one changed member of the tally, one of the chit.
    let mut tampered = out["tally"].clone();
    tampered["stock"]["terms"]["limit"] = json!(100_001);
    assert_eq!(
        verify_tally_json(&tampered.to_string()).err(),
        Some(TallyVerifyError::Signatures {
            stock: Some(SignatureProblem::Mismatch),
            foil: Some(SignatureProblem::Mismatch)
        })
    );
    let mut tampered = out["chit"].clone();
    tampered["memo"] = json!("Dejeuner");
    assert_eq!(
        verify_chit_json(&tampered.to_string(), &tally).err(),
        Some(ChitVerifyError::Signature {
            side: Side::Foil,
            problem: SignatureProblem::Mismatch
        })
    );
}

fn notch_signed() -> (Value, TallyKey, TallyKey) {
    let stock = key(
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
    );
    let foil = key("legal winner thank year wave sausage worth useful legal winner thank yellow");
    let cert = |cid: &str, k: &TallyKey| {
        json!({"chad": {"cid": cid, "agent": "QUdFTlQ", "host": "localhost", "port": 1},
               "name": {"first": cid, "surname": "Ünïcödé ☕"}, "type": "p",
               "public": k.public_key().to_jwk(), "\u{ff61}": 1, "\u{1F600}": [null, 2.5, "\u{2028}"]})
    };
    let mut tally = TallyBuilder::new(
        "5b0c8e1a-7d2f-4a3b-9c4d-1e2f3a4b5c6d",
        "2025-03-04T05:06:07.89+00:00",
        json!({"domain": "mychips.org", "name": "Tally_Contract", "version": 1}),
    )
    .comment("Notch ↔ MyCHIPs \"interop\"\n")
    .party(
        Side::Stock,
        cert("notch_stock", &stock),
        json!({"limit": 250_000}),
    )
    .party(Side::Foil, cert("notch_foil", &foil), json!({}))
    .build()
    .unwrap();
    tally.sign(Side::Stock, &stock).unwrap();
    tally.sign(Side::Foil, &foil).unwrap();
    let mut pledge = ChitBuilder::transaction(
        tally.uuid(),
        Side::Stock,
        "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        "2025-03-04T05:06:08+00:00",
        42_000,
    )
    .memo("Café")
    .reference(json!({"invoice": "Nº 9", "lines": [1, 2.25]}))
    .build()
    .unwrap();
    pledge.sign_for(&tally, &stock).unwrap();
    let mut setting = ChitBuilder::setting(
        tally.uuid(),
        Side::Foil,
        "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
        "2025-03-04T05:06:09+00:00",
        json!({"target": 1000, "reward": 0.05}),
    )
    .build()
    .unwrap();
    setting.sign_for(&tally, &foil).unwrap();
    let passphrase = "pässphrase 🔑";
    let input = json!({
        "tally": tally.to_value(),
        "chits": [pledge.to_value(), setting.to_value()],
        "signkey": export_signkey(&stock, passphrase).unwrap(),
        "passphrase": passphrase,
        "signkeySide": "stock",
    });
    (input, stock, foil)
}

#[test]
fn node_verifies_what_notch_signed() {
    let (input, stock, _) = notch_signed();
    assert_eq!(node_ok("verify.mjs", &input.to_string()).trim(), "valid");

    // Tampered tally: Node refuses it.
    let mut tampered = input.clone();
    tampered["tally"]["comment"] = json!("Notch ↔ MyCHIPs");
    let out = node("verify.mjs", &tampered.to_string());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tally stock signature does not verify"),
        "{stderr}"
    );

    // Tampered chit: Node refuses it.
    let mut tampered = input.clone();
    tampered["chits"][0]["units"] = json!(42_001);
    let out = node("verify.mjs", &tampered.to_string());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chit 0 signature does not verify"));

    // A sign key under another passphrase: Node cannot decrypt it.
    let mut tampered = input.clone();
    tampered["signkey"] = json!(export_signkey(&stock, "another").unwrap());
    let out = node("verify.mjs", &tampered.to_string());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sign key does not decrypt"));
}

/// The pinned chit vector of core/tests/tally_records.rs, checked by
/// WebCrypto too.
#[test]
fn node_verifies_the_fixed_chit_vector() {
    let key = key(
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
    );
    let chit: Value = serde_json::from_str(r#"{"by":"foil","date":"2025-01-02T03:04:05.678+00:00","memo":"Lunch","ref":{"invoice":"A-17"},"sign":"AUD910YL91XzmMq_hVMpsnXnfHC3sukGidmkettnkYI9opUyfTXRS6mNNPqzrnGW6Bd7SKlt_6hB2hBUH177gS54AD1GuYkYEqZilemSK7IpKw1Skb9J3L7Sec2zvB5a_89GBs0pYfI2w5BNEj-8O3SfV06ysvx2HZOO1mK_CxALmhwW","tally":"9c2b1d7e-6f3a-4c1b-9d2e-5a8f7b6c4d3e","type":"tran","units":1000,"uuid":"4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8"}"#).unwrap();
    let input = json!({"chits": [chit.clone()], "chitKey": key.public_key().to_jwk()});
    assert_eq!(node_ok("verify.mjs", &input.to_string()).trim(), "valid");
    assert!(
        ChitRecord::from_value(chit.clone())
            .unwrap()
            .verify_with(&key.public_key())
            .is_ok()
    );
    let mut tampered = chit;
    tampered["units"] = json!(1000.5);
    let input = json!({"chits": [tampered], "chitKey": key.public_key().to_jwk()});
    assert!(!node("verify.mjs", &input.to_string()).status.success());
}

/// Tricky JSON texts, serialized by the real json-stable-stringify and by
/// Notch: they must be the same bytes.
#[test]
fn canonical_form_equals_json_stable_stringify() {
    let mut texts: Vec<String> = vec![
        r#"{"b":[1,{"z":null,"a":"x"}],"a":"é\u2028\u2029\"\\\n\r\t\b\f\u0001\u001f\u007f","\uff61":1,"\ud83d\ude00":2,"":true,"A":-0.0}"#.into(),
        r#"{"n":[1e21,1e20,1.5e-7,1e-7,0.000001,0.0000012,123.456,-9007199254740993,9007199254740993,12345678901234567890,5e-324,1.7976931348623157e308,0.1,100,1E2,-0]}"#.into(),
        r#"{"nested":{"deep":[[[{"k":[]}]],{}],"x":{"\u00e9":1,"e\u0301":2,"E":3,"É":4}},"comment":null}"#.into(),
        r#"[{"b":1,"a":2},"\u0000",false,null,[]]"#.into(),
        r#""just a string \u00ff \ud834\udd1e""#.into(),
        include_str!("../../core/testdata/mychips-validtally.json").into(),
    ];
    // Pseudo-random doubles (xorshift, fixed seed): every digit/exponent path.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut numbers = Vec::new();
    for _ in 0..400 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let x = f64::from_bits(state);
        if x.is_finite() {
            numbers.push(format!("{x:e}"));
        }
        let small = (state % 2_000_000) as f64 / 1000.0 - 1000.0;
        numbers.push(format!("{small}"));
    }
    texts.push(format!("[{}]", numbers.join(",")));
    for text in &texts {
        let expected = node_ok("stringify.mjs", text);
        let value = parse_json(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(stable_stringify(&value), expected, "for {text}");
    }
    // The reference tally without "sign" is the documented 2189 bytes.
    let mut tally = parse_json(&texts[5]).unwrap();
    tally.as_object_mut().unwrap().remove("sign");
    let node_bytes = node_ok("stringify.mjs", &tally.to_string());
    assert_eq!(node_bytes.len(), 2189);
    assert_eq!(stable_stringify(&tally), node_bytes);
}
