//! SLIP-10 key derivation for Ed25519 (hardened indexes only), written out
//! here because it is small: HMAC-SHA512 all the way down.
//!
//! - master: `I = HMAC-SHA512(key = "ed25519 seed", data = seed)`
//! - child `i` (hardened, `i >= 2^31`): `I = HMAC-SHA512(key = chain code,
//!   data = 0x00 || parent key || ser32(i))`
//!
//! In both, the left 32 bytes of `I` are the key and the right 32 the chain
//! code. Ed25519 has no public (non-hardened) derivation.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha512;
use zeroize::{Zeroize, Zeroizing};

use super::{KeyError, Seed};

/// The hardened bit of a derivation index.
pub const HARDENED: u32 = 0x8000_0000;

/// A derivation path made only of hardened indexes, e.g. `m/44'/20047'/0'`.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct DerivationPath(Vec<u32>);

impl DerivationPath {
    /// The path `m`.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// A path from indexes that are hardened here: `[44, 0]` is `m/44'/0'`.
    pub fn hardened(indexes: &[u32]) -> Result<Self, KeyError> {
        let mut path = Self::root();
        for &index in indexes {
            path = path.child(index)?;
        }
        Ok(path)
    }

    /// This path extended by the hardened index `index` (below 2^31).
    pub fn child(&self, index: u32) -> Result<Self, KeyError> {
        if index >= HARDENED {
            return Err(KeyError::IndexOutOfRange {
                index: u64::from(index),
            });
        }
        let mut indexes = self.0.clone();
        indexes.push(index | HARDENED);
        Ok(Self(indexes))
    }

    /// The indexes, with the hardened bit set.
    pub fn indexes(&self) -> &[u32] {
        &self.0
    }
}

impl fmt::Display for DerivationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("m")?;
        for index in &self.0 {
            write!(f, "/{}'", index & !HARDENED)?;
        }
        Ok(())
    }
}

impl fmt::Debug for DerivationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DerivationPath({self})")
    }
}

impl FromStr for DerivationPath {
    type Err = KeyError;

    /// Parses `m/44'/0'/1'`; `h` or `H` may stand for `'`. A component that
    /// is not hardened is refused: SLIP-10 Ed25519 has no such derivation.
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let bad = |reason: String| KeyError::BadPath {
            path: s.to_owned(),
            reason,
        };
        let mut parts = s.trim().split('/');
        if parts.next() != Some("m") {
            return Err(bad("it must start with \"m\"".into()));
        }
        let mut path = Self::root();
        for part in parts {
            let Some(digits) = part.strip_suffix(['\'', 'h', 'H']) else {
                return Err(match part.parse::<u32>() {
                    Ok(index) => KeyError::NotHardened {
                        path: s.to_owned(),
                        index,
                    },
                    Err(_) => bad(format!("{part:?} is not a number followed by '")),
                });
            };
            let index: u64 = digits
                .parse()
                .map_err(|_| bad(format!("{part:?} is not a number followed by '")))?;
            let index = u32::try_from(index)
                .ok()
                .filter(|i| *i < HARDENED)
                .ok_or(KeyError::IndexOutOfRange { index })?;
            path = path.child(index)?;
        }
        Ok(path)
    }
}

/// A SLIP-10 Ed25519 node: a 32-byte private key and its chain code. Both
/// are wiped when dropped; `Debug` shows only the public key.
#[derive(Clone)]
pub struct ExtendedKey {
    key: Zeroizing<[u8; 32]>,
    chain_code: Zeroizing<[u8; 32]>,
}

type HmacSha512 = Hmac<Sha512>;

fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> ExtendedKey {
    // HMAC takes keys of any length: `new_from_slice` cannot fail here.
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha512::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    let mut out = mac.finalize().into_bytes();
    let mut node = ExtendedKey {
        key: Zeroizing::new([0; 32]),
        chain_code: Zeroizing::new([0; 32]),
    };
    node.key.copy_from_slice(&out[..32]);
    node.chain_code.copy_from_slice(&out[32..]);
    out[..].zeroize();
    node
}

impl ExtendedKey {
    /// The master node of a seed.
    pub fn master(seed: &Seed) -> Self {
        hmac_sha512(b"ed25519 seed", &[seed.as_bytes()])
    }

    /// The child at `index`, which must carry the [`HARDENED`] bit.
    pub fn derive_child(&self, index: u32) -> Result<Self, KeyError> {
        if index & HARDENED == 0 {
            return Err(KeyError::NotHardened {
                path: format!("…/{index}"),
                index,
            });
        }
        Ok(hmac_sha512(
            &self.chain_code[..],
            &[&[0u8], &self.key[..], &index.to_be_bytes()],
        ))
    }

    /// The node at `path` below this one.
    pub fn derive_path(&self, path: &DerivationPath) -> Self {
        let mut node = self.clone();
        for &index in path.indexes() {
            // A `DerivationPath` holds hardened indexes only.
            node = hmac_sha512(
                &node.chain_code[..],
                &[&[0u8], &node.key[..], &index.to_be_bytes()],
            );
        }
        node
    }

    /// The Ed25519 private key (the 32-byte "seed" of RFC 8032).
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    pub fn chain_code(&self) -> &[u8; 32] {
        &self.chain_code
    }

    /// The Ed25519 signing key of this node (zeroized on drop).
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.key)
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.signing_key().verifying_key()
    }
}

impl fmt::Debug for ExtendedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let public: String = self
            .public_key()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        f.debug_struct("ExtendedKey")
            .field("public_key", &public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_default())
            .collect()
    }

    /// SLIP-0010 "Test vector 1 for ed25519": path, chain code, private key,
    /// public key (with SLIP-10's leading 00 byte).
    const VECTOR_1: &[(&str, &str, &str, &str)] = &[
        (
            "m",
            "90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
            "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
            "00a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed",
        ),
        (
            "m/0'",
            "8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
            "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
            "008c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c",
        ),
        (
            "m/0'/1'",
            "a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14",
            "b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2",
            "001932a5270f335bed617d5b935c80aedb1a35bd9fc1e31acafd5372c30f5c1187",
        ),
        (
            "m/0'/1'/2'",
            "2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c",
            "92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9",
            "00ae98736566d30ed0e9d2f4486a64bc95740d89c7db33f52121f8ea8f76ff0fc1",
        ),
        (
            "m/0'/1'/2'/2'",
            "8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc",
            "30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662",
            "008abae2d66361c879b900d204ad2cc4984fa2aa344dd7ddc46007329ac76c429c",
        ),
        (
            "m/0'/1'/2'/2'/1000000000'",
            "68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230",
            "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
            "003c24da049451555d51a7014a37337aa4e12d41e485abccfa46b47dfb2af54b7a",
        ),
    ];

    /// SLIP-0010 "Test vector 2 for ed25519" (chain code, private key).
    const VECTOR_2: &[(&str, &str, &str)] = &[
        (
            "m",
            "ef70a74db9c3a5af931b5fe73ed8e1a53464133654fd55e7a66f8570b8e33c3b",
            "171cb88b1b3c1db25add599712e36245d75bc65a1a5c9e18d76f9f2b1eab4012",
        ),
        (
            "m/0'/2147483647'/1'/2147483646'/2'",
            "5d70af781f3a37b829f0d060924d5e960bdc02e85423494afc0b1a41bbe196d4",
            "551d333177df541ad876a60ea71f00447931c0a9da16f227c11ea080d7391b8d",
        ),
    ];

    #[test]
    fn slip10_ed25519_test_vector_1() {
        let seed = Seed::from_bytes(&unhex("000102030405060708090a0b0c0d0e0f")).expect("seed");
        let master = ExtendedKey::master(&seed);
        for (path, chain_code, private, public) in VECTOR_1 {
            let path: DerivationPath = path.parse().expect("valid path");
            let node = master.derive_path(&path);
            assert_eq!(hex(node.chain_code()), *chain_code, "chain code at {path}");
            assert_eq!(hex(node.secret_bytes()), *private, "private key at {path}");
            assert_eq!(
                format!("00{}", hex(node.public_key().as_bytes())),
                *public,
                "at {path}"
            );
        }
        // Step by step gives the same as by path.
        let mut node = master.clone();
        for index in [0, 1, 2] {
            node = node.derive_child(index | HARDENED).expect("hardened");
        }
        assert_eq!(hex(node.secret_bytes()), VECTOR_1[3].2);
    }

    #[test]
    fn slip10_ed25519_test_vector_2() {
        let seed = Seed::from_bytes(&unhex(
            "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542",
        ))
        .expect("seed");
        let master = ExtendedKey::master(&seed);
        for (path, chain_code, private) in VECTOR_2 {
            let node = master.derive_path(&path.parse().expect("valid path"));
            assert_eq!(hex(node.chain_code()), *chain_code, "chain code at {path}");
            assert_eq!(hex(node.secret_bytes()), *private, "private key at {path}");
        }
    }

    #[test]
    fn only_hardened_derivation() {
        let seed = Seed::from_bytes(&[7; 32]).expect("seed");
        let master = ExtendedKey::master(&seed);
        assert!(matches!(
            master.derive_child(5),
            Err(KeyError::NotHardened { index: 5, .. })
        ));
        assert!(matches!(
            "m/44'/5".parse::<DerivationPath>(),
            Err(KeyError::NotHardened { index: 5, .. })
        ));
    }

    #[test]
    fn paths_parse_and_print() {
        let path: DerivationPath = "m/44'/20047h/0H".parse().expect("valid");
        assert_eq!(path.to_string(), "m/44'/20047'/0'");
        assert_eq!(
            path,
            DerivationPath::hardened(&[44, 20047, 0]).expect("valid")
        );
        assert_eq!(
            "m".parse::<DerivationPath>().expect("root"),
            DerivationPath::root()
        );
        for bad in ["", "44'/0'", "m/x'", "m//", "m/-1'"] {
            assert!(
                matches!(bad.parse::<DerivationPath>(), Err(KeyError::BadPath { .. })),
                "{bad:?} must be refused"
            );
        }
        assert!(matches!(
            "m/2147483648'".parse::<DerivationPath>(),
            Err(KeyError::IndexOutOfRange {
                index: 2_147_483_648
            })
        ));
        assert!(matches!(
            DerivationPath::root().child(HARDENED),
            Err(KeyError::IndexOutOfRange { .. })
        ));
    }

    #[test]
    fn debug_shows_no_secret() {
        let seed = Seed::from_bytes(&unhex("000102030405060708090a0b0c0d0e0f")).expect("seed");
        let text = format!("{:?}", ExtendedKey::master(&seed));
        assert!(text.contains("a4b2856b"), "{text}");
        assert!(
            !text.contains("2b4be7f1") && !text.contains("90046a93"),
            "{text}"
        );
    }
}
