//! HTTP client of a gateway's mirror API (`/v1`).

use std::time::Duration;

use notch_protocol::api::{ApiError, LedgerInfo};

/// Why a call to the gateway failed, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the gateway URL {url:?} is not valid: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("the gateway at {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the gateway refused the request ({}): {}", .0.code, .0.message)]
    Refused(ApiError),
    #[error("the gateway sent an answer that is not valid: {0}")]
    BadResponse(String),
}

/// A client of one gateway. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GatewayClient {
    base: reqwest::Url,
    http: reqwest::Client,
}

impl GatewayClient {
    /// `url` is the gateway's root, e.g. `http://127.0.0.1:7420`.
    pub fn new(url: &str) -> Result<Self, GatewayError> {
        let bad = |reason: String| GatewayError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let mut base = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("only http and https are supported".into()));
        }
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

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, GatewayError> {
        let url = self.base.join(path).map_err(|e| GatewayError::BadUrl {
            url: path.to_owned(),
            reason: e.to_string(),
        })?;
        let unreachable = |e: reqwest::Error| GatewayError::Unreachable {
            url: self.base.to_string(),
            reason: e.without_url().to_string(),
        };
        let response = self.http.get(url).send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ApiError>(&body) {
                Ok(err) => GatewayError::Refused(err),
                Err(_) => GatewayError::BadResponse(format!("HTTP {status} without an error body")),
            });
        }
        serde_json::from_slice(&body).map_err(|e| GatewayError::BadResponse(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_urls_that_are_not_http() {
        assert!(matches!(
            GatewayClient::new("ftp://x"),
            Err(GatewayError::BadUrl { .. })
        ));
        assert!(matches!(
            GatewayClient::new("not a url"),
            Err(GatewayError::BadUrl { .. })
        ));
    }

    #[test]
    fn joins_api_paths_under_a_prefix() {
        let client = GatewayClient::new("http://127.0.0.1:1/prefix").expect("valid url");
        assert_eq!(client.url(), "http://127.0.0.1:1/prefix/");
    }
}
