//! The operating system's keystore, through keyring-core and the platform
//! store crate chosen per target in `Cargo.toml`:
//!
//! | target | store |
//! | --- | --- |
//! | Linux | freedesktop Secret Service over D-Bus (gnome-keyring, KWallet…), `zbus-secret-service-keyring-store` |
//! | macOS | login keychain, `apple-native-keyring-store` (`keychain`) |
//! | iOS | data-protection keychain, `apple-native-keyring-store` (`protected`) |
//! | Windows | Credential Manager, `windows-native-keyring-store` |
//! | Android and others | none: [`OsSecretStore::open`] says so; the host app implements [`SecretStore`] |
//!
//! If the store cannot be reached, [`OsSecretStore::open`] fails and says
//! what to do; it never falls back to anything else.

use std::fmt;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry, Error as KeyringError};
use zeroize::Zeroizing;

use super::{SecretStore, SecretStoreError, check_key};

/// The operating system's keystore. Every secret is an item of `service`
/// (`notch` unless chosen otherwise) named by its key.
pub struct OsSecretStore {
    service: String,
    /// Always `Some`, except while being dropped (see the `Drop` impl).
    store: Option<Arc<CredentialStore>>,
}

impl OsSecretStore {
    /// The service name Notch's items are stored under.
    pub const SERVICE: &'static str = "notch";

    /// Opens the OS keystore with service [`SERVICE`](Self::SERVICE).
    pub fn open() -> Result<Self, SecretStoreError> {
        Self::open_with_service(Self::SERVICE)
    }

    /// Opens the OS keystore, keeping items under `service` (tests use a
    /// service of their own so as not to touch real wallets).
    ///
    /// Fails with [`SecretStoreError::Unavailable`] if the keystore does not
    /// answer (e.g. no Secret Service on the D-Bus session), and with
    /// [`SecretStoreError::Unsupported`] where there is no OS store in this
    /// crate (Android).
    pub fn open_with_service(service: &str) -> Result<Self, SecretStoreError> {
        check_key(service)?;
        let store = off_thread(platform::open)??;
        let this = Self {
            service: service.to_owned(),
            store: Some(store),
        };
        // Reading an item that does not exist proves that the store answers.
        this.get("notch-probe").map_err(|e| match e {
            SecretStoreError::Failed { store, reason } => SecretStoreError::Unavailable {
                store,
                reason,
                what_to_do: platform::WHAT_TO_DO.into(),
            },
            other => other,
        })?;
        Ok(this)
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    fn entry(&self, key: &str) -> Result<Entry, SecretStoreError> {
        check_key(key)?;
        let modifiers = platform::modifiers(key);
        let modifiers: Option<std::collections::HashMap<&str, &str>> = modifiers
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (*k, v.as_str())).collect());
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| SecretStoreError::Failed {
                store: platform::NAME.into(),
                reason: "the store is closed".into(),
            })?;
        store
            .build(&self.service, key, modifiers.as_ref())
            .map_err(map_error)
    }
}

impl Drop for OsSecretStore {
    /// Drops the platform store on a thread of its own too: closing the
    /// Linux store's D-Bus proxies blocks on a runtime (see `off_thread`).
    fn drop(&mut self) {
        let slot = std::sync::Mutex::new(self.store.take());
        let spawned = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("notch-secret-store-close".into())
                .spawn_scoped(scope, || {
                    drop(slot.lock().ok().and_then(|mut store| store.take()))
                })
                .is_ok()
        });
        if !spawned {
            // No thread to close it on: leak the connection rather than risk
            // a panic inside the caller's runtime.
            if let Some(store) = slot.into_inner().ok().flatten() {
                std::mem::forget(store);
            }
        }
    }
}

impl SecretStore for OsSecretStore {
    fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, SecretStoreError> {
        let entry = self.entry(key)?;
        match off_thread(move || entry.get_secret())? {
            Ok(secret) => Ok(Some(Zeroizing::new(secret))),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(map_error(e)),
        }
    }

    fn set(&self, key: &str, secret: &[u8]) -> Result<(), SecretStoreError> {
        let entry = self.entry(key)?;
        off_thread(move || entry.set_secret(secret))?.map_err(map_error)
    }

    fn delete(&self, key: &str) -> Result<(), SecretStoreError> {
        let entry = self.entry(key)?;
        match off_thread(move || entry.delete_credential())? {
            Ok(()) | Err(KeyringError::NoEntry) => Ok(()),
            Err(e) => Err(map_error(e)),
        }
    }

    fn name(&self) -> String {
        platform::NAME.into()
    }
}

impl fmt::Debug for OsSecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OsSecretStore")
            .field("store", &platform::NAME)
            .field("service", &self.service)
            .finish()
    }
}

/// Runs a call of the platform store on a thread of its own.
///
/// The Linux store blocks on a tokio runtime of its own, which panics when
/// called from a thread that is already inside a runtime (as a wallet's
/// async code is); a fresh thread has no runtime. It also turns a panic in
/// the platform store into an error instead of taking the wallet down.
fn off_thread<T: Send>(call: impl FnOnce() -> T + Send) -> Result<T, SecretStoreError> {
    let failed = |reason: String| SecretStoreError::Failed {
        store: platform::NAME.into(),
        reason,
    };
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("notch-secret-store".into())
            .spawn_scoped(scope, call)
            .map_err(|e| failed(format!("could not start a thread: {e}")))?;
        handle.join().map_err(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown reason".into());
            failed(format!("it crashed ({message})"))
        })
    })
}

fn map_error(error: KeyringError) -> SecretStoreError {
    let store = platform::NAME.to_owned();
    match error {
        KeyringError::NoStorageAccess(e) => SecretStoreError::AccessDenied {
            store,
            reason: e.to_string(),
        },
        KeyringError::PlatformFailure(e) => SecretStoreError::Failed {
            store,
            reason: e.to_string(),
        },
        // Never put the stored bytes into a message.
        KeyringError::BadEncoding(_) | KeyringError::BadDataFormat(..) => {
            SecretStoreError::Failed {
                store,
                reason: "the stored item is not in the format Notch expects".into(),
            }
        }
        KeyringError::Ambiguous(entries) => SecretStoreError::Failed {
            store,
            reason: format!(
                "{} stored items match this name; remove the duplicates with the keystore's own tool",
                entries.len()
            ),
        },
        other => SecretStoreError::Failed {
            store,
            reason: other.to_string(),
        },
    }
}

#[cfg(target_os = "linux")]
mod platform {
    use super::*;

    pub const NAME: &str = "Secret Service (D-Bus)";
    pub const WHAT_TO_DO: &str = "Start a Secret Service such as gnome-keyring (e.g. `gnome-keyring-daemon --unlock --components=secrets` in your D-Bus session), or run Notch under `dbus-run-session`";

    pub fn open() -> Result<Arc<CredentialStore>, SecretStoreError> {
        match zbus_secret_service_keyring_store::Store::new() {
            Ok(store) => Ok(store),
            Err(e) => Err(SecretStoreError::Unavailable {
                store: NAME.into(),
                reason: e.to_string(),
                what_to_do: WHAT_TO_DO.into(),
            }),
        }
    }

    /// A label that tells a person browsing the keyring what the item is.
    pub fn modifiers(key: &str) -> Option<Vec<(&'static str, String)>> {
        Some(vec![("label", format!("Notch wallet secret ({key})"))])
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use super::*;

    pub const NAME: &str = "macOS Keychain";
    pub const WHAT_TO_DO: &str =
        "Check that your login keychain exists and is unlocked (Keychain Access)";

    pub fn open() -> Result<Arc<CredentialStore>, SecretStoreError> {
        match apple_native_keyring_store::keychain::Store::new() {
            Ok(store) => Ok(store),
            Err(e) => Err(SecretStoreError::Unavailable {
                store: NAME.into(),
                reason: e.to_string(),
                what_to_do: WHAT_TO_DO.into(),
            }),
        }
    }

    pub fn modifiers(_key: &str) -> Option<Vec<(&'static str, String)>> {
        None
    }
}

#[cfg(target_os = "ios")]
mod platform {
    use super::*;

    pub const NAME: &str = "iOS Keychain";
    pub const WHAT_TO_DO: &str = "Check the app's keychain entitlements";

    pub fn open() -> Result<Arc<CredentialStore>, SecretStoreError> {
        match apple_native_keyring_store::protected::Store::new() {
            Ok(store) => Ok(store),
            Err(e) => Err(SecretStoreError::Unavailable {
                store: NAME.into(),
                reason: e.to_string(),
                what_to_do: WHAT_TO_DO.into(),
            }),
        }
    }

    pub fn modifiers(_key: &str) -> Option<Vec<(&'static str, String)>> {
        None
    }
}

#[cfg(target_os = "windows")]
mod platform {
    use super::*;

    pub const NAME: &str = "Windows Credential Manager";
    pub const WHAT_TO_DO: &str = "Check that the Credential Manager service is running";

    pub fn open() -> Result<Arc<CredentialStore>, SecretStoreError> {
        match windows_native_keyring_store::Store::new() {
            Ok(store) => Ok(store),
            Err(e) => Err(SecretStoreError::Unavailable {
                store: NAME.into(),
                reason: e.to_string(),
                what_to_do: WHAT_TO_DO.into(),
            }),
        }
    }

    pub fn modifiers(_key: &str) -> Option<Vec<(&'static str, String)>> {
        None
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "ios",
    target_os = "windows"
)))]
mod platform {
    use super::*;

    pub const NAME: &str = "OS keystore";
    pub const WHAT_TO_DO: &str =
        "On Android the app supplies its own secret store (Android Keystore) to the wallet";

    pub fn open() -> Result<Arc<CredentialStore>, SecretStoreError> {
        Err(SecretStoreError::Unsupported(format!(
            "{} has no keystore here. {WHAT_TO_DO}",
            std::env::consts::OS
        )))
    }

    pub fn modifiers(_key: &str) -> Option<Vec<(&'static str, String)>> {
        None
    }
}
