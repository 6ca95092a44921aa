//! The authority key and asset issuers: generated into the data dir in sandbox mode, read
//! from files given by the operator otherwise.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use notch_protocol::ed25519_dalek::SigningKey;
use notch_protocol::{AssetId, Network, PublicKey, public_key};
use serde::{Deserialize, Serialize};

use crate::Config;
use crate::store::AssetMeta;

pub struct Setup {
    pub network: Network,
    pub authority: SigningKey,
    pub assets: Vec<AssetMeta>,
    /// Issuer keys the gateway holds (sandbox faucet); empty outside sandbox mode.
    pub issuers: HashMap<AssetId, SigningKey>,
}

/// File name of the sandbox keys inside the data dir.
pub const SANDBOX_KEYS_FILE: &str = "sandbox-keys.json";

/// Sandbox assets: symbol, name, decimals (the first is native).
pub const SANDBOX_ASSETS: [(&str, &str, u8); 3] = [
    ("NOTE", "Notch Note", 8),
    ("EURT", "Euro Token", 2),
    ("USDT", "US Dollar Token", 6),
];

#[derive(Serialize, Deserialize)]
struct SandboxKeys {
    /// SANDBOX ONLY: plaintext seeds, for development convenience.
    warning: String,
    authority: String,
    issuers: HashMap<String, String>,
}

fn random_seed() -> anyhow::Result<[u8; 32]> {
    let mut s = [0u8; 32];
    getrandom::fill(&mut s).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(s)
}

fn parse_seed(s: &str) -> anyhow::Result<SigningKey> {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut seed).context("a key must be 64 hex characters")?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Loads `sandbox-keys.json` from the data dir, or generates it (mode 0600).
pub fn sandbox_setup(dir: &Path) -> anyhow::Result<Setup> {
    let path = dir.join(SANDBOX_KEYS_FILE);
    let keys: SandboxKeys = if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?
    } else {
        let mut issuers = HashMap::new();
        for (symbol, _, _) in SANDBOX_ASSETS {
            issuers.insert(symbol.to_owned(), hex::encode(random_seed()?));
        }
        let keys = SandboxKeys {
            warning: "SANDBOX ONLY: these are plaintext private keys for a development ledger. Never use this for real value.".into(),
            authority: hex::encode(random_seed()?),
            issuers,
        };
        let text = serde_json::to_string_pretty(&keys)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        tracing::warn!(path = %path.display(), "generated sandbox keys (sandbox only: plaintext keys on disk)");
        keys
    };
    let authority = parse_seed(&keys.authority)?;
    let mut assets = Vec::new();
    let mut issuers = HashMap::new();
    for (i, (symbol, name, decimals)) in SANDBOX_ASSETS.into_iter().enumerate() {
        let seed = keys
            .issuers
            .get(symbol)
            .with_context(|| format!("{} lacks the {symbol} issuer", path.display()))?;
        let key = parse_seed(seed)?;
        let meta = AssetMeta {
            symbol: symbol.into(),
            name: name.into(),
            decimals,
            issuer: public_key(&key),
            native: i == 0,
        };
        issuers.insert(meta.id(), key);
        assets.push(meta);
    }
    Ok(Setup {
        network: Network::Sandbox,
        authority,
        assets,
        issuers,
    })
}

#[derive(Deserialize)]
struct AssetFileEntry {
    symbol: String,
    name: String,
    decimals: u8,
    issuer: String,
    native: bool,
}

/// Outside sandbox mode: network, authority key file and assets file are required.
pub fn operator_setup(config: &Config) -> anyhow::Result<Setup> {
    let network = match config.network {
        Some(crate::NetworkArg::Main) => Network::Main,
        Some(crate::NetworkArg::Test) => Network::Test,
        None => bail!("outside --sandbox, --network (main or test) is required"),
    };
    let key_path = config
        .authority_key_file
        .as_ref()
        .context("outside --sandbox, --authority-key-file is required")?;
    let authority = parse_seed(
        &std::fs::read_to_string(key_path)
            .with_context(|| format!("cannot read {}", key_path.display()))?,
    )?;
    let assets_path = config
        .assets_file
        .as_ref()
        .context("outside --sandbox, --assets-file is required")?;
    let entries: Vec<AssetFileEntry> = serde_json::from_str(
        &std::fs::read_to_string(assets_path)
            .with_context(|| format!("cannot read {}", assets_path.display()))?,
    )
    .with_context(|| format!("{} is not a JSON list of assets", assets_path.display()))?;
    let mut assets: Vec<AssetMeta> = Vec::new();
    for e in entries {
        if !notch_protocol::tx::valid_label(&e.symbol) {
            bail!("asset symbol {:?} must be 1-16 characters A-Z0-9", e.symbol);
        }
        let issuer = PublicKey::from_hex(&e.issuer)
            .map_err(|err| anyhow::anyhow!("issuer of {}: {err}", e.symbol))?;
        assets.push(AssetMeta {
            symbol: e.symbol,
            name: e.name,
            decimals: e.decimals,
            issuer,
            native: e.native,
        });
    }
    if assets.iter().filter(|a| a.native).count() != 1 {
        bail!("exactly one asset must be native");
    }
    assets.sort_by_key(|a| !a.native);
    Ok(Setup {
        network,
        authority,
        assets,
        issuers: HashMap::new(),
    })
}
