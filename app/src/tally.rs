//! The tally commands (`notch_ipc::tally::command`): thin wrappers of the
//! core's tally API, and the views the UI shows. What a state means, how
//! an amount is read or written, whether an action is allowed: notch-core
//! decides; here it is only put in the IPC's words.

use std::time::Duration;

use notch_core::agent::{ChitInfo, TallyDetail, TallyInfo, TicketOptions};
use notch_core::tally::lifecycle::TallyState;
use notch_core::tally::{format_chips, parse_chips};
use notch_core::ticket::{LinkForm, ScanError, Ticket, TicketError};
use notch_core::{
    ChitApproveError, ChitRejectError, TallyActionError, TallyError, TallyInvoiceError,
    TallyPayError, TallyScanError, TallyTicketError,
};
use notch_ipc::scan::{FRAME_HEADER_LEN, decode_frame};
use notch_ipc::tally::{
    AgentStatusView, ChitArgs, ChitIdArgs, ChitPage, ChitPageArgs, ChitRow, DeepLink,
    NewTicketArgs, PartnerView, ScanTicketTextArgs, SetAgentAddressArgs, SetLimitArgs,
    SetTallyProfileArgs, TallyDetailView, TallyIdArgs, TallyProfileView, TallyRow, TicketView,
    code as tally_code,
};
use notch_ipc::{CommandError, code};
use tauri::ipc::Request;
use tauri::{AppHandle, Runtime, State};

use crate::errors;
use crate::state::AppState;

type Res<T> = Result<T, CommandError>;

/// The most chits one page holds, whatever the UI asks for.
pub const MAX_CHIT_PAGE: u32 = 200;

// ---- views ------------------------------------------------------------------

/// What a tally's state is for people (see `TallyRow::phase`).
pub fn phase(state: TallyState) -> &'static str {
    match state {
        TallyState::Ticket => "ticket",
        TallyState::Draft | TallyState::DraftOffer | TallyState::HOffer => "draft",
        TallyState::POffer => "offered",
        TallyState::POfferVoid | TallyState::Void => "void",
        TallyState::BOfferOpen | TallyState::Open => "open",
        TallyState::Closing => "closing",
        TallyState::Closed => "closed",
    }
}

fn chips(milli: Option<u64>) -> Option<String> {
    milli.map(format_chips)
}

/// An unsigned amount and which way it goes, for a balance from our side.
fn balance_parts(balance: i64) -> (String, &'static str) {
    let direction = match balance.signum() {
        1 => "they_owe_me",
        -1 => "i_owe_them",
        _ => "even",
    };
    (format_chips(balance.unsigned_abs()), direction)
}

pub fn tally_row(info: &TallyInfo) -> TallyRow {
    let (balance, balance_direction) = balance_parts(info.balance);
    TallyRow {
        id: info.id.clone(),
        state: info.state.as_str().to_owned(),
        phase: phase(info.state).to_owned(),
        description: info.description.clone(),
        partner_name: info.partner_name.clone(),
        partner: info.partner.clone(),
        side: info.side.clone(),
        balance,
        balance_direction: balance_direction.to_owned(),
        my_limit: chips(info.my_limit),
        partner_limit: chips(info.partner_limit),
        comment: info.comment.clone(),
        reason: info.reason.clone(),
        offer_to_answer: info.state == TallyState::POffer,
        invoices_to_approve: u32::try_from(info.invoices_to_approve).unwrap_or(u32::MAX),
        waiting_for_partner: info.queued,
        delivery_error: info.delivery_error.clone(),
        updated_at: info.updated_at,
    }
}

/// What the person has to do first, then the newest (by last change).
pub fn order_tallies(rows: &mut [TallyRow]) {
    rows.sort_by(|a, b| {
        let needs = |r: &TallyRow| r.offer_to_answer || r.invoices_to_approve > 0;
        needs(b)
            .cmp(&needs(a))
            .then(b.updated_at.cmp(&a.updated_at))
            .then(b.id.cmp(&a.id))
    });
}

/// A chit's status for people (see `ChitRow::status`).
pub fn chit_status(chit: &ChitInfo) -> &'static str {
    if chit.needs_action {
        return "to_approve";
    }
    if chit.waiting {
        return "waiting";
    }
    // MyCHIPs's `type.status[.request]`.
    let mut parts = chit.state.split('.');
    let _direction = parts.next();
    let status = parts.next().unwrap_or_default();
    let request = parts.next();
    match (status, request) {
        // Asked for and not sent yet: the outbox row may already be gone
        // (delivered) only once the request is done, so this still waits.
        (_, Some(_)) => "waiting",
        ("good", None) => "done",
        ("void", None) if chit.invoice => "rejected",
        ("void", None) => "void",
        _ => "pending",
    }
}

pub fn chit_row(chit: &ChitInfo) -> ChitRow {
    let kind = match chit.kind.as_str() {
        "set" => "setting",
        _ if chit.invoice => "invoice",
        _ => "payment",
    };
    let direction = match (chit.kind.as_str(), chit.amount.signum()) {
        ("set", _) => "none",
        (_, 1) => "to_me",
        (_, -1) => "from_me",
        _ => "none",
    };
    let (running_balance, running_direction) = match chit.running_balance {
        Some(b) => {
            let (amount, direction) = balance_parts(b);
            (Some(amount), Some(direction.to_owned()))
        }
        None => (None, None),
    };
    ChitRow {
        uuid: chit.uuid.clone(),
        tally: chit.tally.clone(),
        kind: kind.to_owned(),
        state: chit.state.clone(),
        status: chit_status(chit).to_owned(),
        amount: if chit.kind == "set" {
            None
        } else {
            chips(chit.units)
        },
        direction: direction.to_owned(),
        setting: chit.setting.clone(),
        memo: chit.memo.clone(),
        mine: chit.mine,
        running_balance,
        running_direction,
        created_at: chit.created_at,
    }
}

fn ticket_view(ticket: &Ticket, tally: TallyRow) -> Res<TicketView> {
    Ok(TicketView {
        link: ticket.link(LinkForm::MyChips),
        qr_svg: ticket.to_qr_svg(LinkForm::MyChips).map_err(errors::qr)?,
        expires_at: ticket
            .expires()
            .and_then(|e| i64::try_from(e).ok())
            .unwrap_or(0),
        tally,
    })
}

fn detail_view(detail: &TallyDetail) -> Res<TallyDetailView> {
    let info = &detail.info;
    let row = tally_row(info);
    let ticket = match &detail.ticket {
        Some(link) => match Ticket::parse(link) {
            Ok(ticket) => Some(ticket_view(&ticket, row.clone())?),
            Err(e) => {
                tracing::warn!(tally = %info.id, "the draft's ticket does not read back: {e}");
                None
            }
        },
        None => None,
    };
    Ok(TallyDetailView {
        partner: PartnerView {
            name: info.partner_name.clone(),
            cuid: info.partner_cid.clone(),
            agent: info.partner_agent.clone(),
            address: info.partner_address.clone(),
        },
        my_terms: info.my_terms.to_string(),
        partner_terms: info.partner_terms.to_string(),
        ticket,
        record_json: detail.record.to_string(),
        chit_count: detail.chit_count,
        row,
    })
}

// ---- errors -----------------------------------------------------------------

fn ticket_error(e: &TicketError) -> &'static str {
    match e {
        TicketError::Expired { .. } => tally_code::TICKET_EXPIRED,
        _ => tally_code::BAD_TICKET,
    }
}

pub(crate) fn scan_error(e: ScanError) -> CommandError {
    let c = match &e {
        ScanError::Picture(q) => return errors::qr(q.clone()),
        ScanError::Expired { .. } => tally_code::TICKET_EXPIRED,
        ScanError::BadTicket { .. } | ScanError::NotATicket { .. } => tally_code::BAD_TICKET,
    };
    CommandError::new(c, e.to_string())
}

fn scan(e: TallyScanError) -> CommandError {
    let c = match &e {
        TallyScanError::Ticket(t) => ticket_error(t),
        TallyScanError::Image(s) => return scan_error(s.clone()),
        TallyScanError::OwnTicket => tally_code::BAD_TICKET,
        TallyScanError::Refused { .. } => tally_code::TICKET_REFUSED,
        TallyScanError::BadOffer(_) => tally_code::BAD_PARTNER_DATA,
        TallyScanError::Handshake(_) => tally_code::PARTNER_UNREACHABLE,
        TallyScanError::Key(_) => code::INTERNAL,
        TallyScanError::Store(_) => code::STORE,
    };
    CommandError::new(c, e.to_string())
}

fn tally_error(e: TallyError) -> CommandError {
    let c = match &e {
        TallyError::UnknownTally(_) => code::NOT_FOUND,
        TallyError::Key(_) => code::INTERNAL,
        TallyError::Store(_) => code::STORE,
    };
    CommandError::new(c, e.to_string())
}

fn ticket_issue(e: TallyTicketError) -> CommandError {
    let c = match &e {
        TallyTicketError::NoAgentAddress => tally_code::AGENT_STOPPED,
        TallyTicketError::BadOptions(_) | TallyTicketError::Ticket(_) => code::INVALID,
        TallyTicketError::Key(_) => code::INTERNAL,
        TallyTicketError::Store(_) => code::STORE,
    };
    CommandError::new(c, e.to_string())
}

fn action(e: TallyActionError) -> CommandError {
    let c = match &e {
        TallyActionError::UnknownTally(_) => code::NOT_FOUND,
        TallyActionError::NotNow(_) => tally_code::WRONG_STATE,
        TallyActionError::Key(_) => code::INTERNAL,
        TallyActionError::Store(_) => code::STORE,
    };
    CommandError::new(c, e.to_string())
}

fn load(e: &notch_core::agent::ChitLoadError) -> &'static str {
    match e {
        notch_core::agent::ChitLoadError::NotOpen(_) => tally_code::WRONG_STATE,
        notch_core::agent::ChitLoadError::Broken(_) => code::STORE,
    }
}

fn pay(e: TallyPayError) -> CommandError {
    let c = match &e {
        TallyPayError::UnknownTally(_) => code::NOT_FOUND,
        TallyPayError::Load(l) => load(l),
        TallyPayError::Zero => tally_code::BAD_CHIPS,
        TallyPayError::BadMemo => tally_code::BAD_MEMO,
        TallyPayError::OverLimit(_) | TallyPayError::Limit(_) => tally_code::OVER_LIMIT,
        TallyPayError::Closed | TallyPayError::Closing(_) => tally_code::WRONG_STATE,
        TallyPayError::Build(_) => code::INVALID,
        TallyPayError::Issue(_) | TallyPayError::Key(_) => code::INTERNAL,
        TallyPayError::Store(_) => code::STORE,
    };
    CommandError::new(c, e.to_string())
}

fn invoice(e: TallyInvoiceError) -> CommandError {
    let c = match &e {
        TallyInvoiceError::UnknownTally(_) => code::NOT_FOUND,
        TallyInvoiceError::Load(l) => load(l),
        TallyInvoiceError::Zero => tally_code::BAD_CHIPS,
        TallyInvoiceError::BadMemo => tally_code::BAD_MEMO,
        TallyInvoiceError::Invoice(_) => tally_code::WRONG_STATE,
        TallyInvoiceError::Build(_) => code::INVALID,
        TallyInvoiceError::Key(_) => code::INTERNAL,
        TallyInvoiceError::Store(_) => code::STORE,
    };
    CommandError::new(c, e.to_string())
}

fn approve(e: ChitApproveError) -> CommandError {
    let c = match &e {
        ChitApproveError::UnknownChit(_) => code::NOT_FOUND,
        ChitApproveError::Load(l) => load(l),
        ChitApproveError::OverLimit(_) | ChitApproveError::Limit(_) => tally_code::OVER_LIMIT,
        ChitApproveError::Closed | ChitApproveError::Closing(_) | ChitApproveError::Approve(_) => {
            tally_code::WRONG_STATE
        }
        ChitApproveError::Key(_) => code::INTERNAL,
        ChitApproveError::Store(_) => code::STORE,
    };
    CommandError::new(c, e.to_string())
}

fn reject(e: ChitRejectError) -> CommandError {
    let c = match &e {
        ChitRejectError::UnknownChit(_) => code::NOT_FOUND,
        ChitRejectError::Load(l) => load(l),
        ChitRejectError::Reject(_) => tally_code::WRONG_STATE,
        ChitRejectError::Key(_) => code::INTERNAL,
        ChitRejectError::Store(_) => code::STORE,
    };
    CommandError::new(c, e.to_string())
}

fn setting(e: notch_core::agent::TallySettingError) -> CommandError {
    use notch_core::agent::TallySettingError as E;
    let c = match &e {
        E::UnknownTally(_) => code::NOT_FOUND,
        E::Load(l) => load(l),
        E::Closed | E::AlreadyClosing | E::Refused(_) => tally_code::WRONG_STATE,
        E::Issue(_) | E::Key(_) => code::INTERNAL,
        E::Build(_) => code::INVALID,
        E::Store(_) => code::STORE,
    };
    CommandError::new(c, e.to_string())
}

fn page(e: notch_core::agent::ChitPageError) -> CommandError {
    use notch_core::agent::ChitPageError as E;
    let c = match &e {
        E::UnknownTally(_) => code::NOT_FOUND,
        E::BadCursor(_) => code::INVALID,
        E::Store(_) => code::STORE,
    };
    CommandError::new(c, e.to_string())
}

pub(crate) fn store_error(e: notch_core::store::StoreError) -> CommandError {
    CommandError::new(code::STORE, e.to_string())
}

/// An amount in CHIPs as typed (surrounding blanks aside), with the core's
/// one parser.
pub fn amount(text: &str) -> Res<u64> {
    parse_chips(text.trim()).map_err(|e| CommandError::new(tally_code::BAD_CHIPS, e.to_string()))
}

fn memo(memo: Option<String>) -> Option<String> {
    memo.map(|m| m.trim().to_owned()).filter(|m| !m.is_empty())
}

// ---- commands ---------------------------------------------------------------

fn profile_view(p: notch_core::TallyProfile) -> TallyProfileView {
    TallyProfileView {
        cuid: p.cuid,
        name: p.name,
        agent: p.agent,
    }
}

#[tauri::command]
pub async fn tally_profile(state: State<'_, AppState>) -> Res<TallyProfileView> {
    let wallet = state.wallet()?;
    Ok(profile_view(
        wallet.tally_profile().await.map_err(tally_error)?,
    ))
}

#[tauri::command]
pub async fn set_tally_profile(
    state: State<'_, AppState>,
    args: SetTallyProfileArgs,
) -> Res<TallyProfileView> {
    let wallet = state.wallet()?;
    let keep = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let profile = wallet
        .set_tally_profile(keep(args.cuid), keep(args.name))
        .await
        .map_err(ticket_issue)?;
    Ok(profile_view(profile))
}

#[tauri::command]
pub async fn agent_status(state: State<'_, AppState>) -> Res<AgentStatusView> {
    let wallet = state.wallet()?;
    Ok(state.agent().status(Some(&wallet)).await)
}

#[tauri::command]
pub async fn set_agent_address<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    args: SetAgentAddressArgs,
) -> Res<AgentStatusView> {
    let wallet = state.wallet()?;
    state
        .agent()
        .set_address(&app, &wallet, args.listen, args.advertise)
        .await
}

#[tauri::command]
pub async fn tallies(state: State<'_, AppState>) -> Res<Vec<TallyRow>> {
    let wallet = state.wallet()?;
    let mut rows: Vec<TallyRow> = wallet
        .tallies()
        .await
        .map_err(tally_error)?
        .iter()
        .map(tally_row)
        .collect();
    order_tallies(&mut rows);
    Ok(rows)
}

#[tauri::command]
pub async fn tally(state: State<'_, AppState>, args: TallyIdArgs) -> Res<TallyDetailView> {
    let wallet = state.wallet()?;
    let detail = wallet.tally(&args.id).await.map_err(tally_error)?;
    detail_view(&detail)
}

#[tauri::command]
pub async fn tally_chits(state: State<'_, AppState>, args: ChitPageArgs) -> Res<ChitPage> {
    let wallet = state.wallet()?;
    let limit = args.limit.clamp(1, MAX_CHIT_PAGE) as usize;
    let found = wallet
        .tally_chit_page(&args.id, args.before.as_deref(), limit)
        .await
        .map_err(page)?;
    Ok(ChitPage {
        rows: found.rows.iter().map(chit_row).collect(),
        next: found.next,
        total: found.total,
    })
}

#[tauri::command]
pub async fn new_ticket(state: State<'_, AppState>, args: NewTicketArgs) -> Res<TicketView> {
    let wallet = state.wallet()?;
    let status = state.agent().status(Some(&wallet)).await;
    if status.state != "listening" {
        return Err(CommandError::new(
            tally_code::AGENT_STOPPED,
            format!(
                "the tally agent is not listening, so nobody could use a ticket: {}",
                status
                    .error
                    .unwrap_or_else(|| "it has not started yet".into())
            ),
        ));
    }
    let limit = |typed: Option<String>| -> Res<serde_json::Value> {
        Ok(match typed.filter(|t| !t.trim().is_empty()) {
            Some(t) => serde_json::json!({
                "limit": notch_core::tally::chain::limit_value(amount(&t)?)
            }),
            None => serde_json::json!({}),
        })
    };
    let options = TicketOptions {
        expires_in: args
            .expires_in_minutes
            .map(|m| Duration::from_secs(u64::from(m) * 60))
            .unwrap_or(notch_core::agent::DEFAULT_TICKET_LIFETIME),
        my_terms: limit(args.my_limit)?,
        partner_terms: limit(args.partner_limit)?,
        comment: memo(args.comment),
        ..TicketOptions::default()
    };
    let (ticket, draft) = wallet
        .tally_ticket_with(options)
        .await
        .map_err(ticket_issue)?;
    ticket_view(&ticket, tally_row(&draft))
}

#[tauri::command]
pub async fn scan_ticket_text(
    state: State<'_, AppState>,
    args: ScanTicketTextArgs,
) -> Res<TallyRow> {
    let wallet = state.wallet()?;
    let info = wallet.tally_scan(args.text.trim()).await.map_err(scan)?;
    Ok(tally_row(&info))
}

/// Reads a ticket off a picture on a worker thread (a large photo takes a
/// while), then asks its issuer for the tally.
async fn scan_picture(
    wallet: notch_core::Wallet,
    work: impl FnOnce(u64) -> Result<Ticket, ScanError> + Send + 'static,
) -> Res<TallyRow> {
    let ticket = tokio::task::spawn_blocking(move || work(crate::state::now_unix()))
        .await
        .map_err(|e| CommandError::new(code::INTERNAL, format!("the QR decoder stopped: {e}")))?
        .map_err(scan_error)?;
    let info = wallet
        .tally_scan(&ticket.link(LinkForm::MyChips))
        .await
        .map_err(scan)?;
    Ok(tally_row(&info))
}

/// Body: a PNG or JPEG file's bytes, raw.
#[tauri::command]
pub async fn scan_ticket_image(state: State<'_, AppState>, request: Request<'_>) -> Res<TallyRow> {
    let wallet = state.wallet()?;
    let bytes = crate::scan::body_bytes(request.body(), "the bytes of an image file")?;
    scan_picture(wallet, move |now| Ticket::scan_image(&bytes, now)).await
}

/// Body: a grey camera frame as `notch_ipc::scan::encode_frame` writes it.
#[tauri::command]
pub async fn scan_ticket_frame(state: State<'_, AppState>, request: Request<'_>) -> Res<TallyRow> {
    let wallet = state.wallet()?;
    let body = crate::scan::body_bytes(request.body(), "a camera frame")?;
    let Some((width, height, _)) = decode_frame(&body) else {
        return Err(CommandError::new(
            notch_ipc::scan::code::BAD_FRAME,
            format!(
                "a camera frame starts with its {FRAME_HEADER_LEN}-byte size; got {} bytes",
                body.len()
            ),
        ));
    };
    scan_picture(wallet, move |now| {
        let luma = body.get(FRAME_HEADER_LEN..).unwrap_or_default();
        Ticket::scan_luma(width, height, luma, now)
    })
    .await
}

#[tauri::command]
pub async fn tally_accept(state: State<'_, AppState>, args: TallyIdArgs) -> Res<TallyRow> {
    let wallet = state.wallet()?;
    Ok(tally_row(
        &wallet.tally_accept(&args.id).await.map_err(action)?,
    ))
}

#[tauri::command]
pub async fn tally_refuse(state: State<'_, AppState>, args: TallyIdArgs) -> Res<TallyRow> {
    let wallet = state.wallet()?;
    Ok(tally_row(
        &wallet.tally_refuse(&args.id).await.map_err(action)?,
    ))
}

#[tauri::command]
pub async fn tally_pay(state: State<'_, AppState>, args: ChitArgs) -> Res<ChitRow> {
    let wallet = state.wallet()?;
    let units = amount(&args.amount)?;
    let chit = wallet
        .tally_pay(&args.id, units, memo(args.memo))
        .await
        .map_err(pay)?;
    Ok(chit_row(&chit))
}

#[tauri::command]
pub async fn tally_invoice(state: State<'_, AppState>, args: ChitArgs) -> Res<ChitRow> {
    let wallet = state.wallet()?;
    let units = amount(&args.amount)?;
    let chit = wallet
        .tally_invoice(&args.id, units, memo(args.memo))
        .await
        .map_err(invoice)?;
    Ok(chit_row(&chit))
}

#[tauri::command]
pub async fn chit_approve(state: State<'_, AppState>, args: ChitIdArgs) -> Res<ChitRow> {
    let wallet = state.wallet()?;
    let chit = wallet.chit_approve(&args.chit).await.map_err(approve)?;
    Ok(chit_row(&chit))
}

#[tauri::command]
pub async fn chit_reject(state: State<'_, AppState>, args: ChitIdArgs) -> Res<ChitRow> {
    let wallet = state.wallet()?;
    let chit = wallet.chit_reject(&args.chit).await.map_err(reject)?;
    Ok(chit_row(&chit))
}

#[tauri::command]
pub async fn tally_set_limit(state: State<'_, AppState>, args: SetLimitArgs) -> Res<ChitRow> {
    let wallet = state.wallet()?;
    let units = amount(&args.limit)?;
    let chit = wallet
        .tally_set_limit(&args.id, units)
        .await
        .map_err(setting)?;
    Ok(chit_row(&chit))
}

#[tauri::command]
pub async fn tally_close(state: State<'_, AppState>, args: TallyIdArgs) -> Res<ChitRow> {
    let wallet = state.wallet()?;
    let chit = wallet.tally_close(&args.id).await.map_err(setting)?;
    Ok(chit_row(&chit))
}

#[tauri::command]
pub async fn take_deep_link(state: State<'_, AppState>) -> Res<Option<DeepLink>> {
    Ok(state.links().take())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chit(state: &str, kind: &str, invoice: bool, waiting: bool) -> ChitInfo {
        ChitInfo {
            uuid: "c".into(),
            tally: "t".into(),
            state: state.into(),
            kind: kind.into(),
            by: "stock".into(),
            mine: true,
            units: Some(12_500),
            amount: if state.starts_with('A') {
                12_500
            } else {
                -12_500
            },
            memo: None,
            date: String::new(),
            index: None,
            consensus: "unlinked".into(),
            needs_action: state == "L.pend",
            invoice,
            waiting,
            running_balance: None,
            setting: None,
            created_at: 0,
        }
    }

    #[test]
    fn every_tally_state_has_a_phase() {
        let expected = [
            (TallyState::Ticket, "ticket"),
            (TallyState::Draft, "draft"),
            (TallyState::DraftOffer, "draft"),
            (TallyState::HOffer, "draft"),
            (TallyState::POffer, "offered"),
            (TallyState::POfferVoid, "void"),
            (TallyState::BOfferOpen, "open"),
            (TallyState::Open, "open"),
            (TallyState::Closing, "closing"),
            (TallyState::Closed, "closed"),
            (TallyState::Void, "void"),
        ];
        assert_eq!(expected.len(), TallyState::ALL.len());
        for (state, phase_name) in expected {
            assert_eq!(phase(state), phase_name, "{state:?}");
        }
    }

    #[test]
    fn chit_states_read_as_statuses() {
        for (state, invoice, waiting, status) in [
            ("L.pend", true, false, "to_approve"),
            ("L.pend.good", false, true, "waiting"),
            ("L.pend.good", true, false, "waiting"),
            ("L.pend.void", true, true, "waiting"),
            ("A.draft.pend", true, true, "waiting"),
            ("A.pend", true, false, "pending"),
            ("A.good", false, false, "done"),
            ("L.good", true, false, "done"),
            ("L.good", false, true, "waiting"),
            ("A.void", true, false, "rejected"),
            ("L.void", true, false, "rejected"),
            ("L.void", false, false, "void"),
        ] {
            assert_eq!(
                chit_status(&chit(state, "tran", invoice, waiting)),
                status,
                "{state} invoice={invoice} waiting={waiting}"
            );
        }
        let row = chit_row(&chit("A.good", "tran", true, false));
        assert_eq!(
            (row.kind.as_str(), row.direction.as_str()),
            ("invoice", "to_me")
        );
        assert_eq!(row.amount.as_deref(), Some("12.500"));
        let row = chit_row(&chit("L.good", "tran", false, false));
        assert_eq!(
            (row.kind.as_str(), row.direction.as_str()),
            ("payment", "from_me")
        );
        let mut set = chit("L.good", "set", false, false);
        set.amount = 0;
        set.units = None;
        set.setting = Some("asks to close".into());
        let row = chit_row(&set);
        assert_eq!(
            (row.kind.as_str(), row.direction.as_str()),
            ("setting", "none")
        );
        assert_eq!(row.amount, None);
        assert_eq!(row.setting.as_deref(), Some("asks to close"));
    }

    #[test]
    fn tallies_that_need_the_person_come_first_then_the_newest() {
        let row = |id: &str, updated_at: i64, offer: bool, invoices: u32| TallyRow {
            id: id.into(),
            state: "open".into(),
            phase: "open".into(),
            description: String::new(),
            partner_name: None,
            partner: None,
            side: None,
            balance: "0.000".into(),
            balance_direction: "even".into(),
            my_limit: None,
            partner_limit: None,
            comment: None,
            reason: None,
            offer_to_answer: offer,
            invoices_to_approve: invoices,
            waiting_for_partner: false,
            delivery_error: None,
            updated_at,
        };
        let mut rows = vec![
            row("old", 1, false, 0),
            row("new", 9, false, 0),
            row("offer", 2, true, 0),
            row("invoice", 3, false, 2),
        ];
        order_tallies(&mut rows);
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["invoice", "offer", "new", "old"]);
        assert_eq!(balance_parts(-1), ("0.001".to_owned(), "i_owe_them"));
        assert_eq!(balance_parts(2_500), ("2.500".to_owned(), "they_owe_me"));
        assert_eq!(balance_parts(0), ("0.000".to_owned(), "even"));
        assert_eq!(
            amount("1.0001").expect_err("refused").code,
            tally_code::BAD_CHIPS
        );
        assert_eq!(amount(" 7 ").ok(), Some(7_000));
    }
}
