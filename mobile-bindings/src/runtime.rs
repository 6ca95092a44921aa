//! The one tokio runtime of the library. The core's async methods need a
//! tokio context (blocking tasks for SQLite and the secret store, timers,
//! sockets); a host awaits them from its own executor, so every exported
//! async method spawns its work here and awaits the join handle, which any
//! executor can poll. A panic in that work ends the task, not the process:
//! it comes back as the method's `Internal` error.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// The error enums that can say "the library failed inside".
pub(crate) trait Internal {
    fn internal(message: String) -> Self;
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The runtime, started on first use (two worker threads: a phone's wallet
/// waits on the network and SQLite, it does not compute much).
pub(crate) fn runtime() -> Result<&'static Runtime, String> {
    RUNTIME
        .get_or_init(|| {
            // The wallet's log lines go somewhere from its first call on.
            crate::logging::install_default();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("notch-wallet")
                .enable_all()
                .build()
                .map_err(|e| format!("the wallet could not start its worker threads: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs `work` on the runtime and waits for it.
pub(crate) async fn run<T, E, F>(work: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Internal + Send + 'static,
{
    let rt = runtime().map_err(E::internal)?;
    match rt.spawn(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            Err(E::internal(format!(
                "internal error in the wallet library ({what}); nothing more was done"
            )))
        }
        Err(_) => Err(E::internal(
            "the wallet library was shutting down; try again".to_owned(),
        )),
    }
}
