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
//!
//! # Two backends, one set of bytes
//!
//! Tallies and chits are signed and checked often (every chit, every
//! consensus round), and the project asks for at least 5x the signing and
//! 3x the verifying rate of Node's WebCrypto, which MyCHIPs uses. RustCrypto's
//! `p521` reaches about 1.9x / 0.95x of that; aws-lc-rs reaches about 10x /
//! 4x. But nothing may compile C for Apple targets, so:
//!
//! - everywhere except `target_vendor = "apple"`, signing and verifying use
//!   aws-lc-rs (`ECDSA_P521_SHA384_FIXED_SIGNING` / `ECDSA_P521_SHA384_FIXED`,
//!   the key imported as its big-endian scalar plus public point);
//! - on Apple targets they use the pure-Rust `p521` crate.
//!
//! Both take and give the same bytes: a 66-byte big-endian scalar, a
//! 133-byte uncompressed point, a 132-byte `r||s`, and both draw a fresh
//! random nonce per signature (as WebCrypto does), so signatures are valid
//! ECDSA that verify everywhere but are not reproducible (a unit test signs
//! with each backend and verifies with the other).
//! Key and signature parsing (range and on-curve checks) always goes
//! through `p521`, so both backends refuse exactly the same inputs.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hkdf::Hkdf;
use sha2::Sha512;
use zeroize::Zeroizing;

use super::{ExtendedKey, KeyError};

const HKDF_SALT: &[u8] = b"notch/tally-key/p521/v1";
const HKDF_INFO: &[u8] = b"notch tally key";
/// Bytes of a P-521 scalar or coordinate.
pub const FIELD_LEN: usize = 66;
/// Bytes of a raw `r||s` signature.
pub const SIGNATURE_LEN: usize = 2 * FIELD_LEN;
/// Bytes of an uncompressed SEC1 point (`0x04 || x || y`).
pub const POINT_LEN: usize = 1 + 2 * FIELD_LEN;

/// base64url that accepts input with or without `=` padding.
const LENIENT_BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The tally signing key. Its secret scalar is zeroized on drop.
pub struct TallyKey {
    scalar: Zeroizing<[u8; FIELD_LEN]>,
    public: TallyPublicKey,
    signer: backend::Signer,
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
            if rustcrypto::is_valid_scalar(&okm) {
                return Self::from_scalar(okm);
            }
        }
        Err(KeyError::TallyDerivation(
            "no valid P-521 scalar in 256 attempts".into(),
        ))
    }

    /// Makes the key from its secret scalar: 66 bytes, big-endian, in
    /// `1..n` (what a WebCrypto JWK's `d` decodes to).
    pub fn from_scalar_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let scalar: [u8; FIELD_LEN] = bytes.try_into().map_err(|_| {
            KeyError::BadJwk(format!(
                "a P-521 private key is {FIELD_LEN} bytes, not {}",
                bytes.len()
            ))
        })?;
        let scalar = Zeroizing::new(scalar);
        if !rustcrypto::is_valid_scalar(&scalar) {
            return Err(KeyError::BadJwk(
                "the private key is 0 or not below the P-521 group order".into(),
            ));
        }
        Self::from_scalar(scalar)
    }

    fn from_scalar(scalar: Zeroizing<[u8; FIELD_LEN]>) -> Result<Self, KeyError> {
        let point = rustcrypto::public_point(&scalar)?;
        let public = TallyPublicKey::from_point(point)?;
        let signer = backend::Signer::new(&scalar, &point)?;
        Ok(Self {
            scalar,
            public,
            signer,
        })
    }

    /// Reads a private WebCrypto JWK (`kty` `EC`, `crv` `P-521`, `d`, and
    /// optionally `x`/`y`, which must then belong to `d`). This is what
    /// MyCHIPs's apps store and export as the signing key.
    pub fn from_private_jwk(jwk: &serde_json::Value) -> Result<Self, KeyError> {
        check_ec_p521(jwk)?;
        let d = jwk_member_bytes(jwk, "d")?;
        let key = Self::from_scalar_bytes(&d[..])?;
        let has_x = jwk.get("x").is_some();
        let has_y = jwk.get("y").is_some();
        if has_x || has_y {
            let public = TallyPublicKey::from_jwk(jwk)?;
            if public != key.public {
                return Err(KeyError::BadJwk(
                    "\"x\"/\"y\" are not the public key of \"d\"".into(),
                ));
            }
        }
        Ok(key)
    }

    /// The key as a private WebCrypto JWK, serialized the way MyCHIPs
    /// stores it: `{"crv":"P-521","d":…,"ext":true,"key_ops":["sign"],
    /// "kty":"EC","x":…,"y":…}` (keys in sorted order).
    pub fn to_private_jwk(&self) -> Zeroizing<String> {
        let d = Zeroizing::new(URL_SAFE_NO_PAD.encode(&self.scalar[..]));
        let (x, y) = self.public.coordinates_base64url();
        Zeroizing::new(format!(
            "{{\"crv\":\"P-521\",\"d\":\"{}\",\"ext\":true,\"key_ops\":[\"sign\"],\"kty\":\"EC\",\"x\":\"{x}\",\"y\":\"{y}\"}}",
            d.as_str()
        ))
    }

    pub fn public_key(&self) -> TallyPublicKey {
        self.public.clone()
    }

    /// ECDSA P-521 over SHA-384 of `message`, raw `r||s`.
    pub fn sign(&self, message: &[u8]) -> Result<TallySignature, KeyError> {
        let bytes = self.signer.sign(message)?;
        TallySignature::from_bytes(&bytes)
    }
}

impl PartialEq for TallyKey {
    fn eq(&self, other: &Self) -> bool {
        // Not constant-time: keys are compared in tests and after imports,
        // never against an attacker-chosen guess.
        self.scalar[..] == other.scalar[..]
    }
}

impl Eq for TallyKey {}

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
    point: [u8; POINT_LEN],
    verifier: backend::Verifier,
}

impl PartialEq for TallyPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.point[..] == other.point[..]
    }
}

impl Eq for TallyPublicKey {}

impl TallyPublicKey {
    /// From an uncompressed SEC1 point, checked to be on the curve.
    pub fn from_sec1_point(bytes: &[u8]) -> Result<Self, KeyError> {
        let point: [u8; POINT_LEN] = bytes.try_into().map_err(|_| {
            KeyError::BadJwk(format!(
                "an uncompressed P-521 point is {POINT_LEN} bytes, not {}",
                bytes.len()
            ))
        })?;
        Self::from_point(point)
    }

    fn from_point(point: [u8; POINT_LEN]) -> Result<Self, KeyError> {
        rustcrypto::check_point(&point)?;
        let verifier = backend::Verifier::new(&point)?;
        Ok(Self { point, verifier })
    }

    /// The uncompressed SEC1 point (`0x04 || x || y`).
    pub fn sec1_point(&self) -> &[u8; POINT_LEN] {
        &self.point
    }

    fn coordinates_base64url(&self) -> (String, String) {
        (
            URL_SAFE_NO_PAD.encode(&self.point[1..1 + FIELD_LEN]),
            URL_SAFE_NO_PAD.encode(&self.point[1 + FIELD_LEN..]),
        )
    }

    /// The key as WebCrypto exports it and MyCHIPs stores it in a tally:
    /// `{"crv":"P-521","ext":true,"key_ops":["verify"],"kty":"EC","x":…,"y":…}`.
    pub fn to_jwk(&self) -> serde_json::Value {
        let (x, y) = self.coordinates_base64url();
        serde_json::json!({
            "crv": "P-521",
            "ext": true,
            "key_ops": ["verify"],
            "kty": "EC",
            "x": x,
            "y": y,
        })
    }

    /// Reads a JWK with `kty` `EC` and `crv` `P-521`; other members
    /// (`ext`, `key_ops`, `d`, …) are ignored.
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<Self, KeyError> {
        check_ec_p521(jwk)?;
        let x = jwk_member_bytes(jwk, "x")?;
        let y = jwk_member_bytes(jwk, "y")?;
        let mut point = [0u8; POINT_LEN];
        point[0] = 0x04;
        point[1..1 + FIELD_LEN].copy_from_slice(&x[..]);
        point[1 + FIELD_LEN..].copy_from_slice(&y[..]);
        Self::from_point(point)
            .map_err(|_| KeyError::BadJwk("the point is not on the P-521 curve".into()))
    }

    /// Checks an ECDSA P-521 / SHA-384 signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &TallySignature) -> Result<(), KeyError> {
        if self.verifier.verify(message, &signature.0) {
            Ok(())
        } else {
            Err(KeyError::BadSignature(
                "it does not match the message and key".into(),
            ))
        }
    }
}

impl fmt::Debug for TallyPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (x, _) = self.coordinates_base64url();
        write!(f, "TallyPublicKey(x={x})")
    }
}

/// An ECDSA P-521 signature as raw `r||s` (132 bytes, each half in
/// `1..n`); MyCHIPs writes it base64url-encoded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TallySignature([u8; SIGNATURE_LEN]);

impl TallySignature {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let raw: [u8; SIGNATURE_LEN] = bytes.try_into().map_err(|_| {
            KeyError::BadSignature(format!(
                "a P-521 signature is {SIGNATURE_LEN} bytes, not {}",
                bytes.len()
            ))
        })?;
        if !rustcrypto::is_valid_signature(&raw) {
            return Err(KeyError::BadSignature("r or s is out of range".into()));
        }
        Ok(Self(raw))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_vec()
    }

    pub fn from_base64url(text: &str) -> Result<Self, KeyError> {
        let bytes = LENIENT_BASE64URL
            .decode(text)
            .map_err(|e| KeyError::BadSignature(format!("it is not base64url: {e}")))?;
        Self::from_bytes(&bytes)
    }

    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl fmt::Debug for TallySignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TallySignature({})", self.to_base64url())
    }
}

fn check_ec_p521(jwk: &serde_json::Value) -> Result<(), KeyError> {
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
    Ok(())
}

/// A 66-byte base64url member of a JWK (`x`, `y` or `d`).
fn jwk_member_bytes(
    jwk: &serde_json::Value,
    name: &str,
) -> Result<Zeroizing<[u8; FIELD_LEN]>, KeyError> {
    let text = jwk
        .get(name)
        .and_then(|v| v.as_str())
        .ok_or_else(|| KeyError::BadJwk(format!("\"{name}\" is missing or not a string")))?;
    let bytes = Zeroizing::new(
        LENIENT_BASE64URL
            .decode(text)
            .map_err(|e| KeyError::BadJwk(format!("\"{name}\" is not base64url: {e}")))?,
    );
    let mut field = Zeroizing::new([0u8; FIELD_LEN]);
    if bytes.len() != FIELD_LEN {
        return Err(KeyError::BadJwk(format!(
            "\"{name}\" must be {FIELD_LEN} bytes, not {}",
            bytes.len()
        )));
    }
    field.copy_from_slice(&bytes);
    Ok(field)
}

/// The pure-Rust side (RustCrypto `p521`): always compiled, because all
/// parsing goes through it, and it is the signing backend on Apple targets.
#[cfg_attr(not(target_vendor = "apple"), allow(dead_code))]
mod rustcrypto {
    use p521::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
    use p521::ecdsa::{Signature, SigningKey, VerifyingKey};
    use sha2::{Digest, Sha384};

    use super::{FIELD_LEN, POINT_LEN, SIGNATURE_LEN};
    use crate::keys::KeyError;

    pub(super) fn is_valid_scalar(bytes: &[u8; FIELD_LEN]) -> bool {
        SigningKey::from_slice(bytes).is_ok()
    }

    pub(super) fn is_valid_signature(bytes: &[u8; SIGNATURE_LEN]) -> bool {
        Signature::from_slice(bytes).is_ok()
    }

    pub(super) fn check_point(point: &[u8; POINT_LEN]) -> Result<(), KeyError> {
        VerifyingKey::from_sec1_bytes(point)
            .map(|_| ())
            .map_err(|_| KeyError::BadJwk("the point is not on the P-521 curve".into()))
    }

    pub(super) fn public_point(scalar: &[u8; FIELD_LEN]) -> Result<[u8; POINT_LEN], KeyError> {
        let signing = SigningKey::from_slice(scalar)
            .map_err(|_| KeyError::BadJwk("the private key is out of range".into()))?;
        let encoded = VerifyingKey::from(&signing).to_encoded_point(false);
        encoded
            .as_bytes()
            .try_into()
            .map_err(|_| KeyError::TallyDerivation("unexpected public point length".into()))
    }

    pub(super) struct Signer(SigningKey);

    impl Signer {
        pub(super) fn new(scalar: &[u8; FIELD_LEN]) -> Result<Self, KeyError> {
            SigningKey::from_slice(scalar)
                .map(Self)
                .map_err(|_| KeyError::BadJwk("the private key is out of range".into()))
        }

        pub(super) fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], KeyError> {
            let digest = Sha384::digest(message);
            let signature: Signature = self
                .0
                .sign_prehash(&digest)
                .map_err(|e| KeyError::BadSignature(format!("signing failed: {e}")))?;
            let mut out = [0u8; SIGNATURE_LEN];
            out.copy_from_slice(&signature.to_bytes());
            Ok(out)
        }
    }

    #[derive(Clone)]
    pub(super) struct Verifier(VerifyingKey);

    impl Verifier {
        pub(super) fn new(point: &[u8; POINT_LEN]) -> Result<Self, KeyError> {
            VerifyingKey::from_sec1_bytes(point)
                .map(Self)
                .map_err(|_| KeyError::BadJwk("the point is not on the P-521 curve".into()))
        }

        pub(super) fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
            let Ok(signature) = Signature::from_slice(signature) else {
                return false;
            };
            let digest = Sha384::digest(message);
            self.0.verify_prehash(&digest, &signature).is_ok()
        }
    }
}

/// The fast side (aws-lc-rs), for every target that may compile C.
#[cfg(not(target_vendor = "apple"))]
mod awslc {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P521_SHA384_FIXED, ECDSA_P521_SHA384_FIXED_SIGNING, EcdsaKeyPair, ParsedPublicKey,
    };

    use super::{FIELD_LEN, POINT_LEN, SIGNATURE_LEN};
    use crate::keys::KeyError;

    pub(super) struct Signer {
        pair: EcdsaKeyPair,
        rng: SystemRandom,
    }

    impl Signer {
        pub(super) fn new(
            scalar: &[u8; FIELD_LEN],
            point: &[u8; POINT_LEN],
        ) -> Result<Self, KeyError> {
            let pair = EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P521_SHA384_FIXED_SIGNING,
                scalar,
                point,
            )
            .map_err(|e| KeyError::BadJwk(format!("aws-lc refused the key: {e}")))?;
            Ok(Self {
                pair,
                rng: SystemRandom::new(),
            })
        }

        pub(super) fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], KeyError> {
            let signature = self
                .pair
                .sign(&self.rng, message)
                .map_err(|_| KeyError::BadSignature("signing failed".into()))?;
            signature.as_ref().try_into().map_err(|_| {
                KeyError::BadSignature("aws-lc returned a signature of the wrong length".into())
            })
        }
    }

    #[derive(Clone)]
    pub(super) struct Verifier(ParsedPublicKey);

    impl Verifier {
        pub(super) fn new(point: &[u8; POINT_LEN]) -> Result<Self, KeyError> {
            ParsedPublicKey::new(&ECDSA_P521_SHA384_FIXED, point)
                .map(Self)
                .map_err(|_| KeyError::BadJwk("the point is not on the P-521 curve".into()))
        }

        pub(super) fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
            self.0.verify_sig(message, signature).is_ok()
        }
    }
}

/// The backend in use on this target (see the module docs).
#[cfg(not(target_vendor = "apple"))]
mod backend {
    pub(super) use super::awslc::{Signer, Verifier};
}

#[cfg(target_vendor = "apple")]
mod backend {
    use super::{FIELD_LEN, POINT_LEN, SIGNATURE_LEN};
    use crate::keys::KeyError;

    pub(super) struct Signer(super::rustcrypto::Signer);

    impl Signer {
        pub(super) fn new(
            scalar: &[u8; FIELD_LEN],
            _point: &[u8; POINT_LEN],
        ) -> Result<Self, KeyError> {
            super::rustcrypto::Signer::new(scalar).map(Self)
        }

        pub(super) fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], KeyError> {
            self.0.sign(message)
        }
    }

    pub(super) use super::rustcrypto::Verifier;
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::keys::{RecoveryPhrase, Seed, WalletKeys};
    use crate::tally::canonical::stable_stringify;

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
        assert_eq!(a, b);
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
        assert!(!text.contains(&URL_SAFE_NO_PAD.encode(&key.scalar[..])));
    }

    #[test]
    fn private_jwk_round_trips_and_checks_its_public_half() {
        let key = abandon_keys().tally_key().expect("tally key");
        let text = key.to_private_jwk();
        let jwk: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(stable_stringify(&jwk), text.as_str(), "sorted, compact");
        assert_eq!(jwk["key_ops"], serde_json::json!(["sign"]));
        let back = TallyKey::from_private_jwk(&jwk).expect("imports");
        assert_eq!(back, key);
        assert_eq!(back.public_key(), key.public_key());
        // d alone is enough …
        let mut bare = jwk.clone();
        if let Some(map) = bare.as_object_mut() {
            map.remove("x");
            map.remove("y");
        }
        assert_eq!(TallyKey::from_private_jwk(&bare).expect("d only"), key);
        // … but x/y of another key are refused.
        let other = WalletKeys::new(&Seed::from_bytes(&[5; 64]).expect("seed"), 0)
            .and_then(|k| k.tally_key())
            .expect("tally key");
        let mut mixed = jwk.clone();
        mixed["x"] = other.public_key().to_jwk()["x"].clone();
        mixed["y"] = other.public_key().to_jwk()["y"].clone();
        assert!(matches!(
            TallyKey::from_private_jwk(&mixed),
            Err(KeyError::BadJwk(_))
        ));
        let mut no_d = jwk.clone();
        no_d["d"] = Value::Null;
        assert!(matches!(
            TallyKey::from_private_jwk(&no_d),
            Err(KeyError::BadJwk(_))
        ));
        assert!(matches!(
            TallyKey::from_scalar_bytes(&[0; FIELD_LEN]),
            Err(KeyError::BadJwk(_))
        ));
        assert!(matches!(
            TallyKey::from_scalar_bytes(&[0xff; FIELD_LEN]),
            Err(KeyError::BadJwk(_))
        ));
        assert!(matches!(
            TallyKey::from_scalar_bytes(&[1; 65]),
            Err(KeyError::BadJwk(_))
        ));
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
        assert!(matches!(with("y", 7.into()), Err(KeyError::BadJwk(_))));
        // A point that is not on the curve.
        let y = good["y"].as_str().unwrap_or_default().replace('A', "B");
        assert!(matches!(with("y", y.into()), Err(KeyError::BadJwk(_))));
        assert!(matches!(
            TallyPublicKey::from_jwk(&Value::Null),
            Err(KeyError::BadJwk(_))
        ));
        assert!(matches!(
            TallyPublicKey::from_sec1_point(&[4; 10]),
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
        assert!(matches!(
            TallySignature::from_bytes(&[0xff; SIGNATURE_LEN]),
            Err(KeyError::BadSignature(_))
        ));
        assert!(matches!(
            TallySignature::from_base64url("not base64!"),
            Err(KeyError::BadSignature(_))
        ));
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
            // The pure-Rust backend agrees on MyCHIPs's own signature.
            let verifier = rustcrypto::Verifier::new(public.sec1_point()).expect("point");
            assert!(verifier.verify(message.as_bytes(), &signature.0), "{side}");
        }
    }

    /// The two backends produce and accept the same bytes: sign with each,
    /// verify with both (on Apple targets the two are the same code).
    #[test]
    fn both_backends_agree() {
        let key = abandon_keys().tally_key().expect("tally key");
        let point = key.public.sec1_point();
        let pure_signer = rustcrypto::Signer::new(&key.scalar).expect("p521 signer");
        let pure_verifier = rustcrypto::Verifier::new(point).expect("p521 verifier");
        let fast_signer = backend::Signer::new(&key.scalar, point).expect("backend signer");
        let fast_verifier = backend::Verifier::new(point).expect("backend verifier");
        for message in [&b""[..], b"chit", &[0u8; 1000]] {
            let by_pure = pure_signer.sign(message).expect("p521 signs");
            let by_fast = fast_signer.sign(message).expect("backend signs");
            assert!(
                fast_verifier.verify(message, &by_pure),
                "backend accepts p521"
            );
            assert!(
                pure_verifier.verify(message, &by_fast),
                "p521 accepts backend"
            );
            assert!(pure_verifier.verify(message, &by_pure));
            assert!(fast_verifier.verify(message, &by_fast));
            let mut tampered = by_fast;
            tampered[70] ^= 1;
            assert!(!pure_verifier.verify(message, &tampered));
            assert!(!fast_verifier.verify(message, &tampered));
            assert!(!fast_verifier.verify(b"other", &by_pure));
        }
        // Both draw a fresh nonce: two signatures of one message differ.
        assert_ne!(
            pure_signer.sign(b"chit").expect("signs"),
            pure_signer.sign(b"chit").expect("signs")
        );
        assert_ne!(
            fast_signer.sign(b"chit").expect("signs"),
            fast_signer.sign(b"chit").expect("signs")
        );
    }
}
