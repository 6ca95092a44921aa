//! Scanning a QR code from a picture file or the camera: into a
//! recipient's address field (Send), or a tally ticket (Tallies). The app
//! reads the code and checks what it holds; this side only gets the bytes
//! there and says clearly what went wrong.

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::scan::{self, MAX_IMAGE_BYTES, SCAN_QR_FRAME, SCAN_QR_IMAGE, encode_frame};
use notch_ipc::tally::{self, TallyRow};
use notch_ipc::{CommandError, ScannedAddress, WalletState, code};
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{HtmlCanvasElement, HtmlInputElement, HtmlVideoElement, MediaStream};

use crate::{Ctx, ctx, ipc, ipc_sleep};

/// How often a camera frame is sent to be read.
const FRAME_EVERY_MS: i32 = 250;
/// Frames are scaled down to at most this width before reading: plenty for
/// a code held up to the camera, and a small body over the IPC.
const FRAME_MAX_WIDTH: u32 = 640;

/// What a scan is for: the commands that read the code, and how their
/// errors read to people.
#[derive(Clone, Copy)]
pub struct Purpose {
    image_cmd: &'static str,
    frame_cmd: &'static str,
    timeout_ms: i32,
    /// A code was read but holds nothing usable: the camera says so and
    /// keeps looking (the person may show another one).
    keep_looking: fn(&str) -> bool,
    message: fn(&CommandError, Ctx) -> String,
    aim: &'static str,
}

/// An address of the wallet's network, for a recipient row.
pub const ADDRESS: Purpose = Purpose {
    image_cmd: SCAN_QR_IMAGE,
    frame_cmd: SCAN_QR_FRAME,
    timeout_ms: ipc::DEFAULT_TIMEOUT_MS,
    keep_looking: |c| c == code::WRONG_NETWORK || c == code::BAD_ADDRESS,
    message: message_for,
    aim: "Hold the QR code in front of the camera",
};

/// A tally ticket: once read, the app presents it to its issuer at once,
/// so the answer can take as long as reaching a partner's agent.
pub const TICKET: Purpose = Purpose {
    image_cmd: tally::command::SCAN_TICKET_IMAGE,
    frame_cmd: tally::command::SCAN_TICKET_FRAME,
    timeout_ms: ipc::LONG_TIMEOUT_MS,
    keep_looking: |c| c == tally::code::BAD_TICKET,
    // The app's own words: they name what is wrong with the ticket.
    message: |e, _| e.message.clone(),
    aim: "Hold the ticket's QR code in front of the camera",
};

/// The data-testids and labels of one capture's controls.
pub struct Controls {
    pub image_testid: String,
    pub camera_testid: String,
    pub preview_testid: String,
    pub pick_label: &'static str,
    pub camera_label: &'static str,
}

/// "Scan image" and "Camera" for one recipient row; `on_address` gets the
/// address once a code holding one of this wallet's network is read.
#[component]
pub fn QrScanButton(row: usize, on_address: Callback<String>) -> impl IntoView {
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let controls = Controls {
        image_testid: format!("scan-image-{row}"),
        camera_testid: format!("scan-camera-{row}"),
        preview_testid: format!("scan-preview-{row}"),
        pick_label: "Scan image",
        camera_label: "Camera",
    };
    let on_scanned = Callback::new(move |s: ScannedAddress| on_address.run(s.address));
    view! {
        <QrCapture<ScannedAddress> purpose=ADDRESS controls error busy on_found=on_scanned />
        {move || error.get().map(|e| view! { <small class="error" data-testid=format!("scan-error-{row}")>{e}</small> })}
    }
}

/// A picture pick and the camera that read a tally ticket; `on_row` gets
/// the tally the app made of it. Errors and the busy state are the
/// caller's, shown with its pasted-text form.
#[component]
pub fn TicketCapture(
    error: RwSignal<Option<String>>,
    busy: RwSignal<bool>,
    on_row: Callback<TallyRow>,
) -> impl IntoView {
    let controls = Controls {
        image_testid: "scan-ticket-image".into(),
        camera_testid: "scan-ticket-camera".into(),
        preview_testid: "scan-ticket-preview".into(),
        pick_label: "Pick a picture",
        camera_label: "Use the camera",
    };
    view! { <QrCapture<TallyRow> purpose=TICKET controls error busy on_found=on_row /> }
}

/// The picture pick and the camera, for any [`Purpose`]; `on_found` gets
/// the app's answer once a code it accepts is read.
#[component]
pub fn QrCapture<T>(
    purpose: Purpose,
    controls: Controls,
    error: RwSignal<Option<String>>,
    busy: RwSignal<bool>,
    on_found: Callback<T>,
) -> impl IntoView
where
    T: DeserializeOwned + 'static,
{
    // Read here, in the component: async tasks have no reactive owner.
    let cx = ctx();
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

    let found = move |answer: T| {
        // Unmounted while the app was reading: nobody to tell.
        if session.try_get_untracked().is_none() {
            return;
        }
        stop_camera();
        error.set(None);
        on_found.try_run(answer);
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
                    ipc::call_raw::<T>(purpose.image_cmd, &bytes, purpose.timeout_ms).await
                }
                Err(e) => Err(CommandError::new(
                    "ui",
                    format!("the file could not be read: {}", js_error(&e)),
                )),
            };
            busy.try_set(false);
            match result {
                Ok(answer) => found(answer),
                Err(e) => {
                    error.try_set(Some((purpose.message)(&e, cx)));
                }
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
            camera_note.set(Some(purpose.aim));
            scan_frames(mine, session, &video, error, purpose, found, cx).await;
        });
    };

    let Controls {
        image_testid,
        camera_testid,
        preview_testid,
        pick_label,
        camera_label,
    } = controls;
    view! {
        <span class="scan">
            <span class="scan-pick button secondary small" class:busy=move || busy.get()>
                {move || if busy.get() { "Reading…" } else { pick_label }}
                <input type="file" accept="image/png,image/jpeg,image/*" title="Scan a QR code from a picture"
                    data-testid=image_testid disabled=move || busy.get()
                    on:change=on_file />
            </span>
            <button type="button" class="secondary small" data-testid=camera_testid
                on:click=open_camera>
                {move || if camera_open.get() { "Close camera" } else { camera_label }}
            </button>
        </span>
        <div class="scan-camera" data-testid=preview_testid
            style:display=move || if camera_open.get() { "" } else { "none" }>
            <video node_ref=video_ref autoplay=true muted=true playsinline=true></video>
            {move || camera_note.get().map(|n| view! { <small class="muted">{n}</small> })}
        </div>
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

/// Reads frames until the app accepts a code, or the session changes
/// (closed, reopened, unmounted).
async fn scan_frames<T: DeserializeOwned>(
    mine: u64,
    session: RwSignal<u64>,
    video: &HtmlVideoElement,
    error: RwSignal<Option<String>>,
    purpose: Purpose,
    found: impl Fn(T) + Copy + 'static,
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
            let r = ipc::call_raw::<T>(purpose.frame_cmd, &body, purpose.timeout_ms).await;
            if session.try_get_untracked() != Some(mine) {
                return;
            }
            match r {
                Ok(answer) => {
                    found(answer);
                    return;
                }
                // Nothing (readable) in view yet: keep looking.
                Err(e)
                    if e.code == scan::code::NO_QR_CODE || e.code == scan::code::QR_UNREADABLE => {}
                Err(e) if (purpose.keep_looking)(&e.code) => {
                    error.set(Some((purpose.message)(&e, cx)));
                }
                Err(e) => {
                    error.set(Some((purpose.message)(&e, cx)));
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
