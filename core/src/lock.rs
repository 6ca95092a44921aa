//! The wallet's lock passphrase: what a shell asks for before it shows the
//! recovery phrase again, and to unlock after it locked itself when idle.
//!
//! The passphrase guards the screen, not the keys: the seed stays in the OS
//! keystore either way (it is not encrypted with this passphrase, so
//! forgetting it never loses money: restoring from the recovery phrase
//! always works). Only an Argon2id hash of it is stored, in the wallet's
//! database; wrong guesses are slowed down by the hash's cost and by a
//! growing wait after a few misses. Whether the shell is locked right now is
//! the shell's business (the desktop app and a phone lock differently).

use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::context::{Inner, lock};
use crate::keys::{KeyError, RecoveryPhrase, WalletSecret};
use crate::secrets::SecretStoreError;
use crate::store::StoreError;

/// The shortest lock passphrase accepted, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 8;
/// The idle time after which a shell locks, unless the person set another.
pub const DEFAULT_IDLE_MINUTES: u32 = 5;
/// The longest idle time that can be set (a day).
pub const MAX_IDLE_MINUTES: u32 = 24 * 60;

const HASH_SETTING: &str = "lock.passphrase_hash";
const IDLE_SETTING: &str = "lock.idle_minutes";
/// Misses allowed before each further try has to wait.
const FREE_MISSES: u32 = 3;
const MAX_WAIT: Duration = Duration::from_secs(300);

/// Why a lock operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("no lock passphrase is set; set one in Settings first")]
    NoPassphrase,
    #[error("that is not the lock passphrase")]
    WrongPassphrase,
    #[error("the lock passphrase must have at least {min} characters")]
    TooShort { min: usize },
    #[error("a lock passphrase is already set; give the current one to change it")]
    CurrentNeeded,
    #[error("too many wrong passphrases; try again in {retry_in_secs} s")]
    TooManyAttempts { retry_in_secs: u64 },
    #[error("the idle time must be between 0 (never lock) and {max} minutes", max = MAX_IDLE_MINUTES)]
    BadIdleTime,
    #[error(
        "the secret of wallet {wallet_id} is no longer in the {store}; restore the wallet from its recovery phrase"
    )]
    SecretMissing { wallet_id: String, store: String },
    #[error(transparent)]
    SecretStore(#[from] SecretStoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored lock passphrase hash cannot be used: {0}")]
    BadHash(String),
}

/// What a shell needs to know to lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LockSettings {
    pub passphrase_set: bool,
    /// Minutes without input before the shell locks; 0: never.
    pub idle_minutes: u32,
}

/// Consecutive wrong passphrases and when the last one came.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    misses: u32,
    last: Option<Instant>,
}

impl Failures {
    /// How long the next try must still wait.
    fn wait(&self, now: Instant) -> Option<Duration> {
        let extra = self.misses.checked_sub(FREE_MISSES + 1)?;
        let wait = Duration::from_secs(1u64 << extra.min(16)).min(MAX_WAIT);
        let since = now.saturating_duration_since(self.last?);
        wait.checked_sub(since).filter(|d| !d.is_zero())
    }
}

/// Argon2id with the OWASP minimum (19 MiB, 2 passes): about 50 ms here,
/// slow enough for guessing, quick enough for a person.
fn hasher() -> Result<Argon2<'static>, LockError> {
    let params =
        Params::new(19 * 1024, 2, 1, None).map_err(|e| LockError::BadHash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_passphrase(passphrase: &str) -> Result<String, LockError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| KeyError::NoRandomness(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| LockError::BadHash(e.to_string()))?;
    let hash = hasher()?
        .hash_password(passphrase.as_bytes(), &salt)
        .map_err(|e| LockError::BadHash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `passphrase` matches the stored `hash` (its own parameters).
fn matches(hash: &str, passphrase: &str) -> Result<bool, LockError> {
    let parsed = PasswordHash::new(hash).map_err(|e| LockError::BadHash(e.to_string()))?;
    match Argon2::default().verify_password(passphrase.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(LockError::BadHash(e.to_string())),
    }
}

fn check_new(passphrase: &str) -> Result<(), LockError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(LockError::TooShort {
            min: MIN_PASSPHRASE_CHARS,
        });
    }
    Ok(())
}

/// Whether a lock passphrase is set, and the idle time.
pub(crate) async fn lock_settings(inner: &Inner) -> Result<LockSettings, LockError> {
    inner
        .db(|store| {
            let passphrase_set = store.setting(HASH_SETTING)?.is_some();
            let idle_minutes = store
                .setting(IDLE_SETTING)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_IDLE_MINUTES);
            Ok::<_, LockError>(LockSettings {
                passphrase_set,
                idle_minutes,
            })
        })
        .await
}

/// Sets or changes the lock passphrase. Changing needs the current one.
pub(crate) async fn set_lock_passphrase(
    inner: &Inner,
    current: Option<&str>,
    new: &str,
) -> Result<(), LockError> {
    check_new(new)?;
    if lock_settings(inner).await?.passphrase_set {
        check_lock_passphrase(inner, current.ok_or(LockError::CurrentNeeded)?).await?;
    }
    let new = Zeroizing::new(new.to_owned());
    let hash = tokio::task::spawn_blocking(move || hash_passphrase(&new))
        .await
        .map_err(|e| LockError::BadHash(e.to_string()))??;
    inner
        .db(move |store| {
            store.write(|tx| tx.set_setting(HASH_SETTING, &hash))?;
            Ok::<_, LockError>(())
        })
        .await
}

/// Removes the lock passphrase (the shell then never locks).
pub(crate) async fn remove_lock_passphrase(inner: &Inner, current: &str) -> Result<(), LockError> {
    check_lock_passphrase(inner, current).await?;
    inner
        .db(|store| {
            store.write(|tx| tx.delete_setting(HASH_SETTING))?;
            Ok::<_, LockError>(())
        })
        .await
}

/// Sets the idle time after which a shell locks (0: never).
pub(crate) async fn set_idle_lock_minutes(inner: &Inner, minutes: u32) -> Result<(), LockError> {
    if minutes > MAX_IDLE_MINUTES {
        return Err(LockError::BadIdleTime);
    }
    inner
        .db(move |store| {
            store.write(|tx| tx.set_setting(IDLE_SETTING, &minutes.to_string()))?;
            Ok::<_, LockError>(())
        })
        .await
}

/// Checks the lock passphrase. After a few misses each further try has
/// to wait, longer each time, until one succeeds.
pub(crate) async fn check_lock_passphrase(
    inner: &Inner,
    passphrase: &str,
) -> Result<(), LockError> {
    if let Some(wait) = lock(&inner.lock_failures).wait(Instant::now()) {
        return Err(LockError::TooManyAttempts {
            retry_in_secs: wait.as_secs().max(1),
        });
    }
    let hash = inner
        .db(|store| Ok::<_, LockError>(store.setting(HASH_SETTING)?))
        .await?
        .ok_or(LockError::NoPassphrase)?;
    let given = Zeroizing::new(passphrase.to_owned());
    let ok = tokio::task::spawn_blocking(move || matches(&hash, &given))
        .await
        .map_err(|e| LockError::BadHash(e.to_string()))??;
    let mut failures = lock(&inner.lock_failures);
    if ok {
        *failures = Failures::default();
        Ok(())
    } else {
        failures.misses += 1;
        failures.last = Some(Instant::now());
        tracing::info!("wrong lock passphrase ({} in a row)", failures.misses);
        Err(LockError::WrongPassphrase)
    }
}

/// The recovery phrase, read again from the secret store, after the
/// lock passphrase proves it is the owner asking.
pub(crate) async fn recovery_phrase(
    inner: &Inner,
    passphrase: &str,
) -> Result<RecoveryPhrase, LockError> {
    check_lock_passphrase(inner, passphrase).await?;
    let store = inner.secret_store.clone();
    let id = inner.wallet_id.clone();
    let secret = tokio::task::spawn_blocking(move || -> Result<WalletSecret, LockError> {
        let bytes = store.get(&id)?.ok_or_else(|| LockError::SecretMissing {
            wallet_id: id.clone(),
            store: store.name(),
        })?;
        Ok(WalletSecret::from_bytes(&bytes)?)
    })
    .await
    .map_err(|e| LockError::BadHash(e.to_string()))??;
    Ok(secret.phrase().clone())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::keys::WordCount;
    use crate::secrets::{MemorySecretStore, SecretStore};
    use crate::{Network, Wallet, WalletConfig};

    #[tokio::test]
    async fn the_phrase_shows_only_behind_the_lock_passphrase_and_it_all_persists() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = WalletConfig::new(dir.path(), "http://127.0.0.1:1", Network::Sandbox);
        let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::new());
        let (wallet, phrase) = Wallet::create(config.clone(), secrets.clone(), WordCount::Twelve)
            .await
            .expect("creates offline");
        let defaults = wallet.lock_settings().await.unwrap();
        assert_eq!(
            defaults,
            LockSettings {
                passphrase_set: false,
                idle_minutes: DEFAULT_IDLE_MINUTES
            }
        );
        assert!(matches!(
            wallet.recovery_phrase("anything at all").await,
            Err(LockError::NoPassphrase)
        ));
        assert!(matches!(
            wallet.set_lock_passphrase(None, "short").await,
            Err(LockError::TooShort { .. })
        ));
        wallet
            .set_lock_passphrase(None, "tulip basket 42")
            .await
            .expect("first passphrase needs no current one");
        assert!(matches!(
            wallet.recovery_phrase("tulip basket 41").await,
            Err(LockError::WrongPassphrase)
        ));
        let shown = wallet.recovery_phrase("tulip basket 42").await.unwrap();
        assert_eq!(shown.phrase(), phrase.phrase());
        // Changing needs the current passphrase, and the right one.
        assert!(matches!(
            wallet.set_lock_passphrase(None, "another one 1").await,
            Err(LockError::CurrentNeeded)
        ));
        assert!(matches!(
            wallet
                .set_lock_passphrase(Some("wrong guess!"), "another one 1")
                .await,
            Err(LockError::WrongPassphrase)
        ));
        wallet
            .set_lock_passphrase(Some("tulip basket 42"), "another one 1")
            .await
            .unwrap();
        wallet.set_idle_lock_minutes(15).await.unwrap();
        assert!(matches!(
            wallet.set_idle_lock_minutes(MAX_IDLE_MINUTES + 1).await,
            Err(LockError::BadIdleTime)
        ));
        drop(wallet);

        // The database holds a hash, never the passphrase.
        let db = std::fs::read(config.db_path()).unwrap();
        let wal = std::fs::read(dir.path().join("wallet.sqlite-wal")).unwrap_or_default();
        for bytes in [&db, &wal] {
            assert!(!bytes.windows(13).any(|w| w == b"another one 1"));
        }

        let wallet = Wallet::open(config, secrets.clone()).await.unwrap();
        assert_eq!(
            wallet.lock_settings().await.unwrap(),
            LockSettings {
                passphrase_set: true,
                idle_minutes: 15
            }
        );
        wallet.check_lock_passphrase("another one 1").await.unwrap();
        // Three misses are free; the fourth makes the next try wait.
        for _ in 0..4 {
            assert!(matches!(
                wallet.check_lock_passphrase("nope nope").await,
                Err(LockError::WrongPassphrase)
            ));
        }
        assert!(matches!(
            wallet.check_lock_passphrase("another one 1").await,
            Err(LockError::TooManyAttempts { retry_in_secs: 1 })
        ));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        wallet
            .remove_lock_passphrase("another one 1")
            .await
            .unwrap();
        assert!(!wallet.lock_settings().await.unwrap().passphrase_set);

        // A secret gone from the keystore is said plainly.
        wallet
            .set_lock_passphrase(None, "third time ok")
            .await
            .unwrap();
        secrets.delete(wallet.wallet_id()).unwrap();
        assert!(matches!(
            wallet.recovery_phrase("third time ok").await,
            Err(LockError::SecretMissing { .. })
        ));
    }

    #[test]
    fn a_hash_matches_only_its_passphrase() {
        let hash = hash_passphrase("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!hash.contains("correct horse"));
        assert!(matches(&hash, "correct horse").unwrap());
        assert!(!matches(&hash, "correct hors").unwrap());
        assert!(!matches(&hash, "").unwrap());
        // Two hashes of one passphrase differ (salt).
        assert_ne!(hash, hash_passphrase("correct horse").unwrap());
    }

    #[test]
    fn a_damaged_hash_is_an_error_not_a_match() {
        assert!(matches!(
            matches("not a PHC string", "x"),
            Err(LockError::BadHash(_))
        ));
    }

    #[test]
    fn short_passphrases_are_refused() {
        assert!(matches!(
            check_new("1234567"),
            Err(LockError::TooShort { min: 8 })
        ));
        assert!(check_new("12345678").is_ok());
        // Characters, not bytes.
        assert!(check_new("ääääääää").is_ok());
    }

    #[test]
    fn misses_beyond_the_free_ones_wait_longer_each_time() {
        let start = Instant::now();
        let mut f = Failures::default();
        for _ in 0..FREE_MISSES {
            f.misses += 1;
            f.last = Some(start);
            assert_eq!(f.wait(start), None);
        }
        f.misses += 1;
        assert_eq!(f.wait(start), Some(Duration::from_secs(1)));
        f.misses += 1;
        assert_eq!(f.wait(start), Some(Duration::from_secs(2)));
        assert_eq!(f.wait(start + Duration::from_secs(2)), None);
        f.misses = 60;
        assert_eq!(f.wait(start), Some(MAX_WAIT));
    }
}
