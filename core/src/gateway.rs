//! HTTP client of a gateway's mirror API (`/v1`).

use std::time::Duration;

use notch_protocol::api::{
    ApiError, BlocksRequest, BlocksResponse, HeadersRequest, HeadersResponse, LedgerInfo,
    MempoolDelta, StreamMessage, SubmitTxRequest, SubmitTxResponse, TxStatusResponse,
    UtxosResponse,
};
use notch_protocol::wire::{self, BlocksAnswer};

/// Why a call to the gateway failed, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the gateway URL {url:?} is not valid: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("the gateway URL {url} is not safe to use: {reason}")]
    InsecureUrl { url: String, reason: String },
    #[error("the gateway at {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the gateway refused the request ({}): {}", .0.code, .0.message)]
    Refused(ApiError),
    /// A 5xx answer: the gateway is there but cannot serve now (busy,
    /// shutting down, pool full). Worth retrying later.
    #[error("the gateway cannot serve the request now ({}): {}", .0.code, .0.message)]
    Unavailable(ApiError),
    #[error("the gateway sent an answer that is not valid: {0}")]
    BadResponse(String),
}

/// The largest answer the wallet reads (a batch of blocks in hex).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// A client of one gateway. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GatewayClient {
    base: reqwest::Url,
    http: reqwest::Client,
}

impl GatewayClient {
    /// `url` is the gateway's root, e.g. `https://gateway.example` or
    /// `http://127.0.0.1:7420`. Plain `http://` is refused except to
    /// loopback unless `allow_insecure_http` (see [`crate::trust::url_allowed`]).
    pub fn new(url: &str, allow_insecure_http: bool) -> Result<Self, GatewayError> {
        let bad = |reason: String| GatewayError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let mut base = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("only http and https are supported".into()));
        }
        crate::trust::url_allowed(&base, allow_insecure_http).map_err(|reason| {
            GatewayError::InsecureUrl {
                url: url.to_owned(),
                reason,
            }
        })?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self { base, http })
    }

    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<LedgerInfo, GatewayError> {
        self.get_json("v1/info").await
    }

    /// `POST /v1/headers`.
    pub async fn headers(&self, request: &HeadersRequest) -> Result<HeadersResponse, GatewayError> {
        self.post_json("v1/headers", request).await
    }

    /// `POST /v1/blocks`.
    pub async fn blocks(&self, request: &BlocksRequest) -> Result<BlocksResponse, GatewayError> {
        self.post_json("v1/blocks", request).await
    }

    /// `POST /v1/blocks` asking for the binary form (`NBLK`,
    /// docs/PROTOCOL.md §7.2, `Accept: application/octet-stream`); a gateway
    /// that answers JSON is read as JSON (the fallback). Either way the
    /// answer is bounded by [`MAX_RESPONSE_BYTES`] and decoded strictly; the
    /// blocks in it are not yet verified.
    pub async fn blocks_answer(
        &self,
        request: &BlocksRequest,
    ) -> Result<BlocksAnswer, GatewayError> {
        let http = self
            .http
            .post(self.url_of("v1/blocks")?)
            .header(
                reqwest::header::ACCEPT,
                "application/octet-stream, application/json;q=0.5",
            )
            .json(request);
        let (content_type, body) = self.send_raw(http).await?;
        let binary = content_type
            .split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case(wire::CONTENT_TYPE));
        if binary {
            return BlocksAnswer::decode(&body).map_err(|e| {
                GatewayError::BadResponse(format!("the binary blocks answer does not decode: {e}"))
            });
        }
        let json: BlocksResponse =
            serde_json::from_slice(&body).map_err(|e| GatewayError::BadResponse(e.to_string()))?;
        if json.blocks.len() > wire::MAX_ANSWER_BLOCKS {
            return Err(GatewayError::BadResponse(format!(
                "the answer holds {} blocks (at most {})",
                json.blocks.len(),
                wire::MAX_ANSWER_BLOCKS
            )));
        }
        BlocksAnswer::try_from(&json)
            .map_err(|e| GatewayError::BadResponse(format!("a block is not hex: {e}")))
    }

    /// `POST /v1/tx`: submits a signed transaction (idempotent: the same
    /// transaction again answers its status with `duplicate = true`).
    pub async fn submit(&self, tx: &[u8]) -> Result<SubmitTxResponse, GatewayError> {
        self.post_json(
            "v1/tx",
            &SubmitTxRequest {
                tx: hex::encode(tx),
            },
        )
        .await
    }

    /// `GET /v1/tx/{txid}/status`.
    pub async fn tx_status(&self, txid: &str) -> Result<TxStatusResponse, GatewayError> {
        self.get_json(&format!("v1/tx/{txid}/status")).await
    }

    /// `GET /v1/mempool?since=SEQ`.
    pub async fn mempool(&self, since: u64, limit: u32) -> Result<MempoolDelta, GatewayError> {
        self.get_json(&format!("v1/mempool?since={since}&limit={limit}"))
            .await
    }

    /// `GET /v1/address/{address}/utxos`.
    pub async fn utxos(&self, address: &str) -> Result<UtxosResponse, GatewayError> {
        self.get_json(&format!("v1/address/{address}/utxos")).await
    }

    /// Opens the `/v1/stream` WebSocket (ws:// or wss:// after the gateway's
    /// scheme).
    pub async fn stream(&self) -> Result<GatewayStream, GatewayError> {
        let mut url = self
            .base
            .join("v1/stream")
            .map_err(|e| GatewayError::BadUrl {
                url: self.base.to_string(),
                reason: e.to_string(),
            })?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme).map_err(|_| GatewayError::BadUrl {
            url: self.base.to_string(),
            reason: "cannot make a WebSocket URL of it".into(),
        })?;
        let connect = tokio_tungstenite::connect_async(url.as_str());
        let (socket, _) = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| GatewayError::Unreachable {
                url: self.base.to_string(),
                reason: "the stream did not open within 10 s".into(),
            })?
            .map_err(|e| GatewayError::Unreachable {
                url: self.base.to_string(),
                reason: e.to_string(),
            })?;
        Ok(GatewayStream { socket })
    }

    fn url_of(&self, path: &str) -> Result<reqwest::Url, GatewayError> {
        self.base.join(path).map_err(|e| GatewayError::BadUrl {
            url: path.to_owned(),
            reason: e.to_string(),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, GatewayError> {
        let request = self.http.get(self.url_of(path)?);
        self.send(request).await
    }

    async fn post_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, GatewayError> {
        let request = self.http.post(self.url_of(path)?).json(body);
        self.send(request).await
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, GatewayError> {
        let (_, body) = self.send_raw(request).await?;
        serde_json::from_slice(&body).map_err(|e| GatewayError::BadResponse(e.to_string()))
    }

    /// Sends a request and reads a successful answer's content type and
    /// body (at most [`MAX_RESPONSE_BYTES`]); an error answer becomes the
    /// matching [`GatewayError`].
    async fn send_raw(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(String, Vec<u8>), GatewayError> {
        let unreachable = |e: reqwest::Error| GatewayError::Unreachable {
            url: self.base.to_string(),
            reason: with_causes(&e.without_url()),
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        // Bounded: a gateway cannot make the wallet hold more than this.
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(GatewayError::BadResponse(format!(
                "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(GatewayError::BadResponse(format!(
                    "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ApiError>(&body) {
                Ok(err) if status.is_server_error() => GatewayError::Unavailable(err),
                Ok(err) => GatewayError::Refused(err),
                Err(_) if status.is_server_error() => GatewayError::Unavailable(ApiError::new(
                    "unavailable",
                    format!("HTTP {status}"),
                )),
                Err(_) => GatewayError::BadResponse(format!("HTTP {status} without an error body")),
            });
        }
        Ok((content_type, body))
    }
}

/// An error and its causes, "a: b: c" (reqwest's own message alone is often
/// just "error sending request").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

impl GatewayError {
    /// Whether trying again later may help (network trouble, 5xx), as
    /// opposed to a definite answer.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GatewayError::Unreachable { .. } | GatewayError::Unavailable(_)
        )
    }

    /// The API error code of a refusal, if it is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            GatewayError::Refused(e) | GatewayError::Unavailable(e) => Some(&e.code),
            _ => None,
        }
    }
}

/// The gateway's `/v1/stream` WebSocket.
pub struct GatewayStream {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl std::fmt::Debug for GatewayStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayStream").finish_non_exhaustive()
    }
}

impl GatewayStream {
    /// The next message; `None` when the gateway closed the stream.
    /// Messages that are not JSON `StreamMessage`s are skipped.
    pub async fn next(&mut self) -> Option<Result<StreamMessage, GatewayError>> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let message = match self.socket.next().await? {
                Ok(m) => m,
                Err(e) => {
                    return Some(Err(GatewayError::Unreachable {
                        url: "stream".into(),
                        reason: e.to_string(),
                    }));
                }
            };
            match message {
                Message::Text(text) => {
                    if let Ok(parsed) = serde_json::from_str::<StreamMessage>(text.as_str()) {
                        return Some(Ok(parsed));
                    }
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Subscribes to events of `addresses`.
    pub async fn subscribe(&mut self, addresses: Vec<String>) -> Result<(), GatewayError> {
        use futures_util::SinkExt;
        let text =
            serde_json::to_string(&notch_protocol::api::ClientMessage::Subscribe { addresses })
                .map_err(|e| GatewayError::BadResponse(e.to_string()))?;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await
            .map_err(|e| GatewayError::Unreachable {
                url: "stream".into(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_urls_that_are_not_http() {
        assert!(matches!(
            GatewayClient::new("ftp://x", false),
            Err(GatewayError::BadUrl { .. })
        ));
        assert!(matches!(
            GatewayClient::new("not a url", false),
            Err(GatewayError::BadUrl { .. })
        ));
    }

    #[test]
    fn joins_api_paths_under_a_prefix() {
        let client = GatewayClient::new("http://127.0.0.1:1/prefix", false).expect("valid url");
        assert_eq!(client.url(), "http://127.0.0.1:1/prefix/");
    }
}
