//! Is the gateway there, and which network is a wallet on? Two questions
//! every shell asks, answered once here.
//!
//! - [`choose_network`] is the one rule for the network of a wallet: the
//!   network it was created on if it exists; else the one its gateway
//!   serves; else the one the person named. A name the person gave must
//!   agree with whichever of those is known.
//! - [`Wallet::check_gateway`] asks the wallet's gateway for `/v1/info`
//!   now and reports [`GatewayReachability`]; "unreachable since" is the
//!   wallet's own record (what its sync noticed), so the status line and
//!   the sync never disagree. Before there is a wallet, [`GatewayProbe`]
//!   asks the same question of a URL and remembers since when it fails.

use std::sync::Mutex;

use notch_protocol::Network;
use notch_protocol::api::LedgerInfo;
use serde::Serialize;

use crate::context::{Inner, lock, unix_now};
use crate::gateway::{GatewayClient, GatewayError};

/// Why no network could be settled on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("unknown network {name:?}: use main, test or sandbox")]
    Unknown { name: String },
    #[error(
        "the wallet here is on network {stored}, but {requested} was asked for; use the matching network or another data directory"
    )]
    StoredDiffers { stored: String, requested: String },
    #[error(
        "the gateway at {url} serves network {served:?}, which this version of Notch does not know"
    )]
    UnknownServed { url: String, served: String },
    #[error(
        "the gateway at {url} serves network {served}, but {requested} was asked for; point the wallet at a {requested} gateway or ask for {served}"
    )]
    Mismatch {
        url: String,
        served: String,
        requested: String,
    },
    #[error("cannot tell which network to use: {reason}; name the network explicitly")]
    Undetermined { reason: String },
}

/// A network by name: `main`, `test`, `sandbox` (any case, trimmed; also
/// `mainnet`, `testnet`).
pub fn parse_network(name: &str) -> Result<Network, NetworkError> {
    let lower = name.trim().to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "mainnet" => "main",
        "testnet" => "test",
        other => other,
    };
    Network::from_name(canonical).ok_or_else(|| NetworkError::Unknown {
        name: name.to_owned(),
    })
}

/// The network of a wallet, by the one rule every shell follows:
///
/// 1. `requested` (a name the person gave, if any) must be a known network;
/// 2. a wallet that exists (`stored`, from [`Wallet::stored_network`]) stays
///    on its network; `requested` must agree;
/// 3. else a gateway that answered (`gateway`) decides; `requested` must
///    agree;
/// 4. else (no gateway asked, or it did not answer) `requested` decides;
/// 5. else there is no way to tell: [`NetworkError::Undetermined`].
///
/// Whether the gateway of an existing wallet serves its network is for
/// the sync to check (it refuses a gateway of another network).
pub fn choose_network(
    requested: Option<&str>,
    stored: Option<Network>,
    gateway: Option<&GatewayReachability>,
) -> Result<Network, NetworkError> {
    let requested = requested
        .filter(|r| !r.trim().is_empty())
        .map(parse_network)
        .transpose()?;
    if let Some(stored) = stored {
        return match requested {
            Some(r) if r != stored => Err(NetworkError::StoredDiffers {
                stored: stored.name().into(),
                requested: r.name().into(),
            }),
            _ => Ok(stored),
        };
    }
    match (gateway, requested) {
        (Some(GatewayReachability::Reachable { url, network, .. }), requested) => {
            let served = parse_network(network).map_err(|_| NetworkError::UnknownServed {
                url: url.clone(),
                served: network.clone(),
            })?;
            match requested {
                Some(r) if r != served => Err(NetworkError::Mismatch {
                    url: url.clone(),
                    served: served.name().into(),
                    requested: r.name().into(),
                }),
                _ => Ok(served),
            }
        }
        (_, Some(r)) => Ok(r),
        (Some(GatewayReachability::Unreachable { url, reason, .. }), None) => {
            Err(NetworkError::Undetermined {
                reason: format!("the gateway at {url} cannot be reached ({reason})"),
            })
        }
        (None, None) => Err(NetworkError::Undetermined {
            reason: "no network was named and no gateway was asked".into(),
        }),
    }
}

/// Whether a gateway answers, as a status line shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GatewayReachability {
    /// `/v1/info` answered (its tip is `tip_height`).
    Reachable {
        url: String,
        network: String,
        tip_height: u64,
        sandbox: bool,
    },
    /// No usable answer: not reachable, a 5xx, or an answer that is not
    /// valid. `since` (Unix seconds) is when the failing started.
    Unreachable {
        url: String,
        reason: String,
        since: u64,
    },
}

impl GatewayReachability {
    pub fn is_reachable(&self) -> bool {
        matches!(self, GatewayReachability::Reachable { .. })
    }

    pub fn url(&self) -> &str {
        match self {
            GatewayReachability::Reachable { url, .. }
            | GatewayReachability::Unreachable { url, .. } => url,
        }
    }

    fn from_answer(
        url: &str,
        answer: &Result<LedgerInfo, GatewayError>,
        since: impl FnOnce() -> u64,
    ) -> Self {
        match answer {
            Ok(info) => GatewayReachability::Reachable {
                url: url.to_owned(),
                network: info.network.clone(),
                tip_height: info.tip.height,
                sandbox: info.sandbox,
            },
            Err(e) => GatewayReachability::Unreachable {
                url: url.to_owned(),
                reason: reason_of(e),
                since: since(),
            },
        }
    }
}

/// The part of a gateway error a status line shows (the URL is beside it).
fn reason_of(e: &GatewayError) -> String {
    match e {
        GatewayError::Unreachable { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// Asks the wallet's gateway for `/v1/info` now. When it fails,
/// `since` is when the wallet's sync first found the gateway
/// unreachable ([`sync_status`](crate::Wallet::sync_status)), or now if the
/// sync has not noticed (yet, or because the gateway answers, but
/// with nonsense). Changes nothing in the wallet: the sync alone
/// records reachability, sends its events and notifications.
pub(crate) async fn check_gateway(inner: &Inner) -> GatewayReachability {
    let gateway = &inner.gateway;
    let answer = gateway.info().await;
    GatewayReachability::from_answer(gateway.url(), &answer, || {
        inner.unreachable_since().unwrap_or_else(unix_now)
    })
}

/// Asks a gateway whether it is there before a wallet exists (onboarding),
/// and remembers since when it has been failing. Cheap to keep; one HTTP
/// client inside.
#[derive(Debug)]
pub struct GatewayProbe {
    client: GatewayClient,
    failing_since: Mutex<Option<u64>>,
}

impl GatewayProbe {
    /// A probe of the gateway at `url` (refused if it is not an http(s)
    /// URL, or plain http to another machine without `allow_insecure_http`).
    pub fn new(url: &str, allow_insecure_http: bool) -> Result<Self, GatewayError> {
        Ok(Self {
            client: GatewayClient::new(url, allow_insecure_http)?,
            failing_since: Mutex::new(None),
        })
    }

    /// The gateway's URL, normalized.
    pub fn url(&self) -> &str {
        self.client.url()
    }

    /// Asks `/v1/info` now.
    pub async fn check(&self) -> GatewayReachability {
        let answer = self.client.info().await;
        let mut since = lock(&self.failing_since);
        if answer.is_ok() {
            *since = None;
        }
        GatewayReachability::from_answer(self.client.url(), &answer, || {
            *since.get_or_insert_with(unix_now)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Wallet;

    fn reachable(network: &str) -> GatewayReachability {
        GatewayReachability::Reachable {
            url: "http://gw/".into(),
            network: network.into(),
            tip_height: 1,
            sandbox: true,
        }
    }

    fn unreachable() -> GatewayReachability {
        GatewayReachability::Unreachable {
            url: "http://gw/".into(),
            reason: "connection refused".into(),
            since: 5,
        }
    }

    #[test]
    fn network_names() {
        assert_eq!(parse_network("sandbox"), Ok(Network::Sandbox));
        assert_eq!(parse_network(" Main "), Ok(Network::Main));
        assert_eq!(parse_network("TESTNET"), Ok(Network::Test));
        let e = parse_network("moon").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown network \"moon\": use main, test or sandbox"
        );
    }

    #[test]
    fn an_existing_wallet_keeps_its_network() {
        let s = Some(Network::Test);
        assert_eq!(choose_network(None, s, None), Ok(Network::Test));
        assert_eq!(choose_network(Some("test"), s, None), Ok(Network::Test));
        // The gateway does not move an existing wallet.
        assert_eq!(
            choose_network(None, s, Some(&reachable("main"))),
            Ok(Network::Test)
        );
        let e = choose_network(Some("main"), s, None).unwrap_err();
        assert!(matches!(e, NetworkError::StoredDiffers { .. }), "{e}");
        assert!(e.to_string().contains("on network test"), "{e}");
    }

    #[test]
    fn a_new_wallet_follows_its_gateway() {
        assert_eq!(
            choose_network(None, None, Some(&reachable("sandbox"))),
            Ok(Network::Sandbox)
        );
        assert_eq!(
            choose_network(Some("sandbox"), None, Some(&reachable("sandbox"))),
            Ok(Network::Sandbox)
        );
        assert_eq!(
            choose_network(Some(""), None, Some(&reachable("main"))),
            Ok(Network::Main)
        );
        let e = choose_network(Some("main"), None, Some(&reachable("sandbox"))).unwrap_err();
        assert!(matches!(e, NetworkError::Mismatch { .. }), "{e}");
        assert!(e.to_string().contains("serves network sandbox"), "{e}");
        let e = choose_network(None, None, Some(&reachable("mars"))).unwrap_err();
        assert!(matches!(e, NetworkError::UnknownServed { .. }), "{e}");
    }

    #[test]
    fn without_a_gateway_the_named_network_decides() {
        assert_eq!(
            choose_network(Some("test"), None, Some(&unreachable())),
            Ok(Network::Test)
        );
        assert_eq!(choose_network(Some("main"), None, None), Ok(Network::Main));
        let e = choose_network(None, None, Some(&unreachable())).unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot be reached (connection refused)"),
            "{e}"
        );
        assert!(matches!(
            choose_network(None, None, None),
            Err(NetworkError::Undetermined { .. })
        ));
        assert!(matches!(
            choose_network(Some("moon"), Some(Network::Main), None),
            Err(NetworkError::Unknown { .. })
        ));
    }

    #[tokio::test]
    async fn a_silent_gateway_is_unreachable_since_the_first_failure() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let probe = GatewayProbe::new(&format!("http://127.0.0.1:{port}"), false).unwrap();
        let first = probe.check().await;
        let GatewayReachability::Unreachable { since, .. } = first else {
            panic!("{first:?}");
        };
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        match probe.check().await {
            GatewayReachability::Unreachable { since: again, .. } => assert_eq!(again, since),
            other => panic!("{other:?}"),
        }
        assert!(GatewayProbe::new("ftp://x", false).is_err());
    }

    #[tokio::test]
    async fn a_wallet_reports_its_gateway_unreachable_without_changing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = crate::WalletConfig::new(
            dir.path(),
            &format!("http://127.0.0.1:{port}"),
            Network::Sandbox,
        );
        let store: std::sync::Arc<dyn crate::secrets::SecretStore> =
            std::sync::Arc::new(crate::secrets::MemorySecretStore::new());
        let (wallet, _) = Wallet::create(config, store, crate::keys::WordCount::Twelve)
            .await
            .unwrap();
        let before = unix_now();
        match wallet.check_gateway().await {
            GatewayReachability::Unreachable { url, since, .. } => {
                assert_eq!(url, format!("http://127.0.0.1:{port}/"));
                assert!(since >= before, "{since} {before}");
            }
            other => panic!("{other:?}"),
        }
        // The sync alone records reachability.
        assert_eq!(wallet.sync_status().await.unwrap().unreachable_since, None);
        // Nor is anything known of the assets before a sync.
        assert_eq!(
            wallet.check_amount(None, "1"),
            Err(crate::PaymentError::NotSynced)
        );
        let mut csv = Vec::new();
        let rows = wallet
            .export_history_csv(crate::HistoryFilter::default(), &mut csv)
            .await
            .unwrap();
        assert_eq!(rows, 0);
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            format!("{}\r\n", crate::export::HEADER.join(","))
        );
    }

    #[test]
    fn reachability_has_a_tagged_json_form() {
        let json = serde_json::to_value(reachable("sandbox")).unwrap();
        assert_eq!(json["state"], "reachable");
        assert_eq!(json["tip_height"], 1);
        let json = serde_json::to_value(unreachable()).unwrap();
        assert_eq!(json["state"], "unreachable");
        assert_eq!(json["since"], 5);
    }
}
