//! Tauri commands: thin wrappers over notch-core, typed by notch-ipc. Every
//! one returns `Result<T, CommandError>`; none may panic (the IPC would
//! carry no answer at all).

use notch_core::Recipient;
use notch_core::amount::{format_amount, format_signed};
use notch_core::protocol::{Address, AddressError};
use notch_core::wallet::HistoryPageFilter;
use notch_ipc::*;
use tauri::{AppHandle, Runtime, State};

use crate::errors;
use crate::state::{AppState, now_unix};

type Res<T> = Result<T, CommandError>;

/// The gateway's current status (never an error: unreachable is a status).
#[tauri::command]
pub async fn gateway_status(state: State<'_, AppState>) -> Res<GatewayStatus> {
    Ok(state.refresh_status().await)
}

/// Where the app stands: keystore, wallet (opens them on first call).
#[tauri::command]
pub async fn app_status<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Res<AppStatus> {
    state.ensure_started(&app).await;
    Ok(state.status())
}

#[tauri::command]
pub async fn begin_create(state: State<'_, AppState>, args: BeginCreateArgs) -> Res<NewPhrase> {
    state.begin_create(args.words)
}

#[tauri::command]
pub async fn finish_create<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    args: FinishCreateArgs,
) -> Res<AppStatus> {
    state.finish_create(&app, &args.answers).await
}

#[tauri::command]
pub async fn restore_wallet<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    args: RestoreArgs,
) -> Res<AppStatus> {
    state.restore(&app, &args.phrase).await
}

#[tauri::command]
pub async fn balances(state: State<'_, AppState>) -> Res<Vec<BalanceView>> {
    let wallet = state.wallet()?;
    let list = wallet.balances().await.map_err(errors::wallet)?;
    Ok(list
        .into_iter()
        .map(|b| BalanceView {
            confirmed: format_amount(b.confirmed, b.decimals),
            pending: format_amount(b.pending, b.decimals),
            pending_outgoing: format_amount(b.pending_outgoing, b.decimals),
            spendable: format_amount(b.spendable, b.decimals),
            asset: b.asset,
            symbol: b.symbol,
            name: b.name,
            decimals: b.decimals,
        })
        .collect())
}

#[tauri::command]
pub async fn sync_state(state: State<'_, AppState>) -> Res<SyncView> {
    let wallet = state.wallet()?;
    let mut view = state.sync_view();
    let core = wallet.sync_status().await.map_err(errors::wallet)?;
    view.height = core.height.or(view.height);
    view.unreachable_since = core.unreachable_since;
    if view.unreachable_since.is_none() {
        view.unreachable_reason = None;
    }
    Ok(view)
}

/// One sync pass now (the "retry" of the sync line).
#[tauri::command]
pub async fn sync_now(state: State<'_, AppState>) -> Res<SyncView> {
    let wallet = state.wallet()?;
    wallet.sync().await.map_err(errors::sync)?;
    let mut view = state.sync_view();
    let core = wallet.sync_status().await.map_err(errors::wallet)?;
    view.height = core.height;
    view.unreachable_since = core.unreachable_since;
    view.syncing = false;
    view.progress = None;
    Ok(view)
}

#[tauri::command]
pub async fn receive_address(state: State<'_, AppState>) -> Res<ReceiveView> {
    let wallet = state.wallet()?;
    let address = wallet.receive_address().await.map_err(errors::wallet)?;
    receive_view(address)
}

#[tauri::command]
pub async fn unused_address(state: State<'_, AppState>) -> Res<ReceiveView> {
    let wallet = state.wallet()?;
    let address = wallet.unused_address().await.map_err(errors::wallet)?;
    receive_view(address)
}

fn receive_view(address: String) -> Res<ReceiveView> {
    let qr_svg = qr_svg(&address)?;
    Ok(ReceiveView { address, qr_svg })
}

/// The address as an SVG QR code (notch-core renders it: no network, no JS).
pub fn qr_svg(text: &str) -> Res<String> {
    notch_core::qr::encode_svg(text).map_err(errors::qr)
}

/// The assets the wallet pinned from its gateway (none before its first
/// sync, nor without a wallet).
#[tauri::command]
pub async fn assets(state: State<'_, AppState>) -> Res<Vec<AssetView>> {
    let list = state.wallet().map(|w| w.assets()).unwrap_or_default();
    Ok(list
        .into_iter()
        .map(|a| AssetView {
            id: a.id,
            symbol: a.symbol,
            name: a.name,
            decimals: a.decimals,
            native: a.native,
        })
        .collect())
}

/// Checks an address for form and network, as the person types.
#[tauri::command]
pub async fn validate_address(state: State<'_, AppState>, args: AddressArgs) -> Res<()> {
    let wallet = state.wallet()?;
    check_address(&args.address, wallet.network())
}

pub fn check_address(address: &str, network: notch_core::Network) -> Res<()> {
    match Address::parse(address, network) {
        Ok(_) => Ok(()),
        Err(e @ AddressError::WrongNetwork { .. }) => {
            Err(CommandError::new(code::WRONG_NETWORK, e.to_string()))
        }
        Err(e) => Err(CommandError::new(code::BAD_ADDRESS, e.to_string())),
    }
}

/// Checks an amount against its asset's decimals (core's check, on the
/// pinned asset metadata); returns it as it will be sent (normalized).
#[tauri::command]
pub async fn validate_amount(state: State<'_, AppState>, args: AmountArgs) -> Res<String> {
    let wallet = state.wallet()?;
    let checked = wallet
        .check_amount(args.asset.as_deref(), &args.amount)
        .map_err(errors::payment)?;
    Ok(checked.display)
}

#[tauri::command]
pub async fn prepare_send(state: State<'_, AppState>, args: SendArgs) -> Res<ProposalView> {
    let wallet = state.wallet()?;
    let recipients: Vec<Recipient> = args
        .recipients
        .into_iter()
        .map(|r| Recipient {
            address: r.address.trim().to_owned(),
            amount: r.amount.trim().to_owned(),
            asset: r.asset.filter(|a| !a.trim().is_empty()),
        })
        .collect();
    let proposal = wallet
        .prepare_send(&recipients)
        .await
        .map_err(errors::send)?;
    let view = ProposalView {
        txid: proposal.txid.clone(),
        recipients: proposal
            .recipients
            .iter()
            .map(|o| OutputView {
                address: o.address.clone(),
                symbol: o.symbol.clone(),
                amount: format_amount(o.amount, o.decimals),
            })
            .collect(),
        fee: format_amount(proposal.fee, proposal.fee_decimals),
        fee_symbol: proposal.fee_symbol.clone(),
        totals: proposal
            .totals
            .iter()
            .map(|t| TotalView {
                symbol: t.symbol.clone(),
                amount: format_amount(t.amount, t.decimals),
                fee: format_amount(t.fee, t.decimals),
                total: format_amount(t.amount.saturating_add(t.fee), t.decimals),
                change: format_amount(t.change, t.decimals),
            })
            .collect(),
        size: proposal.size,
    };
    state.keep_proposal(proposal);
    Ok(view)
}

#[tauri::command]
pub async fn confirm_send(state: State<'_, AppState>, args: TxidArgs) -> Res<TxStatusView> {
    let wallet = state.wallet()?;
    let proposal = state.take_proposal(&args.txid).ok_or_else(|| {
        CommandError::new(
            code::UNKNOWN_PROPOSAL,
            "this payment is no longer ready to send; review it again",
        )
    })?;
    let txid = wallet.confirm_send(&proposal).await.map_err(errors::send)?;
    tx_status_of(&wallet, &txid).await
}

#[tauri::command]
pub async fn tx_status(state: State<'_, AppState>, args: TxidArgs) -> Res<TxStatusView> {
    let wallet = state.wallet()?;
    tx_status_of(&wallet, &args.txid).await
}

async fn tx_status_of(wallet: &notch_core::Wallet, txid: &str) -> Res<TxStatusView> {
    let s = wallet.tx_status(txid).await.map_err(errors::wallet)?;
    Ok(TxStatusView {
        txid: s.txid,
        state: s.state.as_str().to_owned(),
        confirmations: s.confirmations,
        block_height: s.block_height,
        reason: s.reason,
    })
}

fn history_filter(query: HistoryQuery) -> HistoryPageFilter {
    HistoryPageFilter {
        asset: query.asset.filter(|a| !a.trim().is_empty()),
        incoming: query.incoming,
        search: query.search.filter(|s| !s.trim().is_empty()),
        ..HistoryPageFilter::default()
    }
}

/// One page of the history (`Wallet::history_page`: keyset pages from the
/// tables the store keeps), at most `HISTORY_PAGE_MAX` rows.
#[tauri::command]
pub async fn history(state: State<'_, AppState>, args: HistoryArgs) -> Res<HistoryPageView> {
    let wallet = state.wallet()?;
    let fee_decimals = wallet.find_asset(None).map(|a| a.decimals).unwrap_or(0);
    let limit = match args.limit {
        None | Some(0) => HISTORY_PAGE,
        Some(n) => n.min(HISTORY_PAGE_MAX),
    };
    let before = args.before.filter(|b| !b.trim().is_empty());
    let started = std::time::Instant::now();
    let page = wallet
        .history_page_at(
            history_filter(args.query),
            before,
            args.skip,
            limit as usize,
        )
        .await
        .map_err(errors::wallet)?;
    tracing::debug!(
        skip = args.skip,
        rows = page.rows.len(),
        ms = started.elapsed().as_millis() as u64,
        "history page"
    );
    let top = page
        .rows
        .first()
        .and_then(|r| notch_core::store::history::cursor_from(&r.cursor));
    Ok(HistoryPageView {
        rows: page
            .rows
            .into_iter()
            .map(|e| HistoryRow {
                txid: e.txid,
                state: e.state.as_str().to_owned(),
                confirmations: e.confirmations,
                block_height: e.block_height,
                time: e.time,
                incoming: e.incoming,
                fee: e.fee.map(|f| format_amount(f, fee_decimals)),
                amounts: e
                    .amounts
                    .into_iter()
                    .map(|a| HistoryAmountView {
                        net: format_signed(a.net, a.decimals),
                        symbol: a.symbol,
                    })
                    .collect(),
                counterparties: e.counterparties,
                reason: e.reason,
            })
            .collect(),
        next: page.next_cursor,
        total: page.total,
        top,
    })
}

/// Every row of a History query from `top` down, as
/// [`notch_ipc::history_index`] bytes: the list draws rows from it while
/// their pages are on the way. Raw bytes over the IPC (an `ArrayBuffer` in
/// the page): 13 bytes a row and each distinct amount text once, where JSON
/// would be several times that and parsed into objects.
#[tauri::command]
pub async fn history_index(
    state: State<'_, AppState>,
    args: HistoryIndexArgs,
) -> Res<tauri::ipc::Response> {
    let wallet = state.wallet()?;
    let top = args.top.filter(|t| !t.trim().is_empty());
    let started = std::time::Instant::now();
    let index = wallet
        .history_index(history_filter(args.query), top)
        .await
        .map_err(errors::wallet)?;
    let records = &index.rows;
    let mut writer =
        notch_ipc::history_index::HistoryIndexWriter::with_capacity(records.rows.len());
    // Formatted once per distinct set of amounts (the writer stores each
    // text once too), not once per row.
    let mut texts: std::collections::HashMap<&[(u32, i128)], String> =
        std::collections::HashMap::new();
    for row in &records.rows {
        let effects = records.effects_of(row);
        let text = texts.entry(effects).or_insert_with(|| {
            let nets: Vec<(String, &str)> = effects
                .iter()
                .map(|(slot, net)| {
                    let (symbol, decimals) = index
                        .assets
                        .get(*slot as usize)
                        .map_or(("?", 0), |a| (a.symbol.as_str(), a.decimals));
                    (format_signed(*net, decimals), symbol)
                })
                .collect();
            notch_ipc::history_index::amounts_text(
                nets.iter().map(|(net, symbol)| (net.as_str(), *symbol)),
            )
        });
        writer
            .push(
                row.time,
                row.direction == notch_core::store::Direction::In,
                row.state.as_str(),
                text,
            )
            .map_err(|e| CommandError::new(code::INTERNAL, e.to_string()))?;
    }
    let bytes = writer.finish();
    tracing::debug!(
        rows = records.rows.len(),
        bytes = bytes.len(),
        ms = started.elapsed().as_millis() as u64,
        "history index"
    );
    Ok(tauri::ipc::Response::new(bytes))
}

/// Writes the (filtered) history as CSV, in notch-core's one format;
/// returns the file's path. The core streams it page by page into the
/// file (memory stays bounded by a page, whatever the history's length);
/// it is written beside the target and renamed into place at the end, so
/// a failed export leaves no half file under the name asked for.
#[tauri::command]
pub async fn export_csv(state: State<'_, AppState>, args: ExportArgs) -> Res<String> {
    let wallet = state.wallet()?;
    let path = match args.path.filter(|p| !p.trim().is_empty()) {
        Some(p) => std::path::PathBuf::from(p.trim()),
        None => state
            .data_dir()
            .join(format!("notch-history-{}.csv", now_unix())),
    };
    let io_error = |e: std::io::Error| {
        CommandError::new(code::IO, format!("cannot write {}: {e}", path.display()))
    };
    let part = {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".part");
        path.with_file_name(name)
    };
    let file = {
        let (target, part) = (path.clone(), part.clone());
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::File::create(&part)
        })
        .await
        .map_err(|e| CommandError::new(code::INTERNAL, e.to_string()))?
        .map_err(io_error)?
    };
    let written = wallet
        .export_history_page_csv(history_filter(args.query), 0, std::io::BufWriter::new(file))
        .await;
    let (target, staged) = (path.clone(), part.clone());
    let renamed = tokio::task::spawn_blocking(move || match written {
        Ok(_) => std::fs::rename(&staged, &target).map(|_| Ok(())),
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            Ok(Err(e))
        }
    })
    .await
    .map_err(|e| CommandError::new(code::INTERNAL, e.to_string()))?;
    renamed.map_err(io_error)?.map_err(errors::export)?;
    Ok(path.display().to_string())
}

#[tauri::command]
pub async fn notifications(state: State<'_, AppState>) -> Res<Vec<NotificationView>> {
    let wallet = state.wallet()?;
    let list = wallet.notifications(false).await.map_err(errors::wallet)?;
    Ok(list
        .into_iter()
        .map(|n| NotificationView {
            id: n.id,
            kind: n.kind.as_str().to_owned(),
            title: n.title,
            body: n.body,
            txid: n.txid.map(hex_encode),
            created_at: n.created_at,
            read: n.read,
        })
        .collect())
}

fn hex_encode(bytes: [u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tauri::command]
pub async fn mark_read(state: State<'_, AppState>, args: IdArgs) -> Res<()> {
    let wallet = state.wallet()?;
    wallet.mark_read(args.id).await.map_err(errors::wallet)
}

#[tauri::command]
pub async fn mark_all_read(state: State<'_, AppState>) -> Res<u64> {
    let wallet = state.wallet()?;
    let n = wallet.mark_all_read().await.map_err(errors::wallet)?;
    Ok(n as u64)
}
