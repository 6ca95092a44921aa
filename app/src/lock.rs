//! The lock: a passphrase that guards showing the recovery phrase again and
//! unlocking after the app locked itself. The core keeps the passphrase's
//! hash and the idle time; whether the app is locked now is app state
//! ([`AppState::is_locked`]), and every wallet command refuses while it is.
//! The UI watches for input and calls `lock_now` after the idle time.

use notch_ipc::{
    AppStatus, CommandError, IdleLockArgs, LockStatus, PassphraseArgs, PhraseView,
    SetLockPassphraseArgs, code,
};
use tauri::{AppHandle, Runtime, State};
use zeroize::Zeroizing;

use crate::errors;
use crate::state::AppState;

type Res<T> = Result<T, CommandError>;

async fn lock_status_of(state: &AppState) -> Res<LockStatus> {
    let wallet = state.wallet_even_locked()?;
    let settings = wallet.lock_settings().await.map_err(errors::lock)?;
    Ok(LockStatus {
        passphrase_set: settings.passphrase_set,
        idle_minutes: settings.idle_minutes,
        locked: state.is_locked(),
        min_chars: notch_core::lock::MIN_PASSPHRASE_CHARS as u32,
    })
}

#[tauri::command]
pub async fn lock_status(state: State<'_, AppState>) -> Res<LockStatus> {
    lock_status_of(&state).await
}

#[tauri::command]
pub async fn set_lock_passphrase(
    state: State<'_, AppState>,
    args: SetLockPassphraseArgs,
) -> Res<LockStatus> {
    let wallet = state.wallet()?;
    let current = args.current.map(Zeroizing::new);
    let new = Zeroizing::new(args.new);
    wallet
        .set_lock_passphrase(current.as_deref().map(String::as_str), &new)
        .await
        .map_err(errors::lock)?;
    lock_status_of(&state).await
}

#[tauri::command]
pub async fn remove_lock_passphrase(
    state: State<'_, AppState>,
    args: PassphraseArgs,
) -> Res<LockStatus> {
    let wallet = state.wallet()?;
    let passphrase = Zeroizing::new(args.passphrase);
    wallet
        .remove_lock_passphrase(&passphrase)
        .await
        .map_err(errors::lock)?;
    lock_status_of(&state).await
}

#[tauri::command]
pub async fn set_idle_lock(state: State<'_, AppState>, args: IdleLockArgs) -> Res<LockStatus> {
    let wallet = state.wallet()?;
    wallet
        .set_idle_lock_minutes(args.minutes)
        .await
        .map_err(errors::lock)?;
    lock_status_of(&state).await
}

/// Locks now (the UI calls this after the idle time, or from a button).
/// Without a passphrase there would be no way back in, so that is refused.
#[tauri::command]
pub async fn lock_now<R: Runtime>(app: AppHandle<R>, state: State<'_, AppState>) -> Res<AppStatus> {
    let status = lock_status_of(&state).await?;
    if !status.passphrase_set {
        return Err(CommandError::new(
            code::NO_PASSPHRASE,
            "set a lock passphrase in Settings before Notch can lock",
        ));
    }
    state.set_locked(&app, true);
    Ok(state.status())
}

#[tauri::command]
pub async fn unlock<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    args: PassphraseArgs,
) -> Res<AppStatus> {
    let wallet = state.wallet_even_locked()?;
    let passphrase = Zeroizing::new(args.passphrase);
    wallet
        .check_lock_passphrase(&passphrase)
        .await
        .map_err(errors::lock)?;
    state.set_locked(&app, false);
    Ok(state.status())
}

/// The recovery phrase, after the lock passphrase is given again (even
/// when unlocked: whoever sits at an unlocked screen must not read it).
#[tauri::command]
pub async fn reveal_phrase(state: State<'_, AppState>, args: PassphraseArgs) -> Res<PhraseView> {
    let wallet = state.wallet()?;
    let passphrase = Zeroizing::new(args.passphrase);
    let phrase = wallet
        .recovery_phrase(&passphrase)
        .await
        .map_err(errors::lock)?;
    Ok(PhraseView {
        words: phrase.words().map(str::to_owned).collect(),
    })
}
