//! What the wallet pins about a ledger, and the pure checks against it.
//!
//! At first contact (or from a network file the operator publishes, so that
//! first contact need not be trusted) the wallet pins, per network: the
//! authority key, the genesis, the assets (id = H(issuer, symbol), symbol,
//! decimals, issuer, which one is native), the fee rule and the finality
//! depth. Every later `/v1/info` is compared with the pin; a change is
//! refused with its reason ([ADR 5](../../docs/adr/0005-pinned-ledger-metadata.md)).
//! New assets may appear (their id must be H(issuer, symbol) and their
//! symbol new); an asset never changes and never disappears from the pin.

use notch_protocol::api::{AssetInfo, LedgerInfo, ParamsInfo};
use notch_protocol::{AssetId, BlockId, Network, PublicKey};
use serde::{Deserialize, Serialize};

/// The ledger's identity, as its operator publishes it (`network.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkFile {
    pub network: Network,
    /// The authority's Ed25519 public key, hex.
    pub authority_key: String,
    /// The genesis block's id, hex.
    pub genesis: String,
    /// A block the chain must contain: (height, id hex).
    #[serde(default)]
    pub checkpoint: Option<(u64, String)>,
    /// The ledger's assets and rules, if the operator publishes them: then
    /// they are pinned from the file, not from first contact.
    #[serde(default)]
    pub assets: Option<Vec<AssetInfo>>,
    #[serde(default)]
    pub params: Option<ParamsInfo>,
}

/// Why a network file is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkFileError {
    #[error("the network file is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("the network file's {field} is not valid hex of the right length")]
    BadHex { field: &'static str },
}

impl NetworkFile {
    pub fn from_json(text: &str) -> Result<Self, NetworkFileError> {
        let file: NetworkFile =
            serde_json::from_str(text).map_err(|e| NetworkFileError::Json(e.to_string()))?;
        file.authority()?;
        file.genesis_id()?;
        if let Some((_, id)) = &file.checkpoint {
            BlockId::from_hex(id).map_err(|_| NetworkFileError::BadHex {
                field: "checkpoint",
            })?;
        }
        Ok(file)
    }

    /// The metadata pin the file gives, if it lists assets and rules
    /// (checked like first contact).
    pub fn pinned(&self) -> Result<Option<Pinned>, MetadataChange> {
        let (Some(assets), Some(params)) = (&self.assets, &self.params) else {
            return Ok(None);
        };
        let info = LedgerInfo {
            network: self.network.name().to_owned(),
            authority_key: self.authority_key.to_ascii_lowercase(),
            assets: assets.clone(),
            tip: notch_protocol::api::TipInfo {
                height: 0,
                hash: String::new(),
                time: 0,
            },
            sandbox: false,
            params: params.clone(),
        };
        check_info(None, &info).map(Some)
    }

    pub fn authority(&self) -> Result<PublicKey, NetworkFileError> {
        PublicKey::from_hex(&self.authority_key).map_err(|_| NetworkFileError::BadHex {
            field: "authority_key",
        })
    }

    pub fn genesis_id(&self) -> Result<BlockId, NetworkFileError> {
        BlockId::from_hex(&self.genesis).map_err(|_| NetworkFileError::BadHex { field: "genesis" })
    }
}

/// A short, readable fingerprint of an authority key to compare out of
/// band (as SSH shows a host key): the first 16 bytes of
/// SHA-256(key), hex in groups of four.
pub fn fingerprint(authority_key_hex: &str) -> String {
    use sha2::Digest;
    let bytes = hex::decode(authority_key_hex.trim()).unwrap_or_default();
    let digest = sha2::Sha256::digest(&bytes);
    hex::encode(&digest[..16])
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// Whether a gateway URL may be used: `https://` anywhere, `http://` only
/// to a loopback address unless the person explicitly allowed plain HTTP.
pub fn url_allowed(url: &reqwest::Url, allow_insecure_http: bool) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(
                    "plain http:// is allowed only to this machine (127.0.0.1, [::1], localhost): \
                     anyone on the way could answer for the gateway. Use https://, or, if you \
                     really mean it, allow plain HTTP on purpose (notch --danger-allow-plain-http)"
                        .into(),
                )
            }
        }
        other => Err(format!("the scheme {other}:// is not supported")),
    }
}

/// What changed in the ledger's metadata since it was pinned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MetadataChange(pub String);

/// The pinned metadata: the ledger info of first contact without its tip
/// (the tip is not metadata), with assets checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinned {
    pub network: String,
    pub authority_key: String,
    pub assets: Vec<AssetInfo>,
    pub params: ParamsInfo,
}

fn check_asset_id(a: &AssetInfo) -> Result<(), MetadataChange> {
    let issuer = PublicKey::from_hex(&a.issuer).map_err(|_| {
        MetadataChange(format!(
            "asset {} has no valid issuer key, so its id cannot be checked",
            a.symbol
        ))
    })?;
    if a.symbol.is_empty() || a.symbol.len() > 255 {
        return Err(MetadataChange(format!(
            "asset symbol {:?} is not valid",
            a.symbol
        )));
    }
    let id = AssetId::derive(&issuer, &a.symbol);
    if !id.to_hex().eq_ignore_ascii_case(&a.id) {
        return Err(MetadataChange(format!(
            "asset {}'s id {} is not H(issuer, symbol) = {}",
            a.symbol,
            a.id,
            id.to_hex()
        )));
    }
    if a.decimals > 18 {
        return Err(MetadataChange(format!(
            "asset {} claims {} decimals (at most 18)",
            a.symbol, a.decimals
        )));
    }
    Ok(())
}

fn normalized(a: &AssetInfo) -> AssetInfo {
    AssetInfo {
        id: a.id.to_ascii_lowercase(),
        issuer: a.issuer.to_ascii_lowercase(),
        ..a.clone()
    }
}

/// Checks served ledger info against the pin (`None`: first contact) and
/// returns the pin to keep. Pure.
pub fn check_info(pinned: Option<&Pinned>, served: &LedgerInfo) -> Result<Pinned, MetadataChange> {
    let served_assets: Vec<AssetInfo> = served.assets.iter().map(normalized).collect();
    for a in &served_assets {
        check_asset_id(a)?;
    }
    let natives = served_assets.iter().filter(|a| a.native).count();
    if natives != 1 {
        return Err(MetadataChange(format!(
            "the ledger lists {natives} native assets (exactly one pays the fees)"
        )));
    }
    for (i, a) in served_assets.iter().enumerate() {
        if served_assets[..i]
            .iter()
            .any(|b| b.id == a.id || b.symbol.eq_ignore_ascii_case(&a.symbol))
        {
            return Err(MetadataChange(format!(
                "asset {} is listed twice",
                a.symbol
            )));
        }
    }
    let Some(pin) = pinned else {
        return Ok(Pinned {
            network: served.network.clone(),
            authority_key: served.authority_key.to_ascii_lowercase(),
            assets: served_assets,
            params: served.params.clone(),
        });
    };
    let p = &pin.params;
    let s = &served.params;
    if (p.min_fee_base, p.min_fee_per_byte) != (s.min_fee_base, s.min_fee_per_byte) {
        return Err(MetadataChange(format!(
            "the fee rule changed from {} + {}/byte to {} + {}/byte",
            p.min_fee_base, p.min_fee_per_byte, s.min_fee_base, s.min_fee_per_byte
        )));
    }
    if p.finality_depth != s.finality_depth {
        return Err(MetadataChange(format!(
            "the finality depth changed from {} to {}",
            p.finality_depth, s.finality_depth
        )));
    }
    let mut assets = pin.assets.clone();
    for old in &pin.assets {
        match served_assets.iter().find(|a| a.id == old.id) {
            None => {
                return Err(MetadataChange(format!(
                    "asset {} ({}) is no longer listed",
                    old.symbol, old.id
                )));
            }
            Some(new) if new != old => {
                let what = if new.decimals != old.decimals {
                    format!("decimals from {} to {}", old.decimals, new.decimals)
                } else if new.symbol != old.symbol {
                    format!("symbol from {} to {}", old.symbol, new.symbol)
                } else if new.native != old.native {
                    "which asset is native".to_owned()
                } else if new.name != old.name {
                    format!("name from {:?} to {:?}", old.name, new.name)
                } else {
                    "issuer".to_owned()
                };
                return Err(MetadataChange(format!(
                    "asset {} changed its {what}",
                    old.symbol
                )));
            }
            Some(_) => {}
        }
    }
    for new in &served_assets {
        if pin.assets.iter().any(|a| a.id == new.id) {
            continue;
        }
        if pin
            .assets
            .iter()
            .any(|a| a.symbol.eq_ignore_ascii_case(&new.symbol))
        {
            return Err(MetadataChange(format!(
                "a second asset calls itself {} (id {})",
                new.symbol, new.id
            )));
        }
        if new.native {
            return Err(MetadataChange(format!(
                "new asset {} claims to be the native asset",
                new.symbol
            )));
        }
        assets.push(new.clone());
    }
    Ok(Pinned {
        assets,
        ..pin.clone()
    })
}

impl Pinned {
    /// The pinned metadata as ledger info (with `tip` from the served one),
    /// which is what the rest of the wallet uses.
    pub fn as_info(&self, served: &LedgerInfo) -> LedgerInfo {
        LedgerInfo {
            network: self.network.clone(),
            authority_key: self.authority_key.clone(),
            assets: self.assets.clone(),
            tip: served.tip.clone(),
            sandbox: served.sandbox,
            params: ParamsInfo {
                // Informational fields follow the gateway; the rules are pinned.
                block_interval_secs: served.params.block_interval_secs,
                max_headers_per_request: served.params.max_headers_per_request,
                max_blocks_per_request: served.params.max_blocks_per_request,
                max_tx_bytes: served.params.max_tx_bytes,
                ..self.params.clone()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use notch_protocol::public_key;

    use super::*;

    fn asset(symbol: &str, decimals: u8, native: bool, seed: u8) -> AssetInfo {
        let issuer = public_key(&SigningKey::from_bytes(&[seed; 32]));
        AssetInfo {
            id: AssetId::derive(&issuer, symbol).to_hex(),
            symbol: symbol.into(),
            name: symbol.into(),
            decimals,
            native,
            issuer: issuer.to_hex(),
        }
    }

    fn info(assets: Vec<AssetInfo>) -> LedgerInfo {
        LedgerInfo {
            network: "sandbox".into(),
            authority_key: "11".repeat(32),
            assets,
            tip: notch_protocol::api::TipInfo {
                height: 0,
                hash: String::new(),
                time: 0,
            },
            sandbox: true,
            params: ParamsInfo::default(),
        }
    }

    #[test]
    fn metadata_is_pinned() {
        let first = info(vec![asset("NOTE", 8, true, 1), asset("EURT", 2, false, 2)]);
        let pin = check_info(None, &first).expect("first contact");
        assert_eq!(check_info(Some(&pin), &first).expect("same"), pin);
        // Decimals, symbol, native flag, fee rule, finality: refused.
        let mut more = first.clone();
        more.assets[0].decimals = 11;
        let err = check_info(Some(&pin), &more).expect_err("decimals");
        assert!(err.0.contains("decimals from 8 to 11"), "{err}");
        let mut fee = first.clone();
        fee.params.min_fee_per_byte = 1;
        assert!(check_info(Some(&pin), &fee).is_err());
        let mut fin = first.clone();
        fin.params.finality_depth = 1;
        assert!(check_info(Some(&pin), &fin).is_err());
        let mut gone = first.clone();
        gone.assets.pop();
        assert!(check_info(Some(&pin), &gone).is_err());
        // A new asset with a fresh symbol is added; a second NOTE is not.
        let mut added = first.clone();
        added.assets.push(asset("USDT", 6, false, 3));
        assert_eq!(
            check_info(Some(&pin), &added).expect("added").assets.len(),
            3
        );
        let mut twin = first.clone();
        twin.assets.push(asset("NOTE", 8, false, 4));
        assert!(check_info(Some(&pin), &twin).is_err());
        // An id that is not H(issuer, symbol) is refused at first contact.
        let mut forged = first.clone();
        forged.assets[1].id = forged.assets[0].id.clone();
        assert!(check_info(None, &forged).is_err());
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let ok = |u: &str, insecure| url_allowed(&reqwest::Url::parse(u).expect("url"), insecure);
        assert!(ok("https://gateway.example", false).is_ok());
        assert!(ok("http://127.0.0.1:7420", false).is_ok());
        assert!(ok("http://[::1]:7420", false).is_ok());
        assert!(ok("http://localhost:7420", false).is_ok());
        assert!(ok("http://gateway.example", false).is_err());
        assert!(ok("http://10.0.0.1", false).is_err());
        assert!(ok("http://gateway.example", true).is_ok());
    }

    #[test]
    fn network_files_parse_and_fingerprints_read() {
        let json = format!(
            r#"{{"network":"sandbox","authority_key":"{}","genesis":"{}","checkpoint":[10,"{}"]}}"#,
            "ab".repeat(32),
            "cd".repeat(32),
            "ef".repeat(32)
        );
        let file = NetworkFile::from_json(&json).expect("parses");
        assert_eq!(file.network, Network::Sandbox);
        assert!(NetworkFile::from_json(r#"{"network":"sandbox"}"#).is_err());
        assert!(NetworkFile::from_json(&json.replace(&"ab".repeat(32), "zz")).is_err());
        let fp = fingerprint(&"ab".repeat(32));
        assert_eq!(fp.len(), 32 + 7);
        assert_eq!(fp, fingerprint(&"AB".repeat(32)));
    }
}
