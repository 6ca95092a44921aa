//! The history as CSV: one format for every shell (the app's export, the
//! CLI's `history --csv`, a phone's share sheet).
//!
//! One row per transaction and asset it moves, newest first, with the
//! columns of [`HEADER`]. Written with the `csv` crate (RFC 4180 quoting).
//! A spreadsheet runs a cell that starts with `=`, `+`, `-`, `@`, a tab or
//! a carriage return as a formula, and some of these texts come from
//! outside (an asset symbol is the gateway's word), so such text cells get
//! a leading `'`, as OWASP recommends against CSV injection. The amount
//! columns stay numbers a spreadsheet can add up: they are written as they
//! are once checked to be plain decimals (digits, at most one `.`, an
//! optional leading `-`), and neutralised like text if they are not.

use std::io::Write;

use crate::TxState;
use crate::amount::{format_amount, format_signed};
use crate::wallet::{
    HistoryAmount, HistoryEntry, HistoryFilter, HistoryPageFilter, HistoryRow, Wallet, WalletError,
};

/// The first row.
pub const HEADER: [&str; 10] = [
    "date",
    "txid",
    "state",
    "direction",
    "asset",
    "amount",
    "fee",
    "counterparties",
    "confirmations",
    "reason",
];

/// Transactions read per page while exporting: what the export holds in
/// memory at once, whatever the length of the history.
pub const EXPORT_PAGE: usize = 500;

/// Why the history could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error("cannot write the CSV: {0}")]
    Write(String),
}

impl From<csv::Error> for ExportError {
    fn from(e: csv::Error) -> Self {
        ExportError::Write(e.to_string())
    }
}

impl From<std::io::Error> for ExportError {
    fn from(e: std::io::Error) -> Self {
        ExportError::Write(e.to_string())
    }
}

impl Wallet {
    /// Writes the transactions `filter` selects as CSV to `writer` (at most
    /// `filter.limit` transactions, 0: all); returns the number of rows
    /// after the header. As [`export_history_page_csv`](Self::export_history_page_csv).
    pub async fn export_history_csv(
        &self,
        filter: HistoryFilter,
        writer: impl Write,
    ) -> Result<usize, ExportError> {
        let max = filter.limit;
        let filter = HistoryPageFilter {
            asset: filter.asset,
            incoming: filter.incoming,
            states: filter.states,
            search: filter.search,
            ..HistoryPageFilter::default()
        };
        self.export_history_page_csv(filter, max, writer).await
    }

    /// Writes the transactions `filter` selects as CSV to `writer`, newest
    /// first, at most `max` transactions (0: all); returns the number of
    /// rows after the header. It reads the kept history page by page
    /// ([`history_page`](Self::history_page), [`EXPORT_PAGE`] at a time)
    /// and writes each page before it asks for the next, so memory stays
    /// bounded by a page. A transaction that arrives meanwhile is not in
    /// the file (it comes before the first page). Amounts use the pinned
    /// asset metadata (decimals).
    pub async fn export_history_page_csv(
        &self,
        filter: HistoryPageFilter,
        max: usize,
        writer: impl Write,
    ) -> Result<usize, ExportError> {
        let mut csv = HistoryCsv::new(writer, self.fee_decimals())?;
        let mut cursor = None;
        let mut listed = 0usize;
        loop {
            let want = match max {
                0 => EXPORT_PAGE,
                max => EXPORT_PAGE.min(max - listed),
            };
            if want == 0 {
                break;
            }
            let page = self.history_page(filter.clone(), cursor, want).await?;
            for row in &page.rows {
                csv.write(&Line::of_row(row))?;
            }
            listed += page.rows.len();
            match page.next_cursor {
                Some(next) if !page.rows.is_empty() => cursor = Some(next),
                _ => break,
            }
        }
        csv.finish()
    }

    /// The decimals of the native asset, in which fees are paid.
    fn fee_decimals(&self) -> u8 {
        self.assets()
            .iter()
            .find(|a| a.native)
            .map(|a| a.decimals)
            .unwrap_or(0)
    }
}

/// Writes `entries` as CSV (see the [module docs](self)); `fee_decimals`
/// are those of the native asset, in which fees are paid. The fee is on the
/// transaction's first row only, so a column sum counts it once (the native
/// amount already includes it: amounts are net). Returns the rows written
/// after the header.
pub fn write_history_csv(
    entries: &[HistoryEntry],
    fee_decimals: u8,
    writer: impl Write,
) -> Result<usize, ExportError> {
    let mut csv = HistoryCsv::new(writer, fee_decimals)?;
    for e in entries {
        csv.write(&Line::of_entry(e))?;
    }
    csv.finish()
}

/// What a transaction's rows are made of, from a page row or an entry of
/// the full history (the same columns either way).
struct Line<'a> {
    time: u64,
    txid: &'a str,
    state: TxState,
    incoming: bool,
    fee: Option<u64>,
    amounts: &'a [HistoryAmount],
    counterparties: &'a [String],
    confirmations: u64,
    reason: Option<&'a str>,
}

impl<'a> Line<'a> {
    fn of_entry(e: &'a HistoryEntry) -> Line<'a> {
        Line {
            time: e.time,
            txid: &e.txid,
            state: e.state,
            incoming: e.incoming,
            fee: e.fee,
            amounts: &e.amounts,
            counterparties: &e.counterparties,
            confirmations: e.confirmations,
            reason: e.reason.as_deref(),
        }
    }

    fn of_row(r: &'a HistoryRow) -> Line<'a> {
        Line {
            time: r.time,
            txid: &r.txid,
            state: r.state,
            incoming: r.incoming,
            fee: r.fee,
            amounts: &r.amounts,
            counterparties: &r.counterparties,
            confirmations: r.confirmations,
            reason: r.reason.as_deref(),
        }
    }
}

/// The CSV as it is written: the header first, then one transaction at a
/// time.
struct HistoryCsv<W: Write> {
    out: csv::Writer<W>,
    fee_decimals: u8,
    rows: usize,
}

impl<W: Write> HistoryCsv<W> {
    fn new(writer: W, fee_decimals: u8) -> Result<Self, ExportError> {
        let mut out = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(writer);
        out.write_record(HEADER)?;
        Ok(HistoryCsv {
            out,
            fee_decimals,
            rows: 0,
        })
    }

    fn write(&mut self, e: &Line<'_>) -> Result<(), ExportError> {
        let date = rfc3339_utc(e.time);
        let direction = if e.incoming { "in" } else { "out" };
        let fee = e
            .fee
            .map(|f| format_amount(f, self.fee_decimals))
            .unwrap_or_default();
        let counterparties = e.counterparties.join(" ");
        let confirmations = e.confirmations.to_string();
        let reason = e.reason.unwrap_or_default();
        // A transaction that moves nothing of the wallet's still gets a row.
        let amounts: Vec<(String, String)> = if e.amounts.is_empty() {
            vec![(String::new(), String::new())]
        } else {
            e.amounts
                .iter()
                .map(|a| (a.symbol.clone(), format_signed(a.net, a.decimals)))
                .collect()
        };
        for (i, (symbol, amount)) in amounts.iter().enumerate() {
            let fee = if i == 0 { fee.as_str() } else { "" };
            self.out.write_record([
                text(&date),
                text(e.txid),
                text(e.state.as_str()),
                text(direction),
                text(symbol),
                number(amount),
                number(fee),
                text(&counterparties),
                number(&confirmations),
                text(reason),
            ])?;
            self.rows += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<usize, ExportError> {
        self.out.flush()?;
        Ok(self.rows)
    }
}

/// A text cell, with a `'` in front if a spreadsheet would take it for a
/// formula.
fn text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// A number cell: as it is if it is a plain decimal (or empty), else
/// neutralised like text.
fn number(s: &str) -> String {
    if s.is_empty() || is_plain_number(s) {
        s.to_owned()
    } else {
        text(s)
    }
}

/// An optional leading `-`, digits, at most one `.` between digits.
fn is_plain_number(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (whole, frac) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_utc(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entry() -> HistoryEntry {
        HistoryEntry {
            txid: "ab".repeat(32),
            state: TxState::Final,
            confirmations: 6,
            block_height: Some(3),
            time: 1_700_000_000,
            own: true,
            incoming: false,
            fee: Some(1000),
            amounts: vec![
                HistoryAmount {
                    asset: "11".repeat(32),
                    symbol: "NOTE".into(),
                    decimals: 8,
                    received: 0,
                    sent: 1000,
                    net: -1000,
                },
                HistoryAmount {
                    asset: "33".repeat(32),
                    symbol: "EURT".into(),
                    decimals: 2,
                    received: 0,
                    sent: 150,
                    net: -150,
                },
            ],
            counterparties: vec!["nsb1a".into(), "nsb1b".into()],
            reason: None,
        }
    }

    fn csv_of(entries: &[HistoryEntry]) -> (usize, String) {
        let mut out = Vec::new();
        let rows = write_history_csv(entries, 8, &mut out).unwrap();
        (rows, String::from_utf8(out).unwrap())
    }

    /// The cells of each line, as a spreadsheet would read them.
    fn cells(csv: &str) -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(csv.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn one_row_per_transaction_and_asset() {
        let (rows, csv) = csv_of(&[entry()]);
        assert_eq!(rows, 2);
        let tx = "ab".repeat(32);
        assert_eq!(
            csv,
            format!(
                "date,txid,state,direction,asset,amount,fee,counterparties,confirmations,reason\r\n\
                 2023-11-14T22:13:20Z,{tx},final,out,NOTE,-0.00001,0.00001,nsb1a nsb1b,6,\r\n\
                 2023-11-14T22:13:20Z,{tx},final,out,EURT,-1.50,,nsb1a nsb1b,6,\r\n"
            )
        );
        // Nothing but the header for an empty history.
        assert_eq!(
            csv_of(&[]),
            (
                0,
                "date,txid,state,direction,asset,amount,fee,counterparties,confirmations,reason\r\n"
                    .into()
            )
        );
    }

    #[test]
    fn commas_quotes_and_newlines_are_quoted() {
        let mut e = entry();
        e.amounts.truncate(1);
        e.counterparties = vec!["a,b".into()];
        e.reason = Some("the \"gateway\" said:\nno".into());
        let (_, csv) = csv_of(&[e]);
        assert!(csv.contains(",\"a,b\","), "{csv}");
        assert!(
            csv.ends_with(",\"the \"\"gateway\"\" said:\nno\"\r\n"),
            "{csv}"
        );
        let read = cells(&csv);
        assert_eq!(read[1][7], "a,b");
        assert_eq!(read[1][9], "the \"gateway\" said:\nno");
    }

    #[test]
    fn formulas_are_neutralised_but_negative_amounts_stay_numbers() {
        let mut e = entry();
        e.amounts[0].symbol = "=HYPERLINK(\"http://x\")".into();
        e.amounts[1].symbol = "@SUM(A1)".into();
        e.reason = Some("-2+3".into());
        e.counterparties = vec!["+cmd".into()];
        let mut f = entry();
        f.amounts.truncate(1);
        f.amounts[0].symbol = "\tTAB".into();
        f.reason = Some("\rCR".into());
        let (_, csv) = csv_of(&[e, f]);
        let read = cells(&csv);
        assert_eq!(read[1][4], "'=HYPERLINK(\"http://x\")");
        assert_eq!(read[2][4], "'@SUM(A1)");
        assert_eq!(read[1][9], "'-2+3");
        assert_eq!(read[1][7], "'+cmd");
        assert_eq!(read[3][4], "'\tTAB");
        assert_eq!(read[3][9], "'\rCR");
        // The amounts are numbers, sign and all.
        assert_eq!(read[1][5], "-0.00001");
        assert_eq!(read[2][5], "-1.50");
        assert_eq!(read[1][6], "0.00001");
        // Every cell of every row: nothing starts a formula unquoted.
        for row in &read[1..] {
            for (i, cell) in row.iter().enumerate() {
                if HEADER[i] == "amount" || HEADER[i] == "fee" {
                    assert!(cell.is_empty() || is_plain_number(cell), "{cell:?}");
                } else {
                    assert!(
                        !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                        "{cell:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn only_plain_decimals_count_as_numbers() {
        for ok in ["0", "-1.5", "12", "0.00001", "-0"] {
            assert!(is_plain_number(ok), "{ok}");
            assert_eq!(number(ok), ok);
        }
        for bad in [
            "", "-", "1.", ".5", "1.2.3", "--1", "+1", "1e3", "=1", "-1+2", " 1",
        ] {
            assert!(!is_plain_number(bad), "{bad}");
        }
        assert_eq!(number("-1+2"), "'-1+2");
        assert_eq!(number("=1"), "'=1");
        assert_eq!(text("plain"), "plain");
    }

    #[test]
    fn a_transaction_without_amounts_still_has_a_row() {
        let mut e = entry();
        e.amounts.clear();
        e.fee = None;
        e.state = TxState::Rejected;
        e.reason = Some("double spend".into());
        let (rows, csv) = csv_of(&[e]);
        assert_eq!(rows, 1);
        assert!(
            csv.contains(",rejected,out,,,,nsb1a nsb1b,6,double spend\r\n"),
            "{csv}"
        );
    }

    /// The export reads pages of the kept history and writes exactly what
    /// the full history (`Wallet::history`, decoded from scratch) gives,
    /// over several pages, with a limit and a filter.
    #[tokio::test]
    async fn the_paged_export_equals_the_full_history_as_csv() {
        use crate::store::{Header, NewOutput, NewTransaction, OutPoint};
        use std::sync::Arc;

        let dir = tempfile::tempdir().unwrap();
        let config = crate::wallet::WalletConfig::new(
            dir.path(),
            "http://127.0.0.1:1",
            crate::Network::Sandbox,
        );
        let secrets: Arc<dyn crate::secrets::SecretStore> =
            Arc::new(crate::secrets::MemorySecretStore::new());
        let (wallet, _) = Wallet::create(config, secrets, crate::keys::WordCount::Twelve)
            .await
            .unwrap();
        let mine = wallet.receive_address().await.unwrap();
        // 2.5 pages: most in blocks, the newest in the pool.
        let n = EXPORT_PAGE as u32 * 5 / 2 + 3;
        wallet
            .inner
            .db(move |store| {
                store.write(|tx| {
                    for h in 1..=20u64 {
                        let mut hash = [7u8; 32];
                        hash[..8].copy_from_slice(&h.to_be_bytes());
                        let mut prev_hash = [7u8; 32];
                        prev_hash[..8].copy_from_slice(&(h - 1).to_be_bytes());
                        tx.append_header(&Header {
                            height: h,
                            hash,
                            prev_hash,
                            time: 1_700_000_000 + h * 60,
                            verified: true,
                        })?;
                    }
                    for i in 0..n {
                        let mut txid = [0u8; 32];
                        txid[..4].copy_from_slice(&i.to_be_bytes());
                        txid[31] = 9;
                        let height = (i < n - 40).then(|| u64::from(i * 20 / n) + 1);
                        let block = height.map(|h| {
                            let mut hash = [7u8; 32];
                            hash[..8].copy_from_slice(&h.to_be_bytes());
                            (h, hash)
                        });
                        tx.insert_transaction(&NewTransaction {
                            txid,
                            state: if block.is_some() {
                                TxState::Confirmed
                            } else {
                                TxState::InPool
                            },
                            own: false,
                            raw: None,
                            block,
                        })?;
                        tx.insert_output(&NewOutput {
                            outpoint: OutPoint { txid, vout: 0 },
                            asset: [if i.is_multiple_of(3) { 0xE0 } else { 0xC0 }; 32],
                            amount: 1_000 + u64::from(i),
                            address: mine.clone(),
                            height,
                        })?;
                    }
                    Ok(())
                })
            })
            .await
            .unwrap();
        // The same lines as the full history gives (in the order of the
        // pages, newest first by the time first listed, where the full
        // history orders by when the wallet saw them).
        let check = |filter: HistoryFilter| {
            let wallet = wallet.clone();
            async move {
                let mut paged = Vec::new();
                let rows = wallet
                    .export_history_csv(filter.clone(), &mut paged)
                    .await
                    .unwrap();
                let entries = wallet.history(filter).await.unwrap();
                let mut whole = Vec::new();
                let want = write_history_csv(&entries, 0, &mut whole).unwrap();
                assert_eq!(rows, want);
                let paged = String::from_utf8(paged).unwrap();
                let sorted = |text: &str| {
                    let mut lines: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
                    lines.sort();
                    lines
                };
                assert_eq!(sorted(&paged), sorted(&String::from_utf8(whole).unwrap()));
                (rows, paged)
            }
        };
        let (all, text) = check(HistoryFilter::default()).await;
        assert_eq!(all, n as usize);
        let mut limited = Vec::new();
        let rows = wallet
            .export_history_csv(
                HistoryFilter {
                    limit: EXPORT_PAGE + 7,
                    ..HistoryFilter::default()
                },
                &mut limited,
            )
            .await
            .unwrap();
        assert_eq!(rows, EXPORT_PAGE + 7);
        let limited = String::from_utf8(limited).unwrap();
        assert!(text.starts_with(&limited), "the first rows of the whole");
        let (euro, _) = check(HistoryFilter {
            asset: Some("e0".repeat(32)),
            ..HistoryFilter::default()
        })
        .await;
        assert_eq!(euro, n.div_ceil(3) as usize);
        let (none, _) = check(HistoryFilter {
            incoming: Some(false),
            ..HistoryFilter::default()
        })
        .await;
        assert_eq!(none, 0);
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
