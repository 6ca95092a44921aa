//! The history index: a few bytes for every row of one History query, sent
//! once as raw bytes (not JSON), so that the list can draw any row at once
//! while its page is on its way: a drag of the scroll bar lands on rows
//! whose page nobody has asked for yet (ADR 11).
//!
//! An index row has what the list shows of a row except its txid and
//! confirmations: time, direction, state and the amounts' text exactly as a
//! full row shows it ([`amounts_text`]). Texts are stored once each, so a
//! row is 13 bytes (1.3 MB for 100,000 rows) plus its text if no other row
//! has it.
//!
//! Layout, all integers little-endian:
//!
//! ```text
//! magic        4 bytes  "NHX1"
//! rows         u32      R
//! texts        u32      T
//! offsets      (T + 1) × u32, non-decreasing, the last = the text area's length
//! text area    UTF-8, text j = area[offsets[j]..offsets[j + 1]]
//! rows         R × 13 bytes: time u64 (seconds since 1970),
//!              flags u8 (bits 0–2: the state, its index in HISTORY_STATES;
//!              bit 3: incoming; the others 0), text u32 (< T)
//! ```
//!
//! The app builds it ([`HistoryIndexWriter`]); the UI keeps the bytes as
//! they came and reads a row when it draws one ([`HistoryIndexView::row`]).

use std::collections::HashMap;

const MAGIC: &[u8; 4] = b"NHX1";
const ROW: usize = 13;
const INCOMING: u8 = 1 << 3;

/// The states a history row can be in, as their code in the index (the
/// strings of notch-core's `TxState::as_str`, in its order).
pub const HISTORY_STATES: [&str; 8] = [
    "queued",
    "accepted",
    "in_pool",
    "confirmed",
    "final",
    "rejected",
    "dropped",
    "abandoned",
];

/// A row's amounts as the History list shows them: `+1.50 EURT, -0.01
/// NOTE` (net amounts already formatted, with their sign if negative).
pub fn amounts_text<'a>(amounts: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (net, symbol) in amounts {
        if !out.is_empty() {
            out.push_str(", ");
        }
        if !net.starts_with('-') {
            out.push('+');
        }
        out.push_str(net);
        out.push(' ');
        out.push_str(symbol);
    }
    out
}

/// Builds the bytes of an index, row by row, newest first.
#[derive(Default)]
pub struct HistoryIndexWriter {
    rows: Vec<u8>,
    count: u32,
    texts: HashMap<String, u32>,
    area: Vec<u8>,
    offsets: Vec<u32>,
}

/// Why a row cannot go into an index.
#[derive(Debug, PartialEq, Eq)]
pub enum HistoryIndexError {
    UnknownState(String),
    TooLarge,
}

impl std::fmt::Display for HistoryIndexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HistoryIndexError::UnknownState(s) => write!(f, "unknown history state {s:?}"),
            HistoryIndexError::TooLarge => f.write_str("the history index is over 4 GB"),
        }
    }
}

impl std::error::Error for HistoryIndexError {}

impl HistoryIndexWriter {
    pub fn with_capacity(rows: usize) -> HistoryIndexWriter {
        HistoryIndexWriter {
            rows: Vec::with_capacity(rows * ROW),
            offsets: vec![0],
            ..HistoryIndexWriter::default()
        }
    }

    /// Adds the next row (older than the ones before it).
    pub fn push(
        &mut self,
        time: u64,
        incoming: bool,
        state: &str,
        amounts: &str,
    ) -> Result<(), HistoryIndexError> {
        let code = HISTORY_STATES
            .iter()
            .position(|s| *s == state)
            .ok_or_else(|| HistoryIndexError::UnknownState(state.to_owned()))?;
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let text = match self.texts.get(amounts) {
            Some(j) => *j,
            None => {
                let j = u32::try_from(self.texts.len()).map_err(|_| HistoryIndexError::TooLarge)?;
                self.area.extend_from_slice(amounts.as_bytes());
                let end =
                    u32::try_from(self.area.len()).map_err(|_| HistoryIndexError::TooLarge)?;
                self.offsets.push(end);
                self.texts.insert(amounts.to_owned(), j);
                j
            }
        };
        self.count = self
            .count
            .checked_add(1)
            .ok_or(HistoryIndexError::TooLarge)?;
        self.rows.extend_from_slice(&time.to_le_bytes());
        self.rows
            .push(code as u8 | if incoming { INCOMING } else { 0 });
        self.rows.extend_from_slice(&text.to_le_bytes());
        Ok(())
    }

    /// The index's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let texts = (self.offsets.len() - 1) as u32;
        let mut out =
            Vec::with_capacity(12 + 4 * self.offsets.len() + self.area.len() + self.rows.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&texts.to_le_bytes());
        for o in &self.offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        out.append(&mut self.area);
        out.append(&mut self.rows);
        out
    }
}

/// One row read from an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryIndexRow<'a> {
    pub time: u64,
    pub incoming: bool,
    /// One of [`HISTORY_STATES`].
    pub state: &'static str,
    /// As [`amounts_text`] wrote it.
    pub amounts: &'a str,
}

/// An index's bytes, checked once, read a row at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryIndexView {
    bytes: Vec<u8>,
    len: usize,
    texts: usize,
    /// Where the text area and the rows begin.
    area: usize,
    rows: usize,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl HistoryIndexView {
    /// Checks the layout (lengths, offsets, every text's UTF-8, every row's
    /// state and text); `None` if anything is off.
    pub fn parse(bytes: Vec<u8>) -> Option<HistoryIndexView> {
        if bytes.get(..4)? != MAGIC {
            return None;
        }
        let len = u32_at(&bytes, 4)? as usize;
        let texts = u32_at(&bytes, 8)? as usize;
        let area = 12usize.checked_add(texts.checked_add(1)?.checked_mul(4)?)?;
        let area_len = u32_at(&bytes, area - 4)? as usize;
        let rows = area.checked_add(area_len)?;
        if bytes.len() != rows.checked_add(len.checked_mul(ROW)?)? {
            return None;
        }
        let mut previous = 0u32;
        for j in 0..=texts {
            let o = u32_at(&bytes, 12 + 4 * j)?;
            if o < previous || (j == 0 && o != 0) {
                return None;
            }
            if j > 0 {
                std::str::from_utf8(bytes.get(area + previous as usize..area + o as usize)?)
                    .ok()?;
            }
            previous = o;
        }
        for i in 0..len {
            let at = rows + i * ROW;
            let flags = *bytes.get(at + 8)?;
            if usize::from(flags & 0b111) >= HISTORY_STATES.len()
                || flags & !(0b111 | INCOMING) != 0
                || u32_at(&bytes, at + 9)? as usize >= texts
            {
                return None;
            }
        }
        Some(HistoryIndexView {
            bytes,
            len,
            texts,
            area,
            rows,
        })
    }

    /// How many rows it has.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Row `i` (0: the newest).
    pub fn row(&self, i: usize) -> Option<HistoryIndexRow<'_>> {
        if i >= self.len {
            return None;
        }
        let at = self.rows + i * ROW;
        let b = self.bytes.get(at..at + ROW)?;
        let time = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let flags = b[8];
        let text = u32::from_le_bytes([b[9], b[10], b[11], b[12]]) as usize;
        if text >= self.texts {
            return None;
        }
        let from = u32_at(&self.bytes, 12 + 4 * text)? as usize;
        let to = u32_at(&self.bytes, 16 + 4 * text)? as usize;
        let amounts =
            std::str::from_utf8(self.bytes.get(self.area + from..self.area + to)?).ok()?;
        Some(HistoryIndexRow {
            time,
            incoming: flags & INCOMING != 0,
            state: HISTORY_STATES.get(usize::from(flags & 0b111))?,
            amounts,
        })
    }

    /// The size of the bytes kept.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = HistoryIndexWriter::with_capacity(3);
        w.push(1_700_000_100, true, "confirmed", "+1.50 EURT")
            .unwrap_or_else(|e| panic!("{e}"));
        w.push(1_700_000_050, false, "in_pool", "-0.25 EURT, -0.01 NOTE")
            .unwrap_or_else(|e| panic!("{e}"));
        w.push(1_700_000_000, true, "final", "+1.50 EURT")
            .unwrap_or_else(|e| panic!("{e}"));
        w.finish()
    }

    #[test]
    fn amounts_are_written_as_the_list_shows_them() {
        assert_eq!(
            amounts_text([("1.50", "EURT"), ("-0.01", "NOTE")]),
            "+1.50 EURT, -0.01 NOTE"
        );
        assert_eq!(amounts_text([]), "");
    }

    #[test]
    fn rows_read_back_as_written_and_texts_are_stored_once() {
        let bytes = sample();
        // The documented layout, byte for byte (the test vector of ADR 11).
        let mut want = b"NHX1".to_vec();
        want.extend_from_slice(&3u32.to_le_bytes());
        want.extend_from_slice(&2u32.to_le_bytes());
        for o in [0u32, 10, 32] {
            want.extend_from_slice(&o.to_le_bytes());
        }
        want.extend_from_slice(b"+1.50 EURT-0.25 EURT, -0.01 NOTE");
        for (time, flags, text) in [
            (1_700_000_100u64, 3u8 | 8, 0u32),
            (1_700_000_050, 2, 1),
            (1_700_000_000, 4 | 8, 0),
        ] {
            want.extend_from_slice(&time.to_le_bytes());
            want.push(flags);
            want.extend_from_slice(&text.to_le_bytes());
        }
        assert_eq!(bytes, want);
        let view = HistoryIndexView::parse(bytes).unwrap_or_else(|| panic!("parse"));
        assert_eq!(view.len(), 3);
        assert_eq!(
            view.row(1),
            Some(HistoryIndexRow {
                time: 1_700_000_050,
                incoming: false,
                state: "in_pool",
                amounts: "-0.25 EURT, -0.01 NOTE",
            })
        );
        assert_eq!(
            view.row(2).map(|r| (r.state, r.amounts)),
            Some(("final", "+1.50 EURT"))
        );
        assert_eq!(view.row(3), None);
    }

    #[test]
    fn an_empty_index_is_valid() {
        let view = HistoryIndexView::parse(HistoryIndexWriter::default().finish())
            .unwrap_or_else(|| panic!("parse"));
        assert!(view.is_empty());
        assert_eq!(view.row(0), None);
    }

    #[test]
    fn a_state_the_index_cannot_name_is_refused() {
        let mut w = HistoryIndexWriter::default();
        assert_eq!(
            w.push(1, true, "lost", ""),
            Err(HistoryIndexError::UnknownState("lost".into()))
        );
    }

    #[test]
    fn damaged_bytes_are_refused_not_misread() {
        let good = sample();
        // Every truncation and every one-byte lengthening.
        for n in 0..good.len() {
            assert_eq!(HistoryIndexView::parse(good[..n].to_vec()), None, "{n}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(HistoryIndexView::parse(longer), None);
        // A flipped bit anywhere either fails the checks or still reads as
        // an index of valid rows (a time or a text's letters changed).
        for at in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[at] ^= 1 << bit;
                if let Some(view) = HistoryIndexView::parse(bad) {
                    for i in 0..view.len() {
                        let row = view.row(i).unwrap_or_else(|| panic!("row {i}"));
                        assert!(HISTORY_STATES.contains(&row.state));
                    }
                }
            }
        }
        // A row's text past the table, a state past the list.
        let rows_at = good.len() - 3 * ROW;
        let mut bad = good.clone();
        bad[rows_at + 9] = 2;
        assert_eq!(HistoryIndexView::parse(bad), None);
        let mut bad = good.clone();
        bad[rows_at + 8] = 0x10;
        assert_eq!(HistoryIndexView::parse(bad), None);
    }
}
