//! Tallies (MyCHIPs credit relationships) over the IPC: the command names,
//! their arguments and results, the error codes, and the events.
//!
//! Amounts cross as decimal strings of CHIPs with MyCHIPs's milliCHIP
//! precision, already formatted by the app (`"12.500"`); amounts the person
//! types go to the app as typed and are parsed there (notch-core's one
//! parser). The UI never does arithmetic on them.

use serde::{Deserialize, Serialize};

/// Names of the tally commands.
pub mod command {
    /// () -> [`super::TallyProfileView`]
    pub const TALLY_PROFILE: &str = "tally_profile";
    /// [`super::SetTallyProfileArgs`] -> [`super::TallyProfileView`]
    pub const SET_TALLY_PROFILE: &str = "set_tally_profile";
    /// () -> [`super::AgentStatusView`]
    pub const AGENT_STATUS: &str = "agent_status";
    /// [`super::SetAgentAddressArgs`] -> [`super::AgentStatusView`]: saved,
    /// and the agent restarted on it.
    pub const SET_AGENT_ADDRESS: &str = "set_agent_address";
    /// () -> `Vec<`[`super::TallyRow`]`>`, what needs the person first, then
    /// newest first.
    pub const TALLIES: &str = "tallies";
    /// [`super::TallyIdArgs`] -> [`super::TallyDetailView`]
    pub const TALLY: &str = "tally";
    /// [`super::ChitPageArgs`] -> [`super::ChitPage`], newest first.
    pub const TALLY_CHITS: &str = "tally_chits";
    /// [`super::NewTicketArgs`] -> [`super::TicketView`]: a new one-time
    /// ticket and the draft tally it is bound to.
    pub const NEW_TICKET: &str = "new_ticket";
    /// [`super::ScanTicketTextArgs`] -> [`super::TallyRow`] (pasted text or
    /// a deep link).
    pub const SCAN_TICKET_TEXT: &str = "scan_ticket_text";
    /// Raw body: a PNG or JPEG file's bytes -> [`super::TallyRow`].
    pub const SCAN_TICKET_IMAGE: &str = "scan_ticket_image";
    /// Raw body: a camera frame as [`crate::scan::encode_frame`] writes it
    /// -> [`super::TallyRow`].
    pub const SCAN_TICKET_FRAME: &str = "scan_ticket_frame";
    /// [`super::TallyIdArgs`] -> [`super::TallyRow`]: signs the offer shown.
    pub const TALLY_ACCEPT: &str = "tally_accept";
    /// [`super::TallyIdArgs`] -> [`super::TallyRow`]
    pub const TALLY_REFUSE: &str = "tally_refuse";
    /// [`super::ChitArgs`] -> [`super::ChitRow`]
    pub const TALLY_PAY: &str = "tally_pay";
    /// [`super::ChitArgs`] -> [`super::ChitRow`]
    pub const TALLY_INVOICE: &str = "tally_invoice";
    /// [`super::ChitIdArgs`] -> [`super::ChitRow`]: signs and pays the
    /// invoice shown.
    pub const CHIT_APPROVE: &str = "chit_approve";
    /// [`super::ChitIdArgs`] -> [`super::ChitRow`]
    pub const CHIT_REJECT: &str = "chit_reject";
    /// [`super::SetLimitArgs`] -> [`super::ChitRow`]
    pub const TALLY_SET_LIMIT: &str = "tally_set_limit";
    /// [`super::TallyIdArgs`] -> [`super::ChitRow`]
    pub const TALLY_CLOSE: &str = "tally_close";
    /// () -> `Option<`[`super::DeepLink`]`>`: the link the app was started
    /// with, once (links that come later arrive as [`super::event::DEEP_LINK`]).
    pub const TAKE_DEEP_LINK: &str = "take_deep_link";
}

/// Names of the tally events the app emits (besides the tally variants of
/// [`crate::WalletEvent`]).
pub mod event {
    /// Payload: [`super::AgentStatusView`], whenever it changes.
    pub const AGENT_STATUS: &str = "notch://agent-status";
    /// Payload: [`super::DeepLink`]: a link was opened while the app runs.
    pub const DEEP_LINK: &str = "notch://deep-link";
}

/// Error codes of the tally commands (besides the general ones of
/// [`crate::code`] and the picture ones of [`crate::scan::code`]).
pub mod code {
    /// Not a ticket at all (not a link, damaged fields, bad signature).
    pub const BAD_TICKET: &str = "bad_ticket";
    pub const TICKET_EXPIRED: &str = "ticket_expired";
    /// The issuer says the ticket was used already or is unknown to it.
    pub const TICKET_REFUSED: &str = "ticket_refused";
    /// The partner's agent cannot be reached (the message waits, or the
    /// ticket is kept and presented again).
    pub const PARTNER_UNREACHABLE: &str = "partner_unreachable";
    /// The partner's offer or chit failed verification.
    pub const BAD_PARTNER_DATA: &str = "bad_partner_data";
    /// A CHIP amount that is not digits with at most three decimals, or zero.
    pub const BAD_CHIPS: &str = "bad_chips";
    pub const BAD_MEMO: &str = "bad_memo";
    /// Past the credit the partner grants (nothing was signed).
    pub const OVER_LIMIT: &str = "over_limit";
    /// The tally is not in a state that allows this.
    pub const WRONG_STATE: &str = "wrong_state";
    /// A listening address that is not `HOST:PORT`, or cannot be bound.
    pub const BAD_AGENT_ADDRESS: &str = "bad_agent_address";
    /// The agent is not running (it could not bind its address).
    pub const AGENT_STOPPED: &str = "agent_stopped";
}

/// Who the wallet is in its tallies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyProfileView {
    /// CHIP user id.
    pub cuid: String,
    /// The name partners see in the certificate.
    pub name: Option<String>,
    /// The agent id (base64url X25519 key).
    pub agent: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetTallyProfileArgs {
    pub cuid: Option<String>,
    pub name: Option<String>,
}

/// The tally agent: the status strip and Settings show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatusView {
    /// `listening`, `starting`, `stopped` (could not start; see `error`).
    pub state: String,
    /// The configured listening address, `HOST:PORT`.
    pub listen: String,
    /// Where it listens now (port resolved), when listening.
    pub bound: Option<String>,
    /// The host and port partners are told, `HOST:PORT`.
    pub advertised: Option<String>,
    /// Partners with an open session right now.
    pub partners_connected: u32,
    /// Partners with messages waiting to be delivered.
    pub partners_waiting: u32,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAgentAddressArgs {
    /// `HOST:PORT` to listen on.
    pub listen: String,
    /// `HOST:PORT` partners should use, if not the listening one.
    pub advertise: Option<String>,
}

/// One tally in the list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyRow {
    pub id: String,
    /// MyCHIPs's state name (`draft`, `P.offer`, `open`, …).
    pub state: String,
    /// For people: `ticket`, `draft`, `offered`, `open`, `closing`,
    /// `closed`, `void`.
    pub phase: String,
    /// What the state means, in words.
    pub description: String,
    pub partner_name: Option<String>,
    /// The partner's CHIP address, `cid:agent`.
    pub partner: Option<String>,
    /// `stock` or `foil`.
    pub side: Option<String>,
    /// Unsigned CHIPs, e.g. `"12.500"`.
    pub balance: String,
    /// `they_owe_me`, `i_owe_them` or `even`.
    pub balance_direction: String,
    /// The credit I grant the partner, CHIPs.
    pub my_limit: Option<String>,
    /// The credit the partner grants me, CHIPs.
    pub partner_limit: Option<String>,
    pub comment: Option<String>,
    /// Why it is void.
    pub reason: Option<String>,
    /// An offer waits for my answer.
    pub offer_to_answer: bool,
    /// Invoices waiting for my approval.
    pub invoices_to_approve: u32,
    /// Something for the partner waits to be delivered.
    pub waiting_for_partner: bool,
    pub delivery_error: Option<String>,
    /// Unix seconds.
    pub updated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyIdArgs {
    pub id: String,
}

/// The partner's certificate, as the offer names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerView {
    pub name: Option<String>,
    pub cuid: Option<String>,
    /// Agent id (base64url X25519 key).
    pub agent: Option<String>,
    /// `HOST:PORT` of the partner's agent.
    pub address: Option<String>,
}

/// One tally, whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyDetailView {
    pub row: TallyRow,
    pub partner: PartnerView,
    /// What I grant the partner and what it grants me: MyCHIPs credit
    /// terms, JSON text.
    pub my_terms: String,
    pub partner_terms: String,
    /// The ticket of a draft still waiting for its partner.
    pub ticket: Option<TicketView>,
    /// The record exactly as signed (or the draft / the scanned ticket).
    pub record_json: String,
    /// How many chits the tally has.
    pub chit_count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChitPageArgs {
    pub id: String,
    /// The `next` of the previous page; `None` for the newest.
    pub before: Option<String>,
    /// At most this many (the app caps it).
    pub limit: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChitPage {
    pub rows: Vec<ChitRow>,
    /// Pass as `before` for the next (older) page; `None` at the end.
    pub next: Option<String>,
    pub total: u64,
}

/// One chit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChitRow {
    pub uuid: String,
    pub tally: String,
    /// `payment`, `invoice` or `setting`.
    pub kind: String,
    /// MyCHIPs's state code (`A.pend`, `L.good`, …).
    pub state: String,
    /// For people: `waiting` (for the partner), `to_approve`, `pending`,
    /// `done`, `rejected`, `void`.
    pub status: String,
    /// Unsigned CHIPs moved (payments and invoices).
    pub amount: Option<String>,
    /// `to_me`, `from_me` or `none` (a setting).
    pub direction: String,
    /// What a setting does, in words ("credit limit 100.000", "asks to close").
    pub setting: Option<String>,
    pub memo: Option<String>,
    /// I sign it (a payment of mine, or an invoice to me).
    pub mine: bool,
    /// The balance after it (good chits), unsigned CHIPs, with its direction.
    pub running_balance: Option<String>,
    pub running_direction: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTicketArgs {
    /// Minutes the ticket is good for; the core's default if `None`.
    pub expires_in_minutes: Option<u32>,
    /// The credit I grant the partner, CHIPs as typed.
    pub my_limit: Option<String>,
    /// The credit I ask the partner for, CHIPs as typed.
    pub partner_limit: Option<String>,
    pub comment: Option<String>,
}

/// A ticket to show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketView {
    /// The MyCHIPs invitation link (`https://mychips.org/invite?…`).
    pub link: String,
    /// The QR code of the link, an SVG document.
    pub qr_svg: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// The draft tally it is bound to.
    pub tally: TallyRow,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanTicketTextArgs {
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChitArgs {
    pub id: String,
    /// CHIPs as typed.
    pub amount: String,
    pub memo: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChitIdArgs {
    pub chit: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetLimitArgs {
    pub id: String,
    /// CHIPs as typed.
    pub limit: String,
}

/// A link the app was opened with (`notch:` or a MyCHIPs invitation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeepLink {
    /// A tally ticket: the UI opens Scan with it (nothing is contacted or
    /// signed until the person says so).
    Ticket { text: String },
    /// A payment (`notch:ADDRESS?…`): the UI opens Send with it.
    Payment { text: String },
    /// A link the app cannot use, and why.
    Unusable { text: String, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_links_have_a_kind_tag() {
        let link = DeepLink::Ticket {
            text: "https://mychips.org/invite?x=1".into(),
        };
        let json = serde_json::to_value(&link).expect("serializable");
        assert_eq!(json["kind"], "ticket");
        let back: DeepLink = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, link);
    }
}
