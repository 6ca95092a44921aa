//! The tally signing key: ECDSA P-521 with SHA-384, as MyCHIPs uses it
//! (public key as a WebCrypto JWK, signatures as raw `r||s`).
//!
//! # Derivation
//!
//! SLIP-10 has no P-521 curve, so the key is made from an Ed25519 SLIP-10
//! node (`m/44'/20047'/<account>'/3'/0'`, see
//! [`WalletKeys::tally_key`](super::WalletKeys::tally_key)):
//!
//! 1. `okm = HKDF-SHA512(salt = "notch/tally-key/p521/v1", ikm = node's
//!    32-byte private key, info = "notch tally key" || attempt)`, 66 bytes,
//!    `attempt` a single byte starting at 0;
//! 2. keep the low 521 bits (`okm[0] &= 0x01`), read big-endian;
//! 3. if that is 0 or not below the group order, try the next `attempt`
//!    (the chance of needing a second attempt is below 2^-260).
//!
//! So the key is recoverable from the recovery phrase alone, and
//! independent of every other key of the wallet.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hkdf::Hkdf;
use p521::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p521::ecdsa::{Signature, SigningKey, VerifyingKey};
use p521::elliptic_curve::sec1::EncodedPoint;
use p521::{FieldBytes, NistP521};
use sha2::{Digest, Sha384, Sha512};
use zeroize::Zeroizing;

use super::{ExtendedKey, KeyError};

const HKDF_SALT: &[u8] = b"notch/tally-key/p521/v1";
const HKDF_INFO: &[u8] = b"notch tally key";
/// Bytes of a P-521 scalar or coordinate.
const FIELD_LEN: usize = 66;
/// Bytes of a raw `r||s` signature.
pub const SIGNATURE_LEN: usize = 2 * FIELD_LEN;

/// base64url that accepts input with or without `=` padding.
const LENIENT_BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The tally signing key. Its secret scalar is zeroized on drop.
pub struct TallyKey {
    signing: SigningKey,
}

impl TallyKey {
    /// Makes the key from a SLIP-10 node, as the module docs describe.
    pub fn from_node(node: &ExtendedKey) -> Result<Self, KeyError> {
        let hkdf = Hkdf::<Sha512>::new(Some(HKDF_SALT), node.secret_bytes());
        for attempt in 0u8..=u8::MAX {
            let mut okm = Zeroizing::new([0u8; FIELD_LEN]);
            hkdf.expand_multi_info(&[HKDF_INFO, &[attempt]], &mut okm[..])
                .map_err(|e| KeyError::TallyDerivation(e.to_string()))?;
            okm[0] &= 0x01;
            if let Ok(signing) = SigningKey::from_slice(&okm[..]) {
                return Ok(Self { signing });
            }
        }
        Err(KeyError::TallyDerivation(
            "no valid P-521 scalar in 256 attempts".into(),
        ))
    }

    pub fn public_key(&self) -> TallyPublicKey {
        TallyPublicKey {
            key: VerifyingKey::from(&self.signing),
        }
    }

    /// ECDSA P-521 over SHA-384 of `message` (deterministic, RFC 6979).
    pub fn sign(&self, message: &[u8]) -> Result<TallySignature, KeyError> {
        let digest = Sha384::digest(message);
        let signature: Signature = self
            .signing
            .sign_prehash(&digest)
            .map_err(|e| KeyError::BadSignature(format!("signing failed: {e}")))?;
        Ok(TallySignature(signature))
    }
}

impl fmt::Debug for TallyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TallyKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// A P-521 public key of a tally party.
#[derive(Clone)]
pub struct TallyPublicKey {
    key: VerifyingKey,
}

impl PartialEq for TallyPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.key.to_encoded_point(false) == other.key.to_encoded_point(false)
    }
}

impl Eq for TallyPublicKey {}

impl TallyPublicKey {
    /// The key as WebCrypto exports it and MyCHIPs stores it in a tally:
    /// `{"crv":"P-521","ext":true,"key_ops":["verify"],"kty":"EC","x":…,"y":…}`.
    pub fn to_jwk(&self) -> serde_json::Value {
        let point = self.key.to_encoded_point(false);
        let coordinate = |c: Option<&FieldBytes>| c.map(|c| URL_SAFE_NO_PAD.encode(c));
        serde_json::json!({
            "crv": "P-521",
            "ext": true,
            "key_ops": ["verify"],
            "kty": "EC",
            "x": coordinate(point.x()),
            "y": coordinate(point.y()),
        })
    }

    /// Reads a JWK with `kty` `EC` and `crv` `P-521`; other members
    /// (`ext`, `key_ops`, …) are ignored.
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<Self, KeyError> {
        let bad = |why: &str| KeyError::BadJwk(why.to_owned());
        let member = |name: &str| jwk.get(name).and_then(|v| v.as_str());
        if !jwk.is_object() {
            return Err(bad("it is not a JSON object"));
        }
        if member("kty") != Some("EC") {
            return Err(bad("\"kty\" must be \"EC\""));
        }
        if member("crv") != Some("P-521") {
            return Err(bad("\"crv\" must be \"P-521\""));
        }
        let coordinate = |name: &str| -> Result<FieldBytes, KeyError> {
            let text =
                member(name).ok_or_else(|| KeyError::BadJwk(format!("\"{name}\" is missing")))?;
            let bytes = LENIENT_BASE64URL
                .decode(text)
                .map_err(|e| KeyError::BadJwk(format!("\"{name}\" is not base64url: {e}")))?;
            if bytes.len() != FIELD_LEN {
                return Err(KeyError::BadJwk(format!(
                    "\"{name}\" must be {FIELD_LEN} bytes, not {}",
                    bytes.len()
                )));
            }
            let mut field = FieldBytes::default();
            field.copy_from_slice(&bytes);
            Ok(field)
        };
        let point = EncodedPoint::<NistP521>::from_affine_coordinates(
            &coordinate("x")?,
            &coordinate("y")?,
            false,
        );
        let key = VerifyingKey::from_encoded_point(&point)
            .map_err(|_| bad("the point is not on the P-521 curve"))?;
        Ok(Self { key })
    }

    /// Checks an ECDSA P-521 / SHA-384 signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &TallySignature) -> Result<(), KeyError> {
        let digest = Sha384::digest(message);
        self.key
            .verify_prehash(&digest, &signature.0)
            .map_err(|_| KeyError::BadSignature("it does not match the message and key".into()))
    }
}

impl fmt::Debug for TallyPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let jwk = self.to_jwk();
        let x = jwk.get("x").and_then(|x| x.as_str()).unwrap_or_default();
        write!(f, "TallyPublicKey(x={x})")
    }
}

/// An ECDSA P-521 signature as raw `r||s` (132 bytes); MyCHIPs writes it
/// base64url-encoded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TallySignature(Signature);

impl TallySignature {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != SIGNATURE_LEN {
            return Err(KeyError::BadSignature(format!(
                "a P-521 signature is {SIGNATURE_LEN} bytes, not {}",
                bytes.len()
            )));
        }
        Signature::from_slice(bytes)
            .map(Self)
            .map_err(|_| KeyError::BadSignature("r or s is out of range".into()))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes().to_vec()
    }

    pub fn from_base64url(text: &str) -> Result<Self, KeyError> {
        let bytes = LENIENT_BASE64URL
            .decode(text)
            .map_err(|e| KeyError::BadSignature(format!("it is not base64url: {e}")))?;
        Self::from_bytes(&bytes)
    }

    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.to_bytes())
    }
}

impl fmt::Debug for TallySignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TallySignature({})", self.to_base64url())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::keys::{RecoveryPhrase, Seed, WalletKeys};

    fn abandon_keys() -> WalletKeys {
        let phrase = RecoveryPhrase::parse(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        )
        .expect("valid phrase");
        WalletKeys::new(&phrase.to_seed(""), 0).expect("account 0")
    }

    #[test]
    fn derivation_is_deterministic_and_pinned() {
        let a = abandon_keys().tally_key().expect("tally key");
        let b = abandon_keys().tally_key().expect("tally key");
        assert_eq!(a.public_key(), b.public_key());
        // Pinned so that a change to the derivation cannot go unnoticed:
        // wallets restored from a phrase must find the same tally key.
        let jwk = a.public_key().to_jwk();
        assert_eq!(jwk["x"], PINNED_X, "{jwk}");
        let other = WalletKeys::new(&Seed::from_bytes(&[5; 64]).expect("seed"), 0)
            .and_then(|k| k.tally_key())
            .expect("tally key");
        assert_ne!(other.public_key(), a.public_key());
    }

    /// `x` of the tally key of "abandon … about" (no passphrase), account 0.
    /// Cross-checked with an independent Python implementation of the
    /// documented derivation (hmac/hashlib and textbook P-521 arithmetic).
    const PINNED_X: &str =
        "ATfo_ilk6b0J01pEp9NKtY-JRxPnj10ogXXsFvJubJbBXl_lipKbg5qd-CRc3U43tuvQ2RDZZBYtApSWLrAyDBkm";

    #[test]
    fn signs_verifies_and_round_trips_jwk() {
        let key = abandon_keys().tally_key().expect("tally key");
        let signature = key.sign(b"chit").expect("signs");
        assert_eq!(signature.to_bytes().len(), SIGNATURE_LEN);
        let public = TallyPublicKey::from_jwk(&key.public_key().to_jwk()).expect("round trip");
        assert_eq!(public, key.public_key());
        assert!(public.verify(b"chit", &signature).is_ok());
        assert!(matches!(
            public.verify(b"chat", &signature),
            Err(KeyError::BadSignature(_))
        ));
        let again = TallySignature::from_base64url(&signature.to_base64url()).expect("decodes");
        assert_eq!(again, signature);
        let jwk = key.public_key().to_jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-521");
        assert_eq!(jwk["key_ops"], serde_json::json!(["verify"]));
        let text = format!("{key:?}");
        assert!(text.contains("TallyPublicKey"), "{text}");
    }

    #[test]
    fn bad_jwks_and_signatures_are_refused() {
        let key = abandon_keys().tally_key().expect("tally key");
        let good = key.public_key().to_jwk();
        let with = |name: &str, value: Value| {
            let mut jwk = good.clone();
            jwk[name] = value;
            TallyPublicKey::from_jwk(&jwk)
        };
        assert!(matches!(
            with("crv", "P-256".into()),
            Err(KeyError::BadJwk(_))
        ));
        assert!(matches!(
            with("kty", "OKP".into()),
            Err(KeyError::BadJwk(_))
        ));
        assert!(matches!(with("x", "AQAB".into()), Err(KeyError::BadJwk(_))));
        assert!(matches!(with("y", "!!".into()), Err(KeyError::BadJwk(_))));
        // A point that is not on the curve.
        let y = good["y"].as_str().unwrap_or_default().replace('A', "B");
        assert!(matches!(with("y", y.into()), Err(KeyError::BadJwk(_))));
        assert!(matches!(
            TallyPublicKey::from_jwk(&Value::Null),
            Err(KeyError::BadJwk(_))
        ));
        assert!(matches!(
            TallySignature::from_bytes(&[1; 64]),
            Err(KeyError::BadSignature(_))
        ));
        assert!(matches!(
            TallySignature::from_bytes(&[0; SIGNATURE_LEN]),
            Err(KeyError::BadSignature(_))
        ));
    }

    /// json-stable-stringify: sorted keys, no white space.
    fn stable_stringify(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let members: Vec<String> = keys
                    .into_iter()
                    .map(|k| format!("{}:{}", Value::String(k.clone()), stable_stringify(&map[k])))
                    .collect();
                format!("{{{}}}", members.join(","))
            }
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(stable_stringify).collect();
                format!("[{}]", items.join(","))
            }
            other => other.to_string(),
        }
    }

    /// Verifies both signatures of a tally that MyCHIPs itself signed.
    #[test]
    fn verifies_a_tally_signed_by_mychips() {
        let mut tally: Value =
            serde_json::from_str(include_str!("../../testdata/mychips-validtally.json"))
                .expect("valid JSON");
        let sign = tally
            .as_object_mut()
            .and_then(|t| t.remove("sign"))
            .expect("has sign");
        let message = stable_stringify(&tally);
        assert_eq!(message.len(), 2189);
        assert_eq!(
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(message.as_bytes())),
            "3NPx7F5mfAiqyvo2IWPNmqFI5il_cx-8DnYZFEAD4so"
        );
        for side in ["stock", "foil"] {
            let public = TallyPublicKey::from_jwk(&tally[side]["cert"]["public"]).expect("JWK");
            let signature = TallySignature::from_base64url(sign[side].as_str().unwrap_or_default())
                .expect("signature");
            assert_eq!(
                public.verify(message.as_bytes(), &signature),
                Ok(()),
                "{side}"
            );
            assert!(public.verify(b"something else", &signature).is_err());
        }
    }
}
