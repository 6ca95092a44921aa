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
    match tauri_invoke(cmd, args).await {
        Ok(value) => serde_wasm_bindgen::from_value(value)
            .map_err(|e| CommandError::new("ui", format!("unexpected answer from the app: {e}"))),
        Err(err) => Err(
            serde_wasm_bindgen::from_value(err.clone()).unwrap_or_else(|_| {
                CommandError::new("ipc", err.as_string().unwrap_or_else(|| format!("{err:?}")))
            }),
        ),
    }
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
