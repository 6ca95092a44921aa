//! Amounts in CHIPs as people write them, and milliCHIPs (MyCHIPs's
//! `units`) as the records hold them: the one parser and the one formatter
//! every shell uses (the CLI, the desktop app, the bindings).

/// Why a text is not an amount in CHIPs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an amount in CHIPs: {problem}")]
pub struct ChipsError {
    /// The text as given.
    pub text: String,
    pub problem: ChipsProblem,
}

/// What is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChipsProblem {
    #[error("write digits, e.g. 12.5")]
    Empty,
    #[error("only digits and one decimal point (no sign), e.g. 12.5")]
    NotDigits,
    #[error("digits must follow the decimal point")]
    TrailingPoint,
    #[error("at most three decimals (a milliCHIP)")]
    TooManyDecimals,
    #[error("too large")]
    TooLarge,
    #[error("it must be more than 0")]
    Zero,
}

/// An amount in CHIPs, as milliCHIPs: digits with at most three decimals
/// (`12.5` = 12,500). Refuses signs, spaces, zero, more decimals, exponents
/// and anything past MyCHIPs's bigint (`i64`): an amount is never guessed.
pub fn parse_chips(text: &str) -> Result<u64, ChipsError> {
    let bad = |problem| ChipsError {
        text: text.to_owned(),
        problem,
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad(ChipsProblem::Empty));
    }
    if !digits(whole) || !digits(fraction) {
        return Err(bad(ChipsProblem::NotDigits));
    }
    if text.ends_with('.') {
        return Err(bad(ChipsProblem::TrailingPoint));
    }
    if fraction.len() > 3 {
        return Err(bad(ChipsProblem::TooManyDecimals));
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad(ChipsProblem::TooLarge))?
    };
    let milli: u64 = format!("{fraction:0<3}")
        .parse()
        .map_err(|_| bad(ChipsProblem::NotDigits))?;
    let units = whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(milli))
        .ok_or_else(|| bad(ChipsProblem::TooLarge))?;
    // A chit's units must fit MyCHIPs's bigint (i64).
    if i64::try_from(units).is_err() {
        return Err(bad(ChipsProblem::TooLarge));
    }
    if units == 0 {
        return Err(bad(ChipsProblem::Zero));
    }
    Ok(units)
}

/// milliCHIPs as CHIPs with three decimals: `12500` is `"12.500"`.
pub fn format_chips(milli: u64) -> String {
    format!("{}.{:03}", milli / 1000, milli % 1000)
}

/// A signed balance in milliCHIPs as CHIPs, `-12.500` below zero.
pub fn format_signed_chips(milli: i64) -> String {
    let sign = if milli < 0 { "-" } else { "" };
    format!("{sign}{}", format_chips(milli.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_chips_have_at_most_three_decimals() {
        for (text, milli) in [
            ("12.5", 12_500),
            ("1", 1_000),
            ("0.001", 1),
            (".25", 250),
            ("007.100", 7_100),
            ("9223372036854775.807", 9_223_372_036_854_775_807),
        ] {
            assert_eq!(parse_chips(text), Ok(milli), "{text}");
        }
        for (text, problem) in [
            ("", ChipsProblem::Empty),
            (".", ChipsProblem::Empty),
            ("1.", ChipsProblem::TrailingPoint),
            ("0", ChipsProblem::Zero),
            ("0.000", ChipsProblem::Zero),
            ("-1", ChipsProblem::NotDigits),
            ("+1", ChipsProblem::NotDigits),
            ("1.0001", ChipsProblem::TooManyDecimals),
            ("1e3", ChipsProblem::NotDigits),
            ("1,5", ChipsProblem::NotDigits),
            (" 1", ChipsProblem::NotDigits),
            ("1..2", ChipsProblem::NotDigits),
            ("9223372036854775.808", ChipsProblem::TooLarge),
            ("99999999999999999999", ChipsProblem::TooLarge),
        ] {
            let err = parse_chips(text).expect_err(text);
            assert_eq!(err.problem, problem, "{text:?}");
            assert!(err.to_string().starts_with(&format!("{text:?} is not")));
        }
    }

    #[test]
    fn milli_chips_are_written_with_three_decimals() {
        assert_eq!(format_chips(0), "0.000");
        assert_eq!(format_chips(12_500), "12.500");
        assert_eq!(format_chips(1), "0.001");
        assert_eq!(format_signed_chips(-12_500), "-12.500");
        assert_eq!(format_signed_chips(7), "0.007");
        assert_eq!(
            format_signed_chips(i64::MIN),
            "-9223372036854775.808",
            "the most negative balance has no positive twin"
        );
        for milli in [1, 999, 1_000, 12_345, 9_223_372_036_854_775_807] {
            assert_eq!(parse_chips(&format_chips(milli)), Ok(milli));
        }
    }
}
