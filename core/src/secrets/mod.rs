//! Where the wallet keeps its secrets: never on disk in plain text, only in a
//! [`SecretStore`].
//!
//! - [`OsSecretStore`]: the operating system's keystore through keyring-core
//!   (Secret Service on Linux, Keychain on macOS and iOS, Credential Manager
//!   on Windows). On Android the host app implements [`SecretStore`] itself
//!   over the Android Keystore (a uniffi foreign trait); there is no Android
//!   store in this crate.
//! - [`MemorySecretStore`]: keeps secrets in memory only and forgets them
//!   all when dropped. For tests.
//!
//! A wallet keeps one secret, its [`WalletSecret`](crate::keys::WalletSecret)
//! bytes, under its wallet id as the key (service `notch` in the OS store).

mod memory;
mod os;

pub use memory::MemorySecretStore;
pub use os::OsSecretStore;

use zeroize::Zeroizing;

/// A place to keep secrets, by key. Object-safe and `Send + Sync`, so that a
/// mobile host can implement it (uniffi foreign trait) and a wallet can hold
/// an `Arc<dyn SecretStore>`.
///
/// Calls may block (the OS store talks to a daemon or asks the person to
/// unlock); async code should call them from a blocking task.
pub trait SecretStore: Send + Sync {
    /// The secret under `key`, or `None` if there is none.
    fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, SecretStoreError>;
    /// Stores `secret` under `key`, replacing any secret there.
    fn set(&self, key: &str, secret: &[u8]) -> Result<(), SecretStoreError>;
    /// Removes the secret under `key`; removing a missing secret is not an
    /// error.
    fn delete(&self, key: &str) -> Result<(), SecretStoreError>;
    /// A name a person recognizes, for messages ("Secret Service", …).
    fn name(&self) -> String;
}

/// Why the secret store failed, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretStoreError {
    /// The store cannot be reached at all (no daemon, no session bus…).
    #[error("the {store} cannot be reached: {reason}. {what_to_do}")]
    Unavailable {
        store: String,
        reason: String,
        what_to_do: String,
    },
    /// There is no OS store this build can use on this platform.
    #[error("there is no OS secret store for this platform in notch-core: {0}")]
    Unsupported(String),
    /// The store refused access (locked, or the person said no).
    #[error(
        "Notch may not use the {store}: {reason}. Unlock it or allow Notch access, then try again"
    )]
    AccessDenied { store: String, reason: String },
    /// A key the store cannot hold (empty, too long, bad characters).
    #[error("{key:?} cannot be used as a secret's name: {reason}")]
    BadKey { key: String, reason: String },
    /// Any other failure of the store.
    #[error("the {store} failed: {reason}")]
    Failed { store: String, reason: String },
}

/// Longest key accepted, in bytes (well inside every platform's limit).
pub const MAX_KEY_LEN: usize = 128;

/// Checks a key the same way in every store, so a key that works in tests
/// works in the OS store: 1 to 128 bytes of printable ASCII other than
/// space.
pub fn check_key(key: &str) -> Result<(), SecretStoreError> {
    let bad = |reason: &str| SecretStoreError::BadKey {
        key: key.to_owned(),
        reason: reason.into(),
    };
    if key.is_empty() {
        return Err(bad("it is empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(bad("it is longer than 128 bytes"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "only printable ASCII characters without spaces are allowed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(check_key("wallet-0f3a").is_ok());
        for bad in ["", "has space", "naïve", &"x".repeat(129)] {
            assert!(
                matches!(check_key(bad), Err(SecretStoreError::BadKey { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_trait_is_object_safe() {
        let store: std::sync::Arc<dyn SecretStore> = std::sync::Arc::new(MemorySecretStore::new());
        assert!(store.name().contains("forgets"));
    }
}
