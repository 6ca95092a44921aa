//! The peer agent key: an Ed25519 key that identifies this wallet's agent to
//! its tally partners, used as an X25519 static key for Noise.
//!
//! The conversion is the standard birational map: the X25519 public key is
//! the Montgomery form of the Ed25519 public point, and the X25519 secret is
//! the first half of SHA-512 of the Ed25519 secret (the scalar Ed25519 signs
//! with, before clamping; X25519 clamps it). So
//! `x25519(secret, basepoint) == to_montgomery(ed25519 public key)`.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

/// The peer agent key. The Ed25519 secret is zeroized on drop.
pub struct AgentKey {
    signing: SigningKey,
}

impl AgentKey {
    pub(super) fn new(signing: SigningKey) -> Self {
        Self { signing }
    }

    /// The Ed25519 public key (the agent's identity).
    pub fn public_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }

    /// The X25519 public key for Noise (Montgomery form of the public key).
    pub fn x25519_public(&self) -> [u8; 32] {
        self.public_key().to_montgomery().to_bytes()
    }

    /// The X25519 static secret for Noise (zeroized on drop).
    pub fn x25519_secret(&self) -> StaticSecret {
        let scalar = Zeroizing::new(self.signing.to_scalar_bytes());
        StaticSecret::from(*scalar)
    }

    /// The X25519 secret as raw bytes, as Noise libraries (snow) take it.
    pub fn x25519_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.x25519_secret().to_bytes())
    }
}

/// Converts a partner's Ed25519 agent public key to the X25519 key that its
/// Noise handshake uses. `None` if the bytes are not a valid Ed25519 point.
pub fn ed25519_public_to_x25519(public: &[u8; 32]) -> Option<[u8; 32]> {
    VerifyingKey::from_bytes(public)
        .ok()
        .map(|key| key.to_montgomery().to_bytes())
}

impl fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let public: String = self
            .public_key()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        f.debug_struct("AgentKey")
            .field("public_key", &public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::Verifier;
    use x25519_dalek::PublicKey;

    use super::*;

    #[test]
    fn x25519_secret_matches_converted_public_key() {
        for byte in [0u8, 1, 42, 255] {
            let agent = AgentKey::new(SigningKey::from_bytes(&[byte; 32]));
            let from_secret = PublicKey::from(&agent.x25519_secret());
            assert_eq!(from_secret.to_bytes(), agent.x25519_public());
            assert_eq!(
                ed25519_public_to_x25519(agent.public_key().as_bytes()),
                Some(agent.x25519_public())
            );
        }
    }

    #[test]
    fn two_agents_agree_on_a_shared_secret() {
        let alice = AgentKey::new(SigningKey::from_bytes(&[3; 32]));
        let bob = AgentKey::new(SigningKey::from_bytes(&[4; 32]));
        // Each side knows only the other's Ed25519 public key.
        let bob_x = ed25519_public_to_x25519(bob.public_key().as_bytes()).expect("valid point");
        let alice_x = ed25519_public_to_x25519(alice.public_key().as_bytes()).expect("valid point");
        let ab = alice
            .x25519_secret()
            .diffie_hellman(&PublicKey::from(bob_x));
        let ba = bob
            .x25519_secret()
            .diffie_hellman(&PublicKey::from(alice_x));
        assert_eq!(ab.as_bytes(), ba.as_bytes());
    }

    #[test]
    fn signs_and_hides_its_secret() {
        let agent = AgentKey::new(SigningKey::from_bytes(&[9; 32]));
        let signature = agent.sign(b"hello");
        assert!(agent.public_key().verify(b"hello", &signature).is_ok());
        let text = format!("{agent:?}");
        assert!(!text.contains("0909"), "{text}");
        assert_eq!(agent.x25519_secret_bytes().len(), 32);
    }
}
