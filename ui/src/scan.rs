//! Scanning a QR code into an address field: from a picture file, or from
//! the camera. The app reads the code and checks the address (same network
//! as the wallet); this side only gets the bytes there and says clearly
//! what went wrong.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::scan::{self, MAX_IMAGE_BYTES, SCAN_QR_FRAME, SCAN_QR_IMAGE, encode_frame};
use notch_ipc::{CommandError, ScannedAddress, WalletState, code};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{HtmlCanvasElement, HtmlInputElement, HtmlVideoElement, MediaStream};

use crate::{Ctx, ctx, ipc, ipc_sleep};

/// How often a camera frame is sent to be read.
const FRAME_EVERY_MS: i32 = 250;
/// Frames are scaled down to at most this width before reading: plenty for
/// a code held up to the camera, and a small body over the IPC.
const FRAME_MAX_WIDTH: u32 = 640;

/// "Scan image" and "Camera" for one recipient row; `on_address` gets the
/// address once a code holding one of this wallet's network is read.
#[component]
pub fn QrScanButton(row: usize, on_address: Callback<String>) -> impl IntoView {
    // Read here, in the component: async tasks have no reactive owner.
    let cx = ctx();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let camera_open = RwSignal::new(false);
    let camera_note = RwSignal::new(None::<&'static str>);
    // The open camera, if any: its tracks are stopped when done.
    let stream = StoredValue::new_local(None::<MediaStream>);
    // Bumped to end the frame loop of an earlier opening.
    let session = RwSignal::new(0u64);
    let video_ref = NodeRef::<leptos::html::Video>::new();

    let stop_camera = move || {
        session.update_untracked(|s| *s += 1);
        if let Some(s) = stream.try_update_value(Option::take).flatten() {
            stop_tracks(&s);
        }
        camera_open.set(false);
        camera_note.set(None);
    };
    // Leaving the screen (or the row) must switch the camera off.
    on_cleanup(move || {
        session.try_update_untracked(|s| *s += 1);
        if let Some(s) = stream.try_update_value(Option::take).flatten() {
            stop_tracks(&s);
        }
    });

    let found = move |address: String| {
        stop_camera();
        error.set(None);
        on_address.run(address);
    };

    let on_file = move |ev: leptos::ev::Event| {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(file) = input.files().and_then(|list| list.get(0)) else {
            return;
        };
        // Let the same file be picked again after a fix elsewhere.
        input.set_value("");
        error.set(None);
        if file.size() > MAX_IMAGE_BYTES as f64 {
            error.set(Some(format!(
                "That picture is too large (the limit is {} MB)",
                MAX_IMAGE_BYTES / 1_000_000
            )));
            return;
        }
        busy.set(true);
        spawn_local(async move {
            let result = match JsFuture::from(file.array_buffer()).await {
                // Straight from the file to the IPC: the bytes never pass
                // through wasm memory.
                Ok(buffer) => {
                    let bytes = js_sys::Uint8Array::new(&buffer);
                    ipc::call_raw::<ScannedAddress>(SCAN_QR_IMAGE, &bytes, ipc::DEFAULT_TIMEOUT_MS)
                        .await
                }
                Err(e) => Err(CommandError::new(
                    "ui",
                    format!("the file could not be read: {}", js_error(&e)),
                )),
            };
            busy.set(false);
            match result {
                Ok(scanned) => found(scanned.address),
                Err(e) => error.set(Some(message_for(&e, cx))),
            }
        });
    };

    let open_camera = move |_| {
        if camera_open.get_untracked() {
            stop_camera();
            return;
        }
        error.set(None);
        session.update_untracked(|s| *s += 1);
        let mine = session.get_untracked();
        camera_open.set(true);
        camera_note.set(Some("Starting the camera…"));
        spawn_local(async move {
            let opened = match start_camera().await {
                Ok(s) => s,
                Err(message) => {
                    if session.try_get_untracked() == Some(mine) {
                        camera_open.set(false);
                        camera_note.set(None);
                        error.set(Some(message));
                    }
                    return;
                }
            };
            // Closed (or unmounted) while the person was asked: let go of it.
            if session.try_get_untracked() != Some(mine) {
                stop_tracks(&opened);
                return;
            }
            stream.set_value(Some(opened.clone()));
            let Some(video) = video_ref.get_untracked() else {
                stop_camera();
                return;
            };
            video.set_src_object(Some(&opened));
            if let Ok(p) = video.play() {
                let _ = JsFuture::from(p).await;
            }
            camera_note.set(Some("Hold the QR code in front of the camera"));
            scan_frames(mine, session, &video, error, found, cx).await;
        });
    };

    view! {
        <span class="scan">
            <span class="scan-pick button secondary small" class:busy=move || busy.get()>
                {move || if busy.get() { "Reading…" } else { "Scan image" }}
                <input type="file" accept="image/png,image/jpeg,image/*" title="Scan a QR code from a picture"
                    data-testid=format!("scan-image-{row}") disabled=move || busy.get()
                    on:change=on_file />
            </span>
            <button type="button" class="secondary small" data-testid=format!("scan-camera-{row}")
                on:click=open_camera>
                {move || if camera_open.get() { "Close camera" } else { "Camera" }}
            </button>
        </span>
        <div class="scan-camera" data-testid=format!("scan-preview-{row}")
            style:display=move || if camera_open.get() { "" } else { "none" }>
            <video node_ref=video_ref autoplay=true muted=true playsinline=true></video>
            {move || camera_note.get().map(|n| view! { <small class="muted">{n}</small> })}
        </div>
        {move || error.get().map(|e| view! { <small class="error" data-testid=format!("scan-error-{row}")>{e}</small> })}
    }
}

/// The camera's stream (video only), or why not, in words for people.
async fn start_camera() -> Result<MediaStream, String> {
    let window = web_sys::window().ok_or("No window to show the camera in")?;
    let devices = window
        .navigator()
        .media_devices()
        .ok()
        .filter(|d| !JsValue::from(d.clone()).is_undefined())
        .ok_or("The camera is not available in this window")?;
    // The back camera where there is one (phones); any camera otherwise.
    let video = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&video, &"facingMode".into(), &"environment".into());
    let constraints = web_sys::MediaStreamConstraints::new();
    constraints.set_video(&video);
    constraints.set_audio(&JsValue::FALSE);
    let asked = devices
        .get_user_media_with_constraints(&constraints)
        .map_err(|e| camera_error(&e))?;
    JsFuture::from(asked)
        .await
        .map_err(|e| camera_error(&e))?
        .dyn_into::<MediaStream>()
        .map_err(|_| "The camera gave no video".to_owned())
}

/// `getUserMedia`'s refusal, by its DOMException name.
fn camera_error(e: &JsValue) -> String {
    let name = js_sys::Reflect::get(e, &"name".into())
        .ok()
        .and_then(|n| n.as_string())
        .unwrap_or_default();
    match name.as_str() {
        "NotFoundError" | "OverconstrainedError" | "DevicesNotFoundError" => {
            "No camera found".to_owned()
        }
        "NotAllowedError" | "PermissionDeniedError" | "SecurityError" => {
            "Camera permission denied".to_owned()
        }
        "NotReadableError" | "TrackStartError" => {
            "The camera is in use by another program".to_owned()
        }
        _ => format!("The camera could not be started: {}", js_error(e)),
    }
}

/// Reads frames until a code gives an address, or the session changes
/// (closed, reopened, unmounted).
async fn scan_frames(
    mine: u64,
    session: RwSignal<u64>,
    video: &HtmlVideoElement,
    error: RwSignal<Option<String>>,
    found: impl Fn(String) + Copy + 'static,
    cx: Ctx,
) {
    let canvas = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("canvas").ok())
        .and_then(|c| c.dyn_into::<HtmlCanvasElement>().ok());
    let Some(canvas) = canvas else {
        error.set(Some("Cannot read camera frames here".into()));
        return;
    };
    while session.try_get_untracked() == Some(mine) {
        if let Some((width, height, luma)) = grab_luma(video, &canvas) {
            let body = js_sys::Uint8Array::from(&encode_frame(width, height, &luma)[..]);
            // One frame at a time: the next is grabbed once this one is read.
            let r = ipc::call_raw::<ScannedAddress>(SCAN_QR_FRAME, &body, ipc::DEFAULT_TIMEOUT_MS)
                .await;
            if session.try_get_untracked() != Some(mine) {
                return;
            }
            match r {
                Ok(scanned) => {
                    found(scanned.address);
                    return;
                }
                // Nothing (readable) in view yet: keep looking.
                Err(e)
                    if e.code == scan::code::NO_QR_CODE || e.code == scan::code::QR_UNREADABLE => {}
                // A code, but not an address for us: say so, keep looking
                // (the person may show another one).
                Err(e) if e.code == code::WRONG_NETWORK || e.code == code::BAD_ADDRESS => {
                    error.set(Some(message_for(&e, cx)));
                }
                Err(e) => {
                    error.set(Some(message_for(&e, cx)));
                    return;
                }
            }
        }
        ipc_sleep(FRAME_EVERY_MS).await;
    }
}

/// The video's current frame, scaled to at most [`FRAME_MAX_WIDTH`], as
/// luma (one byte per pixel); `None` until the camera delivers frames.
fn grab_luma(video: &HtmlVideoElement, canvas: &HtmlCanvasElement) -> Option<(u32, u32, Vec<u8>)> {
    let (vw, vh) = (video.video_width(), video.video_height());
    // HAVE_CURRENT_DATA: there is a frame to draw.
    if vw == 0 || vh == 0 || video.ready_state() < 2 {
        return None;
    }
    let width = vw.min(FRAME_MAX_WIDTH);
    let height = ((u64::from(vh) * u64::from(width)) / u64::from(vw)).max(1) as u32;
    canvas.set_width(width);
    canvas.set_height(height);
    let context = canvas
        .get_context("2d")
        .ok()
        .flatten()?
        .dyn_into::<web_sys::CanvasRenderingContext2d>()
        .ok()?;
    context
        .draw_image_with_html_video_element_and_dw_and_dh(
            video,
            0.0,
            0.0,
            f64::from(width),
            f64::from(height),
        )
        .ok()?;
    let rgba = context
        .get_image_data(0.0, 0.0, f64::from(width), f64::from(height))
        .ok()?
        .data();
    // ITU-R BT.601 weights in integers (77 + 150 + 29 = 256).
    let luma = rgba
        .chunks_exact(4)
        .map(|p| {
            let (r, g, b) = (u32::from(p[0]), u32::from(p[1]), u32::from(p[2]));
            ((77 * r + 150 * g + 29 * b) >> 8) as u8
        })
        .collect();
    Some((width, height, luma))
}

fn stop_tracks(stream: &MediaStream) {
    for track in stream.get_tracks().iter() {
        if let Ok(track) = track.dyn_into::<web_sys::MediaStreamTrack>() {
            track.stop();
        }
    }
}

/// What to tell the person for a scanning error.
fn message_for(e: &CommandError, cx: Ctx) -> String {
    match e.code.as_str() {
        scan::code::NO_QR_CODE => "No QR code in this image".into(),
        scan::code::QR_UNREADABLE => {
            "There is a QR code but it could not be read; try a sharper picture".into()
        }
        scan::code::NOT_AN_IMAGE => "That file is not a picture (PNG or JPEG)".into(),
        scan::code::UNSUPPORTED_IMAGE => "Only PNG and JPEG pictures can be scanned".into(),
        scan::code::IMAGE_TOO_LARGE => format!("That picture is too large: {}", e.message),
        scan::code::BAD_IMAGE => format!("That picture could not be read: {}", e.message),
        c if c == code::WRONG_NETWORK || c == code::BAD_ADDRESS => {
            format!("That QR code is not a Notch address on {}", network(cx))
        }
        _ => e.message.clone(),
    }
}

/// The open wallet's network, for messages.
fn network(cx: Ctx) -> String {
    match cx.status.get_untracked().map(|s| s.wallet) {
        Some(WalletState::Open { network, .. }) => network,
        _ => "this network".into(),
    }
}

fn js_error(e: &JsValue) -> String {
    js_sys::Reflect::get(e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}
