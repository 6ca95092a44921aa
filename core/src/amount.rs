//! Amounts as people write them ("1.50") and as the ledger keeps them (base
//! units, `u64`). Pure integer arithmetic: no floats anywhere.

/// Why a decimal amount was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("the amount is empty")]
    Empty,
    #[error("{input:?} is not an amount: use digits with an optional decimal point, e.g. 12.50")]
    NotANumber { input: String },
    #[error("{input:?} has more than {decimals} decimal places, the most {symbol} allows")]
    TooManyDecimals {
        input: String,
        decimals: u8,
        symbol: String,
    },
    #[error("{input:?} is too large")]
    TooLarge { input: String },
    #[error("the amount must be more than zero")]
    Zero,
}

/// Parses a decimal string such as `"1.5"`, `"0.0000369"` or `"12"` into
/// base units of an asset with `decimals` decimal places. Refuses signs,
/// exponents, separators, more decimals than the asset has, zero, and
/// values that do not fit (base units must stay below 2^63).
pub fn parse_amount(input: &str, decimals: u8, symbol: &str) -> Result<u64, AmountError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(AmountError::Empty);
    }
    let not_a_number = || AmountError::NotANumber {
        input: input.to_owned(),
    };
    let (whole, fraction) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err(not_a_number());
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_number());
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > usize::from(decimals) {
        return Err(AmountError::TooManyDecimals {
            input: input.to_owned(),
            decimals,
            symbol: symbol.to_owned(),
        });
    }
    let too_large = || AmountError::TooLarge {
        input: input.to_owned(),
    };
    let scale = 10u128
        .checked_pow(u32::from(decimals))
        .ok_or_else(too_large)?;
    let whole = whole.trim_start_matches('0');
    if whole.len() > 20 {
        return Err(too_large());
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut frac: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| not_a_number())?
    };
    for _ in fraction.len()..usize::from(decimals) {
        frac *= 10;
    }
    let total = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(too_large)?;
    if total == 0 {
        return Err(AmountError::Zero);
    }
    if total > i64::MAX as u128 {
        return Err(too_large());
    }
    Ok(total as u64)
}

/// Writes base units as a decimal string: all significant decimals, at least
/// two (or `decimals` if fewer): `150` EURT cents -> `"1.50"`, `3690` NOTE
/// base units (8 decimals) -> `"0.0000369"`.
pub fn format_amount(amount: impl Into<u128>, decimals: u8) -> String {
    format_unsigned("", amount.into(), decimals)
}

/// [`format_amount`] for a signed amount (net changes in history).
pub fn format_signed(amount: i128, decimals: u8) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    format_unsigned(sign, amount.unsigned_abs(), decimals)
}

fn format_unsigned(sign: &str, value: u128, decimals: u8) -> String {
    if decimals == 0 {
        return format!("{sign}{value}");
    }
    let decimals = decimals.min(38);
    let scale = 10u128.pow(u32::from(decimals));
    let whole = value / scale;
    let frac = value % scale;
    let mut digits = format!("{frac:0width$}", width = usize::from(decimals));
    let keep = usize::from(decimals.min(2));
    while digits.len() > keep && digits.ends_with('0') {
        digits.pop();
    }
    format!("{sign}{whole}.{digits}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_strings_exactly() {
        assert_eq!(parse_amount("1.50", 2, "EURT"), Ok(150));
        assert_eq!(parse_amount("1.5", 2, "EURT"), Ok(150));
        assert_eq!(parse_amount("2", 2, "EURT"), Ok(200));
        assert_eq!(parse_amount(".25", 2, "EURT"), Ok(25));
        assert_eq!(parse_amount("3.", 2, "EURT"), Ok(300));
        assert_eq!(parse_amount("0.0000369", 8, "NOTE"), Ok(3690));
        assert_eq!(parse_amount(" 10 ", 8, "NOTE"), Ok(1_000_000_000));
        assert_eq!(parse_amount("1.1000", 2, "EURT"), Ok(110));
        assert_eq!(parse_amount("0007", 0, "X"), Ok(7));
        // 0.1 + 0.2 style float traps do not exist here.
        assert_eq!(parse_amount("0.3", 6, "USDT"), Ok(300_000));
        assert_eq!(
            parse_amount("92233720368.54775807", 8, "NOTE"),
            Ok(i64::MAX as u64)
        );
    }

    #[test]
    fn refuses_what_is_not_an_amount() {
        assert_eq!(parse_amount("", 2, "EURT"), Err(AmountError::Empty));
        for bad in [
            "-1", "+1", "1e3", "1,50", "1.2.3", ".", "abc", "1 000", "0x10",
        ] {
            assert!(
                matches!(
                    parse_amount(bad, 2, "EURT"),
                    Err(AmountError::NotANumber { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(parse_amount("0", 2, "EURT"), Err(AmountError::Zero));
        assert_eq!(parse_amount("0.00", 2, "EURT"), Err(AmountError::Zero));
        let err = parse_amount("1.234", 2, "EURT").expect_err("3 decimals");
        assert_eq!(
            err.to_string(),
            "\"1.234\" has more than 2 decimal places, the most EURT allows"
        );
        assert!(matches!(
            parse_amount("92233720368.54775808", 8, "NOTE"),
            Err(AmountError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_amount(&"9".repeat(40), 2, "EURT"),
            Err(AmountError::TooLarge { .. })
        ));
    }

    #[test]
    fn formats_with_the_asset_decimals() {
        assert_eq!(format_amount(150u64, 2), "1.50");
        assert_eq!(format_amount(200u64, 2), "2.00");
        assert_eq!(format_amount(3690u64, 8), "0.0000369");
        assert_eq!(format_amount(1_000_000_000u64, 8), "10.00");
        assert_eq!(format_amount(7u64, 0), "7");
        assert_eq!(format_amount(5u64, 1), "0.5");
        assert_eq!(format_signed(-150, 2), "-1.50");
        for (n, d) in [(1u64, 8u8), (123_456_789, 6), (99, 2), (u64::MAX >> 1, 8)] {
            assert_eq!(parse_amount(&format_amount(n, d), d, "X"), Ok(n));
        }
    }
}
