//! The keys of one wallet account, all derived from its seed.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::{
    AgentKey, COIN_TYPE, DerivationPath, ExtendedKey, KeyError, PURPOSE, Seed, TallyKey,
    WalletSecret,
};

/// Which chain of token keys: fresh receive addresses, or change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressChain {
    /// `…/0'/<index>'`: addresses given out to receive payments.
    Receive,
    /// `…/1'/<index>'`: addresses the wallet pays its own change to.
    Change,
}

impl AddressChain {
    /// The path component of the chain (0 or 1, hardened in the path).
    pub fn number(self) -> u32 {
        match self {
            AddressChain::Receive => 0,
            AddressChain::Change => 1,
        }
    }

    pub fn from_number(number: u32) -> Option<Self> {
        match number {
            0 => Some(AddressChain::Receive),
            1 => Some(AddressChain::Change),
            _ => None,
        }
    }
}

/// Path component below the account for the peer agent key.
const AGENT_BRANCH: u32 = 2;
/// Path component below the account for the tally key's SLIP-10 input.
const TALLY_BRANCH: u32 = 3;

/// The Ed25519 key of one token address.
pub struct TokenKey {
    chain: AddressChain,
    index: u32,
    path: DerivationPath,
    signing: SigningKey,
}

impl TokenKey {
    pub fn chain(&self) -> AddressChain {
        self.chain
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn path(&self) -> &DerivationPath {
        &self.path
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The signing key, for the transaction builder (zeroized on drop).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("path", &self.path.to_string())
            .field("public_key", &hex(self.public_key().as_bytes()))
            .finish_non_exhaustive()
    }
}

/// Every key of one account of a wallet: token keys, the peer agent key and
/// the tally key. Holds the account's SLIP-10 node (secret, zeroized on
/// drop); cheap to clone.
#[derive(Clone)]
pub struct WalletKeys {
    account: u32,
    account_node: ExtendedKey,
}

impl WalletKeys {
    /// The keys of `account` (usually 0) of a seed.
    pub fn new(seed: &Seed, account: u32) -> Result<Self, KeyError> {
        let path = Self::account_path(account)?;
        Ok(Self {
            account,
            account_node: ExtendedKey::master(seed).derive_path(&path),
        })
    }

    /// The keys of `account` of a stored wallet secret.
    pub fn from_secret(secret: &WalletSecret, account: u32) -> Result<Self, KeyError> {
        Self::new(&secret.seed(), account)
    }

    pub fn account(&self) -> u32 {
        self.account
    }

    /// `m/44'/20047'/<account>'`.
    pub fn account_path(account: u32) -> Result<DerivationPath, KeyError> {
        DerivationPath::hardened(&[PURPOSE, COIN_TYPE])?.child(account)
    }

    /// `m/44'/20047'/<account>'/<chain>'/<index>'`.
    pub fn token_path(&self, chain: AddressChain, index: u32) -> Result<DerivationPath, KeyError> {
        Self::account_path(self.account)?
            .child(chain.number())?
            .child(index)
    }

    /// The key of token address `index` on `chain`; `index` must be below 2^31.
    pub fn token_key(&self, chain: AddressChain, index: u32) -> Result<TokenKey, KeyError> {
        let path = self.token_path(chain, index)?;
        let below = DerivationPath::hardened(&[chain.number(), index])?;
        let signing = self.account_node.derive_path(&below).signing_key();
        Ok(TokenKey {
            chain,
            index,
            path,
            signing,
        })
    }

    /// `m/44'/20047'/<account>'/2'/0'`: the peer agent key.
    pub fn agent_path(&self) -> Result<DerivationPath, KeyError> {
        Self::account_path(self.account)?
            .child(AGENT_BRANCH)?
            .child(0)
    }

    /// The peer agent key (Ed25519; X25519 for Noise).
    pub fn agent_key(&self) -> Result<AgentKey, KeyError> {
        let below = DerivationPath::hardened(&[AGENT_BRANCH, 0])?;
        Ok(AgentKey::new(
            self.account_node.derive_path(&below).signing_key(),
        ))
    }

    /// `m/44'/20047'/<account>'/3'/0'`: the SLIP-10 node the tally key is
    /// made from (see [`TallyKey::from_node`]).
    pub fn tally_path(&self) -> Result<DerivationPath, KeyError> {
        Self::account_path(self.account)?
            .child(TALLY_BRANCH)?
            .child(0)
    }

    /// The tally signing key (ECDSA P-521).
    pub fn tally_key(&self) -> Result<TallyKey, KeyError> {
        let below = DerivationPath::hardened(&[TALLY_BRANCH, 0])?;
        TallyKey::from_node(&self.account_node.derive_path(&below))
    }
}

impl fmt::Debug for WalletKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalletKeys")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::Verifier;

    use super::*;
    use crate::keys::RecoveryPhrase;

    fn keys() -> WalletKeys {
        let phrase = RecoveryPhrase::parse(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        )
        .expect("valid phrase");
        WalletKeys::new(&phrase.to_seed(""), 0).expect("account 0")
    }

    #[test]
    fn token_keys_follow_the_documented_paths() {
        let keys = keys();
        let receive = keys.token_key(AddressChain::Receive, 7).expect("index 7");
        assert_eq!(receive.path().to_string(), "m/44'/20047'/0'/0'/7'");
        let change = keys.token_key(AddressChain::Change, 7).expect("index 7");
        assert_eq!(change.path().to_string(), "m/44'/20047'/0'/1'/7'");
        assert_ne!(receive.public_key(), change.public_key());

        // The same key as deriving the full path from the master node.
        let phrase = RecoveryPhrase::parse(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        )
        .expect("valid phrase");
        let master = ExtendedKey::master(&phrase.to_seed(""));
        assert_eq!(
            master.derive_path(receive.path()).public_key(),
            receive.public_key()
        );

        let signature = receive.sign(b"spend");
        assert!(receive.public_key().verify(b"spend", &signature).is_ok());
    }

    #[test]
    fn keys_are_recoverable_and_distinct_per_account() {
        let a = keys();
        let b = keys();
        let key = |k: &WalletKeys| {
            k.token_key(AddressChain::Receive, 0)
                .map(|k| k.public_key())
        };
        assert_eq!(key(&a), key(&b));
        let other_account = WalletKeys::new(
            &RecoveryPhrase::parse(
                "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
            )
            .expect("valid phrase")
            .to_seed(""),
            1,
        )
        .expect("account 1");
        assert_ne!(key(&a), key(&other_account));
        let agent = |k: &WalletKeys| k.agent_key().map(|k| k.public_key());
        assert_eq!(agent(&a), agent(&b));
        assert_ne!(agent(&a), agent(&other_account));
        assert_eq!(
            a.agent_path().map(|p| p.to_string()),
            Ok("m/44'/20047'/0'/2'/0'".into())
        );
        assert_eq!(
            a.tally_path().map(|p| p.to_string()),
            Ok("m/44'/20047'/0'/3'/0'".into())
        );
    }

    #[test]
    fn index_limits() {
        let keys = keys();
        assert!(keys.token_key(AddressChain::Change, HARDENED - 1).is_ok());
        assert!(matches!(
            keys.token_key(AddressChain::Receive, HARDENED),
            Err(KeyError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            WalletKeys::new(&Seed::from_bytes(&[1; 64]).expect("seed"), HARDENED),
            Err(KeyError::IndexOutOfRange { .. })
        ));
        assert_eq!(AddressChain::from_number(1), Some(AddressChain::Change));
        assert_eq!(AddressChain::from_number(2), None);
    }

    #[test]
    fn debug_shows_no_secret() {
        let keys = keys();
        let token = keys.token_key(AddressChain::Receive, 0).expect("index 0");
        let secret = hex(token.signing_key().as_bytes());
        let text = format!("{keys:?} {token:?}");
        assert!(!text.contains(&secret), "{text}");
        assert!(text.contains(&hex(token.public_key().as_bytes())), "{text}");
    }

    use super::super::HARDENED;
}
