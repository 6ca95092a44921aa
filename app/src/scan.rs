//! Scanning a recipient's address from a QR code: from an image file the
//! person picked, or from camera frames the UI grabs. notch-core reads the
//! codes and makes a payment of the wallet's network of their texts
//! (`PaymentUri`); here they only cross the IPC.
//!
//! Also the Linux webview setup that lets the UI use the camera at all.

use notch_core::PaymentUri;
use notch_ipc::scan::{FRAME_HEADER_LEN, decode_frame};
use notch_ipc::{CommandError, ScannedAddress, code};
use tauri::State;
use tauri::ipc::{InvokeBody, Request};

use crate::errors;
use crate::state::AppState;

type Res<T> = Result<T, CommandError>;

/// The address in a PNG or JPEG file. Body: the file's bytes, raw.
#[tauri::command]
pub async fn scan_qr_image(
    state: State<'_, AppState>,
    request: Request<'_>,
) -> Res<ScannedAddress> {
    let network = state.wallet()?.network();
    let bytes = body_bytes(request.body(), "the bytes of an image file")?;
    let texts = decode(move || notch_core::qr::decode_image(&bytes)).await?;
    address_from(&texts, network)
}

/// The address in a grayscale camera frame. Body: the frame as
/// `notch_ipc::scan::encode_frame` writes it, raw.
#[tauri::command]
pub async fn scan_qr_frame(
    state: State<'_, AppState>,
    request: Request<'_>,
) -> Res<ScannedAddress> {
    let network = state.wallet()?.network();
    let body = body_bytes(request.body(), "a camera frame")?;
    let Some((width, height, _)) = decode_frame(&body) else {
        return Err(CommandError::new(
            notch_ipc::scan::code::BAD_FRAME,
            format!(
                "a camera frame starts with its {FRAME_HEADER_LEN}-byte size; got {} bytes",
                body.len()
            ),
        ));
    };
    let texts = decode(move || {
        let luma = body.get(FRAME_HEADER_LEN..).unwrap_or_default();
        notch_core::qr::decode_luma(width, height, luma)
    })
    .await?;
    address_from(&texts, network)
}

/// The request's binary body. Tauri sends a `Uint8Array` raw over its IPC
/// protocol; only if it had to fall back to `postMessage` does it arrive
/// as a JSON array of numbers, which is accepted too.
pub(crate) fn body_bytes(body: &InvokeBody, what: &str) -> Res<Vec<u8>> {
    match body {
        InvokeBody::Raw(bytes) => Ok(bytes.clone()),
        InvokeBody::Json(value @ serde_json::Value::Array(_)) => {
            serde_json::from_value(value.clone()).map_err(|e| {
                CommandError::new(code::INVALID, format!("expected {what} as bytes: {e}"))
            })
        }
        InvokeBody::Json(_) => Err(CommandError::new(
            code::INVALID,
            format!("expected {what} as the request's binary body"),
        )),
    }
}

/// Runs the decoder off the async runtime: a large photo takes a while,
/// and the other commands (sync status, balances) must keep answering.
async fn decode(
    work: impl FnOnce() -> Result<Vec<String>, notch_core::qr::QrError> + Send + 'static,
) -> Res<Vec<String>> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| CommandError::new(code::INTERNAL, format!("the QR decoder stopped: {e}")))?
        .map_err(errors::qr)
}

/// The first text that is a payment of `network` (a bare address or a
/// `notch:` link), its address canonical (lower case: QR codes often carry
/// addresses upper case, which fits their compact alphanumeric mode). A
/// link's amount and asset are not carried over (yet). If none is, core's
/// most telling refusal.
pub fn address_from(texts: &[String], network: notch_core::Network) -> Res<ScannedAddress> {
    match PaymentUri::from_scanned(texts, network) {
        Some(Ok(uri)) => Ok(ScannedAddress {
            address: uri.address,
        }),
        Some(Err(refusal)) => Err(errors::scan_refusal(refusal)),
        None => Err(CommandError::new(
            notch_ipc::scan::code::NO_QR_CODE,
            "no QR code was found in this image",
        )),
    }
}

/// Lets the UI use the camera. WebKitGTK turns media streams off by default
/// and refuses every `getUserMedia` unless the app grants the permission
/// request: enable them and grant video capture (only: no microphone, no
/// screen capture). The webview only ever shows our own UI, so this gives
/// the camera to nothing else. Elsewhere the platform webview asks the
/// person itself; nothing to do.
pub fn enable_camera<R: tauri::Runtime>(app: &tauri::App<R>) {
    use tauri::Manager;
    let Some(window) = app.get_webview_window("main") else {
        tracing::warn!("no main window: the camera stays off");
        return;
    };
    let result = window.with_webview(|webview| {
        #[cfg(target_os = "linux")]
        {
            use webkit2gtk::glib::prelude::Cast;
            use webkit2gtk::{
                PermissionRequestExt, SettingsExt, UserMediaPermissionRequest,
                UserMediaPermissionRequestExt, WebViewExt,
            };
            let view = webview.inner();
            if let Some(settings) = WebViewExt::settings(&view) {
                settings.set_enable_media_stream(true);
                settings.set_enable_mediasource(true);
            }
            view.connect_permission_request(|_, request| {
                match request.downcast_ref::<UserMediaPermissionRequest>() {
                    Some(media) if media.is_for_video_device() && !media.is_for_audio_device() => {
                        request.allow();
                    }
                    _ => request.deny(),
                }
                true // handled: WebKit must not ask again
            });
        }
        #[cfg(not(target_os = "linux"))]
        let _ = webview;
    });
    if let Err(e) = result {
        tracing::warn!("cannot set up the webview for the camera: {e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_ui_and_the_core_agree_on_the_largest_image() {
        assert_eq!(
            notch_ipc::scan::MAX_IMAGE_BYTES,
            notch_core::qr::MAX_INPUT_BYTES
        );
    }
}
