//! The one error type of the HTTP layer: an HTTP status and an `ApiError` body; and the one
//! filter for text the gateway sends to wallets ([`plain_message`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use notch_protocol::TxError;
use notch_protocol::api::{ApiError, StreamMessage, TxStatus, codes};

use crate::store::StoreError;

#[derive(Clone, Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub error: ApiError,
}

impl Failure {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Failure {
            status,
            error: ApiError::new(code, message),
        }
    }
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::MALFORMED, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, message)
    }
    pub fn double_spend(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, codes::DOUBLE_SPEND, message)
    }
    /// The HTTP status for a transaction rule.
    pub fn tx(e: &TxError) -> Self {
        let code = e.code();
        let status = match code {
            codes::MALFORMED | codes::WRONG_NETWORK => StatusCode::BAD_REQUEST,
            codes::TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, code, e.to_string())
    }
    pub fn store(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        crate::metrics::database_error(crate::metrics::During::Request);
        Self::unavailable(format!("the gateway's storage failed: {e}"))
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::store(e)
    }
}

/// Longest `message` (in characters) the gateway sends to a wallet.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// Text fit to send to a wallet, which may show it to a person: control characters (line
/// breaks, escapes, C1 controls) and the invisible bidirectional-override characters
/// (which can make text read differently than it is) become spaces, runs of spaces shrink to
/// one, and it is cut to [`MAX_MESSAGE_CHARS`] characters, ending in "…" when cut. Messages
/// quote what clients sent (serde errors do), so this is the one way every message leaves:
/// [`Failure::into_api_error`], `IntoResponse for Failure`, [`stream_error`] and
/// [`plain_status`].
pub fn plain_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(4 * MAX_MESSAGE_CHARS));
    let mut chars = 0;
    let mut last_space = true;
    let mut cut = false;
    for c in text.chars() {
        let c = if c.is_control() || is_bidi_control(c) {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        if chars == MAX_MESSAGE_CHARS - 1 {
            cut = true;
            break;
        }
        last_space = c == ' ';
        out.push(c);
        chars += 1;
    }
    let kept = out.trim_end().len();
    out.truncate(kept);
    if cut {
        out.push('…');
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A transaction status as sent to a wallet: the text of `rejected` and `dropped` (which
/// quotes errors) through the same filter.
pub fn plain_status(status: TxStatus) -> TxStatus {
    match status {
        TxStatus::Rejected { code, message } => TxStatus::Rejected {
            code,
            message: plain_message(&message),
        },
        TxStatus::Dropped { reason } => TxStatus::Dropped {
            reason: plain_message(&reason),
        },
        other => other,
    }
}

/// An `error` message of the `/v1/stream` WebSocket, through the same filter as `ApiError`.
pub fn stream_error(code: &str, message: &str) -> StreamMessage {
    StreamMessage::Error {
        code: code.to_owned(),
        message: plain_message(message),
    }
}

impl Failure {
    /// The body sent for this failure (also one entry of a batch answer).
    pub fn into_api_error(self) -> ApiError {
        ApiError {
            message: plain_message(&self.error.message),
            code: self.error.code,
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = self.status;
        let retry = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        let mut resp = (status, axum::Json(self.into_api_error())).into_response();
        if retry {
            // Refusals that pass with time (load, rate limits) say when to come back.
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_plain_and_bounded() {
        assert_eq!(plain_message("fee too low"), "fee too low");
        assert_eq!(
            plain_message("line\none\r\n\tand\u{1b}[31mred\u{9b}"),
            "line one and [31mred"
        );
        assert_eq!(plain_message("a\u{202e}gnp.exe"), "a gnp.exe");
        assert_eq!(plain_message("  \n "), "");
        let long = "é".repeat(1000);
        let cut = plain_message(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS);
        assert!(cut.ends_with('…'));
        let exact = "x".repeat(MAX_MESSAGE_CHARS - 1);
        assert_eq!(plain_message(&exact), exact);
        for s in [long.as_str(), "\u{0}\u{7f}\u{85}\u{2028}x"] {
            assert!(!plain_message(s).chars().any(|c| c.is_control()));
        }
    }

    #[test]
    fn every_way_out_filters() {
        let mut f = Failure::malformed("ok");
        // Fields are public; a message changed after construction is still filtered.
        f.error.message = format!("bad\n{}", "y".repeat(5000));
        let e = f.clone().into_api_error();
        assert!(e.message.starts_with("bad y"));
        assert_eq!(e.message.chars().count(), MAX_MESSAGE_CHARS);
        let resp = f.into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        match stream_error(codes::MALFORMED, "x\u{7}y") {
            StreamMessage::Error { message, .. } => assert_eq!(message, "x y"),
            other => panic!("{other:?}"),
        }
        let rejected = TxStatus::Rejected {
            code: codes::FEE_TOO_LOW.into(),
            message: "low\r\nfee".into(),
        };
        assert_eq!(
            plain_status(rejected),
            TxStatus::Rejected {
                code: codes::FEE_TOO_LOW.into(),
                message: "low fee".into()
            }
        );
    }
}
