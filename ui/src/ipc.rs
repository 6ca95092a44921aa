//! Calls into the Tauri app. Command names and payload types come from
//! notch-ipc, shared with the app, so the two sides cannot drift.

use notch_ipc::CommandError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["window", "__TAURI__", "core"], js_name = invoke, catch)]
    async fn tauri_invoke(cmd: &str, args: JsValue) -> Result<JsValue, JsValue>;

    #[wasm_bindgen(js_namespace = ["window", "__TAURI__", "event"], js_name = listen, catch)]
    async fn tauri_listen(
        event: &str,
        handler: &Closure<dyn FnMut(JsValue)>,
    ) -> Result<JsValue, JsValue>;
}

/// Invokes a command; every failure comes back as a [`CommandError`].
pub async fn invoke<A: Serialize, T: DeserializeOwned>(
    cmd: &str,
    args: &A,
) -> Result<T, CommandError> {
    let args = serde_wasm_bindgen::to_value(args)
        .map_err(|e| CommandError::new("ui", format!("cannot encode the request: {e}")))?;
    answer(tauri_invoke(cmd, args).await)
}

/// A command's answer, or its error as a [`CommandError`].
fn answer<T: DeserializeOwned>(result: Result<JsValue, JsValue>) -> Result<T, CommandError> {
    match result {
        Ok(value) => serde_wasm_bindgen::from_value(value)
            .map_err(|e| CommandError::new("ui", format!("unexpected answer from the app: {e}"))),
        Err(err) => Err(
            serde_wasm_bindgen::from_value(err.clone()).unwrap_or_else(|_| {
                CommandError::new("ipc", err.as_string().unwrap_or_else(|| format!("{err:?}")))
            }),
        ),
    }
}

/// Invokes a command whose argument is binary (an image file, a camera
/// frame): Tauri sends a `Uint8Array` as the raw request body, without the
/// JSON encoding that would multiply its size. Gives up after `timeout_ms`.
pub async fn call_raw<T: DeserializeOwned>(
    cmd: &str,
    body: &js_sys::Uint8Array,
    timeout_ms: i32,
) -> Result<T, CommandError> {
    let body = JsValue::from(body.clone());
    with_timeout(
        cmd,
        async move { answer(tauri_invoke(cmd, body).await) },
        timeout_ms,
    )
    .await
}

/// Calls `on_payload` for each event of that name, for the page's lifetime.
pub fn listen<T: DeserializeOwned + 'static>(
    event: &'static str,
    mut on_payload: impl FnMut(T) + 'static,
) {
    let handler = Closure::<dyn FnMut(JsValue)>::new(move |raw: JsValue| {
        let payload = js_sys::Reflect::get(&raw, &JsValue::from_str("payload")).ok();
        if let Some(Ok(value)) = payload.map(serde_wasm_bindgen::from_value::<T>) {
            on_payload(value);
        }
    });
    wasm_bindgen_futures::spawn_local(async move {
        if tauri_listen(event, &handler).await.is_ok() {
            // The listener lives as long as the page does.
            handler.forget();
        }
    });
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> JsValue;

    #[wasm_bindgen(js_namespace = ["navigator", "clipboard"], js_name = writeText, catch)]
    fn clipboard_write_text(text: &str) -> Result<js_sys::Promise, JsValue>;
}

/// How long a command may take before the UI shows an error instead.
pub const DEFAULT_TIMEOUT_MS: i32 = 30_000;
/// For commands that talk to the gateway at length (sync, restore, send).
pub const LONG_TIMEOUT_MS: i32 = 120_000;

async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let _ = set_timeout(&resolve, ms);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

#[derive(Serialize)]
struct Wrapped<'a, A: Serialize> {
    args: &'a A,
}

/// Invokes a command whose one parameter is `args`, giving up after
/// `timeout_ms` with a `timeout` error (never an endless spinner).
pub async fn call<A: Serialize, T: DeserializeOwned>(
    cmd: &str,
    args: &A,
    timeout_ms: i32,
) -> Result<T, CommandError> {
    let wrapped = Wrapped { args };
    with_timeout(cmd, invoke(cmd, &wrapped), timeout_ms).await
}

/// Invokes a command without arguments, with the default timeout.
pub async fn call0<T: DeserializeOwned>(cmd: &str) -> Result<T, CommandError> {
    with_timeout(cmd, invoke(cmd, &()), DEFAULT_TIMEOUT_MS).await
}

/// Invokes a command whose one parameter is `args` and whose answer is raw
/// bytes (a `tauri::ipc::Response`, an `ArrayBuffer` here), giving up after
/// `timeout_ms`.
pub async fn call_bytes<A: Serialize>(
    cmd: &str,
    args: &A,
    timeout_ms: i32,
) -> Result<Vec<u8>, CommandError> {
    use wasm_bindgen::JsCast;
    let wrapped = Wrapped { args };
    let fut = async move {
        let args = serde_wasm_bindgen::to_value(&wrapped)
            .map_err(|e| CommandError::new("ui", format!("cannot encode the request: {e}")))?;
        match tauri_invoke(cmd, args).await {
            Ok(value) => {
                if let Some(buffer) = value.dyn_ref::<js_sys::ArrayBuffer>() {
                    Ok(js_sys::Uint8Array::new(buffer).to_vec())
                } else if let Some(array) = value.dyn_ref::<js_sys::Uint8Array>() {
                    Ok(array.to_vec())
                } else {
                    Err(CommandError::new(
                        "ui",
                        format!("the app did not answer {cmd} with bytes"),
                    ))
                }
            }
            Err(err) => answer::<()>(Err(err)).map(|()| Vec::new()),
        }
    };
    with_timeout(cmd, fut, timeout_ms).await
}

/// Invokes a command without arguments, with the given timeout.
pub async fn call0_within<T: DeserializeOwned>(
    cmd: &str,
    timeout_ms: i32,
) -> Result<T, CommandError> {
    with_timeout(cmd, invoke(cmd, &()), timeout_ms).await
}

async fn with_timeout<T>(
    cmd: &str,
    fut: impl std::future::Future<Output = Result<T, CommandError>>,
    timeout_ms: i32,
) -> Result<T, CommandError> {
    use futures::future::{Either, select};
    let fut = Box::pin(fut);
    let timer = Box::pin(sleep_ms(timeout_ms));
    match select(fut, timer).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(CommandError::new(
            notch_ipc::code::TIMEOUT,
            format!(
                "the app did not answer {cmd} within {} s; try again",
                timeout_ms / 1000
            ),
        )),
    }
}

/// Copies text to the clipboard; true if it worked.
pub async fn copy_to_clipboard(text: &str) -> bool {
    match clipboard_write_text(text) {
        Ok(promise) => wasm_bindgen_futures::JsFuture::from(promise).await.is_ok(),
        Err(_) => false,
    }
}
