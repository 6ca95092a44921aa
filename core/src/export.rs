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

use crate::amount::{format_amount, format_signed};
use crate::wallet::{HistoryEntry, HistoryFilter, Wallet, WalletError};

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
    /// Writes the transactions `filter` selects as CSV to `writer`;
    /// returns the number of rows after the header. Amounts use the pinned
    /// asset metadata (decimals), as [`history`](Self::history) does.
    pub async fn export_history_csv(
        &self,
        filter: HistoryFilter,
        writer: impl Write,
    ) -> Result<usize, ExportError> {
        let entries = self.history(filter).await?;
        let fee_decimals = self
            .assets()
            .iter()
            .find(|a| a.native)
            .map(|a| a.decimals)
            .unwrap_or(0);
        write_history_csv(&entries, fee_decimals, writer)
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
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(writer);
    out.write_record(HEADER)?;
    let mut rows = 0;
    for e in entries {
        let date = rfc3339_utc(e.time);
        let direction = if e.incoming { "in" } else { "out" };
        let fee = e
            .fee
            .map(|f| format_amount(f, fee_decimals))
            .unwrap_or_default();
        let counterparties = e.counterparties.join(" ");
        let confirmations = e.confirmations.to_string();
        let reason = e.reason.clone().unwrap_or_default();
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
            out.write_record([
                text(&date),
                text(&e.txid),
                text(e.state.as_str()),
                text(direction),
                text(symbol),
                number(amount),
                number(fee),
                text(&counterparties),
                number(&confirmations),
                text(&reason),
            ])?;
            rows += 1;
        }
    }
    out.flush()?;
    Ok(rows)
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
    use crate::TxState;
    use crate::wallet::HistoryAmount;

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

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
