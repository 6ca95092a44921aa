//! The tally signing key, exported and imported in MyCHIPs's encrypted
//! `signkey` format, so a key can move between Notch and the MyCHIPs mobile
//! app.
//!
//! # Format
//!
//! ```json
//! {"signkey":{"s":"<salt, hex>","i":"<iv, hex>","d":"<ciphertext||tag, base64>"}}
//! ```
//!
//! or the same three values as a link,
//! `https://mychips.org/signkey?s=…&i=…&d=…` (URL-encoded).
//!
//! - key: PBKDF2-HMAC-SHA256 of the passphrase's UTF-8 bytes, 10 000
//!   iterations, an 8-byte random salt, 32 bytes out;
//! - cipher: AES-256-GCM with a 12-byte random IV, the 16-byte tag appended
//!   to the ciphertext, no additional data;
//! - plaintext: the private key as a serialized WebCrypto JWK
//!   (`{"crv":"P-521","d":…,"kty":"EC","x":…,"y":…,…}`).
//!
//! Sources: the parameters are those of wyseman's `lib/encrypt.js`
//! (`deriveKey`: `getRandomValues(new Uint8Array(8))`, `iterations: 10000`,
//! `hash: "SHA-256"`, `AES-GCM` length 256; `encrypt`: 12-byte IV, JSON
//! `{"s": salt hex, "i": iv hex, "d": ciphertext base64}`), which the
//! MyCHIPs mobile app reproduces in `client/chark/src/services/crypto.js`
//! (`derivePassKey`: 8-byte salt, `pbkdf2Sync(…, 10000, 32, 'sha256')`;
//! `encrypt`: `aes-256-gcm`, 12-byte IV, tag appended); the `{"signkey":
//! {s, i, d}}` wrapper and the link are from the app's
//! `issues/key-deeplinks.md` and `screens/KeyManagement/ImportKey.jsx`.
//! Import is lenient about encodings (hex or base64 for `s` and `i`,
//! base64 or base64url for `d`, with or without the wrapper) because only
//! wyseman's encoding could be read in the sources; export writes exactly
//! wyseman's.
//!
//! 10 000 PBKDF2 iterations are weak against a stolen file; that is
//! MyCHIPs's format, kept for compatibility. The passphrase is the only
//! protection, so the export should stay on paper or in a password
//! manager.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::canonical::parse_json;
use crate::keys::{KeyError, TallyKey};

/// PBKDF2 iterations of the MyCHIPs sign key format.
pub const SIGNKEY_ITERATIONS: u32 = 10_000;
/// Salt bytes.
pub const SIGNKEY_SALT_LEN: usize = 8;
/// AES-GCM IV bytes.
pub const SIGNKEY_IV_LEN: usize = 12;
/// The link MyCHIPs's app opens to import a key.
pub const SIGNKEY_LINK: &str = "https://mychips.org/signkey";

const TAG_LEN: usize = 16;
/// Larger than any JWK; a bound for outside input.
const MAX_CIPHERTEXT: usize = 4096;

const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const LENIENT_URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a sign key could not be exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignKeyExportError {
    #[error("the operating system could not provide random bytes: {0}")]
    NoRandomness(String),
    #[error("encrypting the key failed")]
    Encryption,
}

/// Why an exported sign key could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignKeyImportError {
    #[error("this is not an exported MyCHIPs sign key: {0}")]
    Format(String),
    #[error(
        "the passphrase is wrong, or the exported key was changed or damaged (it does not decrypt)"
    )]
    Decryption,
    #[error("the exported key decrypts, but it is not a P-521 signing key: {0}")]
    Key(String),
}

/// Exports `key` encrypted with `passphrase`, as the JSON text
/// `{"signkey":{"s":…,"i":…,"d":…}}`.
pub fn export_signkey(key: &TallyKey, passphrase: &str) -> Result<String, SignKeyExportError> {
    let mut salt = [0u8; SIGNKEY_SALT_LEN];
    let mut iv = [0u8; SIGNKEY_IV_LEN];
    getrandom::fill(&mut salt).map_err(|e| SignKeyExportError::NoRandomness(e.to_string()))?;
    getrandom::fill(&mut iv).map_err(|e| SignKeyExportError::NoRandomness(e.to_string()))?;
    export_signkey_with(key, passphrase, &salt, &iv)
}

/// [`export_signkey`] with a given salt and IV: for test vectors only (an
/// IV must never be used twice with one passphrase and salt).
pub fn export_signkey_with(
    key: &TallyKey,
    passphrase: &str,
    salt: &[u8; SIGNKEY_SALT_LEN],
    iv: &[u8; SIGNKEY_IV_LEN],
) -> Result<String, SignKeyExportError> {
    let (s, i, d) = encrypt_parts(key, passphrase, salt, iv)?;
    Ok(format!(
        "{{\"signkey\":{{\"s\":\"{s}\",\"i\":\"{i}\",\"d\":\"{d}\"}}}}"
    ))
}

/// Exports `key` as the MyCHIPs import link
/// `https://mychips.org/signkey?s=…&i=…&d=…`.
pub fn export_signkey_link(key: &TallyKey, passphrase: &str) -> Result<String, SignKeyExportError> {
    let mut salt = [0u8; SIGNKEY_SALT_LEN];
    let mut iv = [0u8; SIGNKEY_IV_LEN];
    getrandom::fill(&mut salt).map_err(|e| SignKeyExportError::NoRandomness(e.to_string()))?;
    getrandom::fill(&mut iv).map_err(|e| SignKeyExportError::NoRandomness(e.to_string()))?;
    let (s, i, d) = encrypt_parts(key, passphrase, &salt, &iv)?;
    let mut url = url::Url::parse(SIGNKEY_LINK).map_err(|_| SignKeyExportError::Encryption)?;
    url.query_pairs_mut()
        .append_pair("s", &s)
        .append_pair("i", &i)
        .append_pair("d", &d);
    Ok(url.into())
}

fn derive_key(passphrase: &str, salt: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(
        passphrase.as_bytes(),
        salt,
        SIGNKEY_ITERATIONS,
        &mut key[..],
    );
    key
}

fn encrypt_parts(
    key: &TallyKey,
    passphrase: &str,
    salt: &[u8; SIGNKEY_SALT_LEN],
    iv: &[u8; SIGNKEY_IV_LEN],
) -> Result<(String, String, String), SignKeyExportError> {
    let aes_key = derive_key(passphrase, salt);
    let cipher =
        Aes256Gcm::new_from_slice(&aes_key[..]).map_err(|_| SignKeyExportError::Encryption)?;
    let plaintext = key.to_private_jwk();
    let sealed = cipher
        .encrypt(&Nonce::from(*iv), plaintext.as_bytes())
        .map_err(|_| SignKeyExportError::Encryption)?;
    Ok((hex::encode(salt), hex::encode(iv), STANDARD.encode(sealed)))
}

/// Imports a key exported by [`export_signkey`], [`export_signkey_link`]
/// or MyCHIPs: the JSON (with or without the `signkey` wrapper) or the
/// link. The key is checked (its `x`/`y`, if present, must belong to `d`).
pub fn import_signkey(exported: &str, passphrase: &str) -> Result<TallyKey, SignKeyImportError> {
    let (s, i, d) = parts(exported.trim())?;
    let salt = decode_bytes("s", &s, SIGNKEY_SALT_LEN)?;
    let iv: [u8; SIGNKEY_IV_LEN] = decode_bytes("i", &i, SIGNKEY_IV_LEN)?
        .try_into()
        .map_err(|_| SignKeyImportError::Format("\"i\" must be 12 bytes".into()))?;
    let sealed = decode_base64("d", &d)?;
    if sealed.len() <= TAG_LEN || sealed.len() > MAX_CIPHERTEXT {
        return Err(SignKeyImportError::Format(format!(
            "\"d\" holds {} bytes, which cannot be an encrypted key",
            sealed.len()
        )));
    }
    let aes_key = derive_key(passphrase, &salt);
    let cipher =
        Aes256Gcm::new_from_slice(&aes_key[..]).map_err(|_| SignKeyImportError::Decryption)?;
    let plaintext = Zeroizing::new(
        cipher
            .decrypt(&Nonce::from(iv), sealed.as_slice())
            .map_err(|_| SignKeyImportError::Decryption)?,
    );
    let text = std::str::from_utf8(&plaintext)
        .map_err(|_| SignKeyImportError::Key("it is not text".into()))?;
    let jwk = parse_json(text).map_err(|e| SignKeyImportError::Key(e.to_string()))?;
    let key = TallyKey::from_private_jwk(&jwk).map_err(|e| match e {
        KeyError::BadJwk(reason) => SignKeyImportError::Key(reason),
        other => SignKeyImportError::Key(other.to_string()),
    });
    drop(jwk_zeroize(jwk));
    key
}

/// Overwrites the strings of a parsed private JWK before it is dropped.
fn jwk_zeroize(mut jwk: Value) -> Value {
    if let Some(map) = jwk.as_object_mut() {
        for value in map.values_mut() {
            if let Value::String(s) = value {
                zeroize::Zeroize::zeroize(s);
            }
        }
    }
    jwk
}

/// `(s, i, d)` from the JSON or link form.
fn parts(exported: &str) -> Result<(String, String, String), SignKeyImportError> {
    if exported.starts_with("https://") || exported.starts_with("http://") {
        let url = url::Url::parse(exported)
            .map_err(|e| SignKeyImportError::Format(format!("not a link: {e}")))?;
        if !url.path().ends_with("/signkey") {
            return Err(SignKeyImportError::Format(format!(
                "a sign key link ends in /signkey, not {}",
                url.path()
            )));
        }
        let get = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .ok_or_else(|| SignKeyImportError::Format(format!("the link has no \"{name}\"")))
        };
        return Ok((get("s")?, get("i")?, get("d")?));
    }
    let value = parse_json(exported).map_err(|e| SignKeyImportError::Format(e.to_string()))?;
    let inner = value.get("signkey").unwrap_or(&value);
    let get = |name: &str| {
        inner
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                SignKeyImportError::Format(format!("\"{name}\" is missing or not a string"))
            })
    };
    Ok((get("s")?, get("i")?, get("d")?))
}

/// `len` bytes as hex (what MyCHIPs writes) or base64.
fn decode_bytes(name: &str, text: &str, len: usize) -> Result<Vec<u8>, SignKeyImportError> {
    let bytes = if text.len() == 2 * len && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        LENIENT_STANDARD
            .decode(text)
            .or_else(|_| LENIENT_URL.decode(text))
            .ok()
    };
    match bytes {
        Some(bytes) if bytes.len() == len => Ok(bytes),
        _ => Err(SignKeyImportError::Format(format!(
            "\"{name}\" must be {len} bytes in hex"
        ))),
    }
}

fn decode_base64(name: &str, text: &str) -> Result<Vec<u8>, SignKeyImportError> {
    LENIENT_STANDARD
        .decode(text)
        .or_else(|_| LENIENT_URL.decode(text))
        .map_err(|e| SignKeyImportError::Format(format!("\"{name}\" is not base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Seed, WalletKeys};

    fn key() -> TallyKey {
        WalletKeys::new(&Seed::from_bytes(&[9; 64]).expect("seed"), 0)
            .and_then(|k| k.tally_key())
            .expect("tally key")
    }

    #[test]
    fn export_then_import_gives_the_same_key() {
        let key = key();
        let exported = export_signkey(&key, "correct horse").expect("exports");
        let value: Value = serde_json::from_str(&exported).expect("JSON");
        let s = value["signkey"]["s"].as_str().unwrap_or_default();
        let i = value["signkey"]["i"].as_str().unwrap_or_default();
        assert_eq!(s.len(), 16, "8 bytes hex");
        assert_eq!(i.len(), 24, "12 bytes hex");
        let imported = import_signkey(&exported, "correct horse").expect("imports");
        assert_eq!(imported, key);
        assert_eq!(imported.public_key(), key.public_key());
        // Salt and IV are fresh each time.
        assert_ne!(
            export_signkey(&key, "correct horse").expect("again"),
            exported
        );
        // The bare {s,i,d} and the link work too.
        let bare = value["signkey"].to_string();
        assert_eq!(import_signkey(&bare, "correct horse").expect("bare"), key);
        let link = export_signkey_link(&key, "pässwörd").expect("link");
        assert!(link.starts_with("https://mychips.org/signkey?s="), "{link}");
        assert_eq!(
            import_signkey(&link, "pässwörd").expect("link imports"),
            key
        );
    }

    #[test]
    fn wrong_passphrase_or_damage_is_refused_clearly() {
        let key = key();
        let exported = export_signkey_with(&key, "pw", &[1; 8], &[2; 12]).expect("exports");
        assert_eq!(
            import_signkey(&exported, "PW").map(|_| ()),
            Err(SignKeyImportError::Decryption)
        );
        let value: Value = serde_json::from_str(&exported).expect("JSON");
        let d = value["signkey"]["d"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut sealed = STANDARD.decode(&d).expect("base64");
        for at in [0, sealed.len() / 2, sealed.len() - 1] {
            sealed[at] ^= 0x80;
            let mut damaged = value.clone();
            damaged["signkey"]["d"] = Value::String(STANDARD.encode(&sealed));
            assert_eq!(
                import_signkey(&damaged.to_string(), "pw").map(|_| ()),
                Err(SignKeyImportError::Decryption),
                "byte {at}"
            );
            sealed[at] ^= 0x80;
        }
        for (text, why) in [
            ("", "empty"),
            ("{}", "no members"),
            (r#"{"signkey":{"s":"00","i":"00","d":"AA"}}"#, "short"),
            (
                r#"{"signkey":{"s":"zz","i":"000000000000000000000000","d":"AAAA"}}"#,
                "not hex",
            ),
            ("https://mychips.org/ticket?s=1", "wrong link"),
            ("https://mychips.org/signkey?s=0000000000000000", "no i"),
        ] {
            assert!(
                matches!(
                    import_signkey(text, "pw"),
                    Err(SignKeyImportError::Format(_))
                ),
                "{why}"
            );
        }
    }

    #[test]
    fn a_decrypting_blob_that_is_not_a_key_is_refused() {
        let salt = [3u8; 8];
        let iv = [4u8; 12];
        let aes_key = derive_key("pw", &salt);
        let cipher = Aes256Gcm::new_from_slice(&aes_key[..]).expect("key");
        let sealed = cipher
            .encrypt(
                &Nonce::from(iv),
                br#"{"kty":"EC","crv":"P-256","d":"AA"}"#.as_slice(),
            )
            .expect("encrypts");
        let blob = format!(
            r#"{{"signkey":{{"s":"{}","i":"{}","d":"{}"}}}}"#,
            hex::encode(salt),
            hex::encode(iv),
            STANDARD.encode(sealed)
        );
        assert!(matches!(
            import_signkey(&blob, "pw"),
            Err(SignKeyImportError::Key(_))
        ));
    }

    /// A fixed vector: the key of "abandon … about" (account 0), passphrase
    /// "pw", salt 01×8, IV 02×12. Node's WebCrypto decrypts it to the same
    /// key (checked once by hand with tests/interop/mychips-records/lib.mjs,
    /// and in both directions by tests/tests/mychips_records.rs).
    #[test]
    fn the_format_is_pinned() {
        let phrase = crate::keys::RecoveryPhrase::parse(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        )
        .expect("phrase");
        let key = WalletKeys::new(&phrase.to_seed(""), 0)
            .and_then(|k| k.tally_key())
            .expect("tally key");
        let exported = export_signkey_with(&key, "pw", &[1; 8], &[2; 12]).expect("exports");
        assert_eq!(exported, PINNED_SIGNKEY);
        assert_eq!(import_signkey(PINNED_SIGNKEY, "pw").expect("imports"), key);
    }

    const PINNED_SIGNKEY: &str = concat!(
        r#"{"signkey":{"s":"0101010101010101","i":"020202020202020202020202","d":""#,
        "va7JNP9zQkMD3j3bUiJar+6YOeLuB/ezwQRtgGwEugSGke2arpCAp/vIP5/Ti2zhowjxB//v7jJo3a4ylCfGg5Sz",
        "7/xb9MTekQ+Dyb2f7GDUgjQMngxDjXc1ZlXPuphzLwbjVdwqY4mbwbHTq9ZsGk687wMYBcOyzzse5QvLbYHtLE8u",
        "6pes3WtiOWrPmUvsBup4ZcXtw3nteteYgG1hm2mb7oYdaXDomK/2z0cpCVbMS8ohOexyHM76jpnTmILZX8MrGhcS",
        "TTt627ECsq4DxPxSDRGNloulyliv2OQVm3SvGiKlJPKEanl2AjA2RCdgWuSbJYZcsmJOSI4/RNPVrvcXBd4KRQAh",
        "g/+2ml3pQac7FwGtdjeR1ittNgtABoL6HXxokR7ozztzRMuDL9W40Lp4aDd/cpH6TGRqkucbPkZ5dwaxh2mz0mMW",
        "z162Zu6d80dZgLzvchnQ5BhmYT5xphAnoQQC",
        r#""}}"#
    );
}
