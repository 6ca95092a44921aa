//! A secret store in memory only: it forgets everything when dropped.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use zeroize::Zeroizing;

use super::{SecretStore, SecretStoreError, check_key};

/// Keeps secrets in this process's memory only and forgets them all when
/// dropped (values are zeroized). For tests and throw-away wallets; never
/// for a wallet a person relies on.
#[derive(Default)]
pub struct MemorySecretStore {
    secrets: Mutex<HashMap<String, Zeroizing<Vec<u8>>>>,
}

impl MemorySecretStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn secrets(&self) -> std::sync::MutexGuard<'_, HashMap<String, Zeroizing<Vec<u8>>>> {
        // A panic while holding the lock cannot leave the map half-changed.
        self.secrets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SecretStore for MemorySecretStore {
    fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>, SecretStoreError> {
        check_key(key)?;
        Ok(self.secrets().get(key).cloned())
    }

    fn set(&self, key: &str, secret: &[u8]) -> Result<(), SecretStoreError> {
        check_key(key)?;
        self.secrets()
            .insert(key.to_owned(), Zeroizing::new(secret.to_vec()));
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), SecretStoreError> {
        check_key(key)?;
        self.secrets().remove(key);
        Ok(())
    }

    fn name(&self) -> String {
        "in-memory secret store (forgets everything when Notch stops)".into()
    }
}

impl fmt::Debug for MemorySecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySecretStore")
            .field("entries", &self.secrets().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_replace_delete() {
        let store = MemorySecretStore::new();
        assert_eq!(store.get("w1"), Ok(None));
        store.set("w1", b"one").expect("set");
        store.set("w2", b"two").expect("set");
        assert_eq!(
            store.get("w1").expect("get").as_deref().map(Vec::as_slice),
            Some(&b"one"[..])
        );
        store.set("w1", b"uno").expect("replace");
        assert_eq!(
            store.get("w1").expect("get").as_deref().map(Vec::as_slice),
            Some(&b"uno"[..])
        );
        store.delete("w1").expect("delete");
        store.delete("w1").expect("deleting again is fine");
        assert_eq!(store.get("w1"), Ok(None));
        assert!(store.get("w2").expect("get").is_some());
        assert!(matches!(
            store.set("", b"x"),
            Err(SecretStoreError::BadKey { .. })
        ));
        let text = format!("{store:?}");
        assert!(!text.contains("two"), "{text}");
    }
}
