//! The secret store as a foreign trait: the host app keeps the wallet's
//! secret where it wants (the iOS Keychain, an Android Keystore backed
//! store, a test's dictionary). [`HostStore`] adapts it to the core's
//! [`SecretStore`](notch_core::secrets::SecretStore); when the host gives
//! none, the core's OS keystore is used.

use std::sync::Arc;

use notch_core::secrets::{self, SecretStore};
use zeroize::Zeroizing;

/// Why the host's secret store failed. Thrown by the host's implementation
/// of [`HostSecretStore`]; the wallet reports it in its own error (for
/// example `OpenError.SecretStore`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum SecretStoreError {
    /// The store cannot be reached now (locked device, no keystore).
    #[error("{reason}")]
    Unavailable { reason: String },
    /// The store or the person refused access.
    #[error("{reason}")]
    AccessDenied { reason: String },
    /// Any other failure.
    #[error("{reason}")]
    Failed { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for SecretStoreError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed {
            reason: format!(
                "the app's secret store threw an unexpected error: {}",
                e.reason
            ),
        }
    }
}

/// Where the host keeps secrets, by name. The wallet keeps one secret (its
/// seed, a few dozen bytes) under its wallet id. Calls come from a worker
/// thread of the library and may block (to ask the person to unlock).
#[uniffi::export(foreign)]
pub trait HostSecretStore: Send + Sync {
    /// The secret named `name`, or null if there is none.
    fn get(&self, name: String) -> Result<Option<Vec<u8>>, SecretStoreError>;
    /// Stores `secret` under `name`, replacing any secret there.
    fn set(&self, name: String, secret: Vec<u8>) -> Result<(), SecretStoreError>;
    /// Removes the secret named `name`; a missing one is not an error.
    fn delete(&self, name: String) -> Result<(), SecretStoreError>;
    /// A name the person recognizes, for messages ("Android Keystore").
    fn description(&self) -> String;
}

/// The host's store as the core's [`SecretStore`].
pub(crate) struct HostStore(pub(crate) Arc<dyn HostSecretStore>);

impl HostStore {
    fn convert(&self, e: SecretStoreError) -> secrets::SecretStoreError {
        let store = self.0.description();
        match e {
            SecretStoreError::Unavailable { reason } => secrets::SecretStoreError::Unavailable {
                store,
                reason,
                what_to_do: "Unlock the device, then try again".into(),
            },
            SecretStoreError::AccessDenied { reason } => {
                secrets::SecretStoreError::AccessDenied { store, reason }
            }
            SecretStoreError::Failed { reason } => {
                secrets::SecretStoreError::Failed { store, reason }
            }
        }
    }
}

impl SecretStore for HostStore {
    fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, secrets::SecretStoreError> {
        secrets::check_key(key)?;
        self.0
            .get(key.to_owned())
            .map(|v| v.map(Zeroizing::new))
            .map_err(|e| self.convert(e))
    }

    fn set(&self, key: &str, secret: &[u8]) -> Result<(), secrets::SecretStoreError> {
        secrets::check_key(key)?;
        self.0
            .set(key.to_owned(), secret.to_vec())
            .map_err(|e| self.convert(e))
    }

    fn delete(&self, key: &str) -> Result<(), secrets::SecretStoreError> {
        secrets::check_key(key)?;
        self.0.delete(key.to_owned()).map_err(|e| self.convert(e))
    }

    fn name(&self) -> String {
        self.0.description()
    }
}

/// The store a wallet uses: the host's, or the core's OS keystore.
pub(crate) fn choose(
    host: Option<Arc<dyn HostSecretStore>>,
) -> Result<Arc<dyn SecretStore>, secrets::SecretStoreError> {
    Ok(match host {
        Some(host) => Arc::new(HostStore(host)),
        None => Arc::new(secrets::OsSecretStore::open()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Host(Mutex<Vec<String>>);

    impl HostSecretStore for Host {
        fn get(&self, name: String) -> Result<Option<Vec<u8>>, SecretStoreError> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(name);
            Err(SecretStoreError::AccessDenied {
                reason: "locked".into(),
            })
        }
        fn set(&self, _: String, _: Vec<u8>) -> Result<(), SecretStoreError> {
            Ok(())
        }
        fn delete(&self, _: String) -> Result<(), SecretStoreError> {
            Ok(())
        }
        fn description(&self) -> String {
            "test host".into()
        }
    }

    #[test]
    fn the_host_store_gets_checked_keys_and_its_errors_name_it() {
        let host = Arc::new(Host::default());
        let store = HostStore(host.clone());
        assert!(matches!(
            store.get("has space"),
            Err(secrets::SecretStoreError::BadKey { .. })
        ));
        let err = store.get("wallet-1").expect_err("refused");
        assert!(err.to_string().contains("test host") && err.to_string().contains("locked"));
        assert_eq!(
            *host.0.lock().unwrap_or_else(|p| p.into_inner()),
            vec!["wallet-1".to_owned()]
        );
    }
}
