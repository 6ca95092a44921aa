//! The crypto behind snow: X25519 from aws-lc-rs where it builds (its assembly is about
//! twice the speed of x25519-dalek's ladder here, and a Noise IK handshake is ten X25519
//! operations), everything else from snow's default resolver. Apple targets, where nothing
//! may compile C, keep snow's default throughout.

use snow::params::NoiseParams;
use snow::{Builder, resolvers::CryptoResolver};

/// A snow builder for `params` with Notch's resolver (what the peer module uses; public for
/// the benchmark).
pub fn noise_builder<'a>(params: NoiseParams) -> Builder<'a> {
    Builder::with_resolver(params, resolver())
}

#[cfg(target_vendor = "apple")]
fn resolver() -> Box<dyn CryptoResolver + Send> {
    Box::new(snow::resolvers::DefaultResolver)
}

#[cfg(not(target_vendor = "apple"))]
fn resolver() -> Box<dyn CryptoResolver + Send> {
    Box::new(snow::resolvers::FallbackResolver::new(
        Box::new(aws::AwsX25519Resolver),
        Box::new(snow::resolvers::DefaultResolver),
    ))
}

#[cfg(not(target_vendor = "apple"))]
mod aws {
    use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
    use snow::params::{CipherChoice, DHChoice, HashChoice};
    use snow::resolvers::CryptoResolver;
    use snow::types::{Cipher, Dh, Hash, Random};
    use zeroize::Zeroize;

    pub(super) struct AwsX25519Resolver;

    impl CryptoResolver for AwsX25519Resolver {
        fn resolve_rng(&self) -> Option<Box<dyn Random>> {
            None
        }
        fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
            match choice {
                DHChoice::Curve25519 => Some(Box::new(AwsX25519::default())),
                _ => None,
            }
        }
        fn resolve_hash(&self, _: &HashChoice) -> Option<Box<dyn Hash>> {
            None
        }
        fn resolve_cipher(&self, _: &CipherChoice) -> Option<Box<dyn Cipher>> {
            None
        }
    }

    /// An X25519 key pair. The raw private key is kept because snow asks for it back
    /// (`privkey`); it is wiped on drop.
    #[derive(Default)]
    struct AwsX25519 {
        secret: [u8; 32],
        public: [u8; 32],
        key: Option<PrivateKey>,
    }

    impl Drop for AwsX25519 {
        fn drop(&mut self) {
            self.secret.zeroize();
        }
    }

    impl Dh for AwsX25519 {
        fn name(&self) -> &'static str {
            "25519"
        }
        fn pub_len(&self) -> usize {
            32
        }
        fn priv_len(&self) -> usize {
            32
        }
        fn set(&mut self, privkey: &[u8]) {
            self.key = None;
            self.public = [0; 32];
            let Ok(bytes) = <[u8; 32]>::try_from(privkey) else {
                return; // snow only passes priv_len() bytes; dh() then fails
            };
            self.secret = bytes;
            let Ok(key) = PrivateKey::from_private_key(&X25519, &self.secret) else {
                return;
            };
            if let Ok(public) = key.compute_public_key()
                && let Ok(public) = <[u8; 32]>::try_from(public.as_ref())
            {
                self.public = public;
                self.key = Some(key);
            }
        }
        fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
            let mut bytes = [0u8; 32];
            rng.try_fill_bytes(&mut bytes)?;
            self.set(&bytes);
            bytes.zeroize();
            if self.key.is_some() {
                Ok(())
            } else {
                Err(snow::Error::Dh)
            }
        }
        fn pubkey(&self) -> &[u8] {
            &self.public
        }
        fn privkey(&self) -> &[u8] {
            &self.secret
        }
        fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
            let key = self.key.as_ref().ok_or(snow::Error::Dh)?;
            // snow passes its key buffers whole (MAXDHLEN, room for X448): the key is the
            // first 32 bytes.
            let pubkey = pubkey.get(..32).ok_or(snow::Error::Dh)?;
            if out.len() < 32 {
                return Err(snow::Error::Dh);
            }
            // aws-lc refuses a shared secret of all zeros (a low-order public key), as
            // libsodium, under MyCHIPs's noise-protocol, does.
            agreement::agree(
                key,
                UnparsedPublicKey::new(&X25519, pubkey),
                snow::Error::Dh,
                |shared| {
                    out[..32].copy_from_slice(shared);
                    Ok(())
                },
            )
        }
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used)] // a failed assumption should fail the test loudly
    mod tests {
        use super::*;

        /// The same public keys and shared secrets as snow's default (x25519-dalek).
        #[test]
        fn agrees_with_snows_default_x25519() {
            let default = snow::resolvers::DefaultResolver;
            for seed in 0..16u8 {
                let (a, b) = ([seed; 32], [seed.wrapping_mul(7).wrapping_add(3); 32]);
                let mut ours_a = AwsX25519::default();
                ours_a.set(&a);
                let mut theirs_a = default.resolve_dh(&DHChoice::Curve25519).unwrap();
                theirs_a.set(&a);
                let mut theirs_b = default.resolve_dh(&DHChoice::Curve25519).unwrap();
                theirs_b.set(&b);
                assert_eq!(ours_a.pubkey(), theirs_a.pubkey());
                let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
                // As snow calls it: a 56-byte key buffer.
                let mut buffer = [0u8; 56];
                buffer[..32].copy_from_slice(theirs_b.pubkey());
                ours_a.dh(&buffer, &mut x).unwrap();
                theirs_a.dh(theirs_b.pubkey(), &mut y).unwrap();
                assert_eq!(x, y);
                assert_eq!(ours_a.privkey(), &a);
            }
        }

        #[test]
        fn a_low_order_public_key_is_refused() {
            let mut ours = AwsX25519::default();
            ours.set(&[5; 32]);
            let mut out = [0u8; 32];
            assert!(ours.dh(&[0u8; 32], &mut out).is_err());
            let mut one = [0u8; 32];
            one[0] = 1;
            assert!(ours.dh(&one, &mut out).is_err());
        }
    }
}
