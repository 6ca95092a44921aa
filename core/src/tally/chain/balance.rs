//! Balances and credit limits, in milliCHIPs.
//!
//! **Sign.** From the holder's side, a chit the partner issued adds its
//! units and one the holder issued subtracts them, so a positive balance
//! means the partner owes the holder (MyCHIPs `chits_v`: `uSign(units)` =
//! `case when ch.issuer = te.tally_type then -units else units end`). The
//! two halves of a tally therefore show opposite balances.
//!
//! **Sums.** MyCHIPs keeps two (`chits_v`): `net_g`, the good chits, and
//! `net_p`, every chit not void (invoices included). Notch adds a third,
//! for limits: the good chits plus the holder's own signed chits that are
//! not yet delivered (`L.pend.good`), because a signature binds the signer
//! as soon as it is made. Sums are `i128`: each chit is below 2^63, so no
//! realistic number of chits can overflow.
//!
//! **Limits.** Each half of the tally carries the credit terms its holder
//! grants the other (MyCHIPs `tallies.wmt`: `hold_terms` "The terms the
//! tally holder grants to the partner"); `terms.limit` is the most the
//! partner may owe (`doc/learn-tally.md`, "Maximum Balance (limit)"). A
//! setting chit whose `ref` has `limit` replaces its issuer's limit
//! (`doc/learn-tally.md`, "Simplified Credit Terms": the limit "can be
//! overridden … by a setting asserted by the user"); the latest one in
//! chain order counts.
//!
//! MyCHIPs does not stop anyone from signing past a limit ("There is not
//! necessarily a system mechanism to prevent a debtor from pledging more
//! than his credit limit"); Notch refuses to *sign* such a chit for its own
//! user, and still accepts such a chit from the partner (it binds the
//! partner, to the holder's benefit).
//!
//! **Unit of `limit` (a Notch decision).** MyCHIPs's documents state limits
//! in CHIPs ("if I extend you 10 CHIPs of credit"; the examples `limit:
//! 100` beside "$100") while chit `units` are milliCHIPs. Notch reads
//! `limit` as CHIPs: a number with at most three decimals, times 1000. An
//! absent or `null` limit grants no credit (0). Anything else (an
//! expression such as `"amort(10000, 240)"`, a negative number) cannot be
//! enforced, and signing is refused with [`LimitProblem`] rather than
//! guessed.

use std::fmt;

use serde_json::Value;

use super::super::record::Side;

/// milliCHIPs per CHIP.
pub const MILLI_PER_CHIP: u64 = 1000;

/// A balance from one side's point of view, in milliCHIPs; positive when
/// the partner owes this side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Balance {
    /// Good chits (MyCHIPs `net_g`).
    pub good: i128,
    /// Every chit not void, invoices included (MyCHIPs `net_p`).
    pub pending: i128,
    /// Good chits plus this side's own signed, undelivered chits: what
    /// limits are checked against.
    pub committed: i128,
}

impl Balance {
    /// The same balance seen from the other half of the tally.
    pub fn flipped(self) -> Balance {
        Balance {
            good: -self.good,
            pending: -self.pending,
            committed: -self.committed,
        }
    }
}

/// A credit limit one side grants the other, in milliCHIPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CreditLimit {
    /// The side that grants it (and risks it).
    pub granted_by: Side,
    pub milli_chips: u64,
}

/// Why a limit cannot be enforced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the credit limit the {granted_by} grants, {value}, is not a number of CHIPs Notch can enforce"
)]
pub struct LimitProblem {
    pub granted_by: Side,
    /// The value as written (JSON).
    pub value: String,
}

/// Reads a `limit` value (see the module docs): `None` or `null` is 0.
pub fn parse_limit(granted_by: Side, value: Option<&Value>) -> Result<CreditLimit, LimitProblem> {
    let problem = |v: &Value| LimitProblem {
        granted_by,
        value: v.to_string(),
    };
    let milli_chips = match value {
        None | Some(Value::Null) => 0,
        Some(v @ Value::Number(n)) => {
            if let Some(chips) = n.as_u64() {
                chips
                    .checked_mul(MILLI_PER_CHIP)
                    .ok_or_else(|| problem(v))?
            } else {
                let chips = n.as_f64().ok_or_else(|| problem(v))?;
                let milli = chips * MILLI_PER_CHIP as f64;
                // At most three decimals (what a milliCHIP can express),
                // tolerating the binary rounding of decimal fractions.
                let rounded = milli.round();
                if !milli.is_finite()
                    || milli < 0.0
                    || (milli - rounded).abs() > 1e-6 * rounded.abs().max(1.0)
                    || rounded >= u64::MAX as f64
                {
                    return Err(problem(v));
                }
                rounded as u64
            }
        }
        Some(v) => return Err(problem(v)),
    };
    Ok(CreditLimit {
        granted_by,
        milli_chips,
    })
}

/// A payment or approval that would take the balance past the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OverLimit {
    /// The signer's committed balance before the chit.
    pub balance: i128,
    /// The chit's units.
    pub units: u64,
    /// The limit the partner grants the signer.
    pub limit: CreditLimit,
}

impl fmt::Display for OverLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let after = self.balance - i128::from(self.units);
        write!(
            f,
            "paying {} milliCHIPs would bring the balance to {after} milliCHIPs, \
             past the credit of {} milliCHIPs the {} grants",
            self.units, self.limit.milli_chips, self.limit.granted_by
        )
    }
}

/// Checks that paying `units` from a committed `balance` stays within
/// `limit` (the partner's grant): the balance may go down to `-limit`.
pub fn check_limit(balance: i128, units: u64, limit: CreditLimit) -> Result<(), OverLimit> {
    if balance - i128::from(units) < -i128::from(limit.milli_chips) {
        Err(OverLimit {
            balance,
            units,
            limit,
        })
    } else {
        Ok(())
    }
}

/// Where an open tally is in its closing (MyCHIPs `mychips.tally_state`:
/// status `open`; status `close` after a setting chit with `close: true`,
/// shown as `closing` while the balance is not zero and `closed` once it
/// is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseState {
    Open,
    Closing,
    Closed,
}

/// A chit that would move the balance of a closing tally away from zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AwayFromZero {
    /// The balance before the chit, from the holder's side.
    pub balance: i128,
    /// What the chit would add to it.
    pub change: i128,
}

impl fmt::Display for AwayFromZero {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the tally is closing: a chit may only bring its balance ({} milliCHIPs) toward zero, \
             and this one would make it {} milliCHIPs",
            self.balance,
            self.balance + self.change
        )
    }
}

/// On a closing tally only chits that bring the balance toward zero are
/// made: the balance after the chit lies between 0 and the balance before
/// (it neither grows nor changes sign). A chit of 0 changes nothing and is
/// allowed.
pub fn check_toward_zero(balance: i128, change: i128) -> Result<(), AwayFromZero> {
    let after = balance + change;
    let toward = change == 0
        || (balance > 0 && (0..=balance).contains(&after))
        || (balance < 0 && (balance..=0).contains(&after));
    if toward {
        Ok(())
    } else {
        Err(AwayFromZero { balance, change })
    }
}

/// Why a setting chit is refused (before it is signed, or when the
/// partner's arrives).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingProblem {
    #[error("a setting chit's ref must be an object of settings (limit, close, target, bound …)")]
    NotAnObject,
    #[error(transparent)]
    Limit(#[from] LimitProblem),
    #[error("the setting close must be true or false, not {0}")]
    BadClose(String),
    #[error(
        "the {granted_by} asked to close this tally, so it cannot raise the credit it grants \
         (from {from} to {to} milliCHIPs)"
    )]
    RaisesLimit {
        granted_by: Side,
        from: u64,
        to: u64,
    },
}

/// Checks the settings of a setting chit `by` issues: `ref` is an object;
/// a `limit` in it is a number of CHIPs Notch can enforce ([`parse_limit`]);
/// `close` is a boolean; and a side that asked to close the tally
/// (`closing_by_issuer`) does not raise the credit it grants above
/// `current`, the limit it grants now (a closing tally extends no new
/// credit). Lowering a limit is always allowed.
pub fn check_settings(
    by: Side,
    settings: Option<&Value>,
    current: Result<CreditLimit, LimitProblem>,
    closing_by_issuer: bool,
) -> Result<(), SettingProblem> {
    let Some(Value::Object(map)) = settings else {
        return Err(SettingProblem::NotAnObject);
    };
    if let Some(close) = map.get("close")
        && !close.is_boolean()
    {
        return Err(SettingProblem::BadClose(close.to_string()));
    }
    let Some(limit) = map.get("limit") else {
        return Ok(());
    };
    let new = parse_limit(by, Some(limit))?;
    if closing_by_issuer
        && let Ok(current) = current
        && new.milli_chips > current.milli_chips
    {
        return Err(SettingProblem::RaisesLimit {
            granted_by: by,
            from: current.milli_chips,
            to: new.milli_chips,
        });
    }
    Ok(())
}

/// `milli_chips` as the `limit` of a setting chit: CHIPs, an integer when
/// whole, else a number with up to three decimals (what [`parse_limit`]
/// reads back exactly).
pub fn limit_value(milli_chips: u64) -> Value {
    if milli_chips.is_multiple_of(MILLI_PER_CHIP) {
        Value::from(milli_chips / MILLI_PER_CHIP)
    } else {
        // Exact for every amount below 2^53 milliCHIPs; parse_limit rounds
        // the binary fraction back to the milliCHIP.
        Value::from(milli_chips as f64 / MILLI_PER_CHIP as f64)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn limits_are_chips() {
        let read = |v: Value| parse_limit(Side::Stock, Some(&v)).map(|l| l.milli_chips);
        assert_eq!(read(json!(100)), Ok(100_000));
        assert_eq!(read(json!(0)), Ok(0));
        assert_eq!(read(json!(2.5)), Ok(2_500));
        assert_eq!(read(json!(1.001)), Ok(1_001));
        assert_eq!(read(json!(null)), Ok(0));
        assert_eq!(parse_limit(Side::Foil, None).map(|l| l.milli_chips), Ok(0));
        for bad in [
            json!(-1),
            json!(0.0005),
            json!("amort(10000, 240)"),
            json!("100"),
            json!([100]),
            json!(u64::MAX),
        ] {
            let error = read(bad.clone()).expect_err("refused");
            assert_eq!(error.value, bad.to_string());
        }
        assert_eq!(
            read(json!("x")).expect_err("x").to_string(),
            "the credit limit the stock grants, \"x\", is not a number of CHIPs Notch can enforce"
        );
    }

    #[test]
    fn the_limit_is_the_floor() {
        let limit = CreditLimit {
            granted_by: Side::Foil,
            milli_chips: 1_000,
        };
        assert_eq!(check_limit(0, 1_000, limit), Ok(()));
        assert_eq!(check_limit(500, 1_500, limit), Ok(()));
        let over = check_limit(0, 1_001, limit).expect_err("over");
        assert_eq!(
            over.to_string(),
            "paying 1001 milliCHIPs would bring the balance to -1001 milliCHIPs, past the credit of 1000 milliCHIPs the foil grants"
        );
        // Already past the limit (the partner lowered it): no more payments.
        assert!(check_limit(-2_000, 1, limit).is_err());
        assert!(check_limit(-2_000, 0, limit).is_err());
    }

    #[test]
    fn closing_moves_only_toward_zero() {
        assert_eq!(check_toward_zero(3_000, -1_000), Ok(()));
        assert_eq!(check_toward_zero(3_000, -3_000), Ok(()));
        assert_eq!(check_toward_zero(-3_000, 3_000), Ok(()));
        assert_eq!(check_toward_zero(-3_000, 1), Ok(()));
        assert_eq!(check_toward_zero(5, 0), Ok(()));
        for (balance, change) in [
            (3_000, 1),
            (3_000, -3_001),
            (-3_000, -1),
            (-3_000, 3_001),
            (0, 1),
            (0, -1),
        ] {
            let away = check_toward_zero(balance, change).expect_err("away from zero");
            assert_eq!(away, AwayFromZero { balance, change });
        }
        assert_eq!(
            check_toward_zero(3_000, 1).expect_err("away").to_string(),
            "the tally is closing: a chit may only bring its balance (3000 milliCHIPs) toward zero, and this one would make it 3001 milliCHIPs"
        );
    }

    #[test]
    fn settings_are_checked() {
        let now = |m: u64| {
            Ok(CreditLimit {
                granted_by: Side::Stock,
                milli_chips: m,
            })
        };
        let ok =
            |v: Value, closing: bool| check_settings(Side::Stock, Some(&v), now(100_000), closing);
        assert_eq!(ok(json!({"limit": 150}), false), Ok(()));
        assert_eq!(ok(json!({"limit": 50}), true), Ok(()));
        assert_eq!(ok(json!({"limit": 100}), true), Ok(()));
        assert_eq!(ok(json!({"close": true}), false), Ok(()));
        assert_eq!(ok(json!({"target": 7}), true), Ok(()));
        assert_eq!(
            ok(json!({"limit": 100.001}), true),
            Err(SettingProblem::RaisesLimit {
                granted_by: Side::Stock,
                from: 100_000,
                to: 100_001
            })
        );
        assert!(matches!(
            ok(json!({"limit": -1}), false),
            Err(SettingProblem::Limit(_))
        ));
        assert!(matches!(
            ok(json!({"limit": "amort(10000, 240)"}), false),
            Err(SettingProblem::Limit(_))
        ));
        assert_eq!(
            ok(json!({"close": "yes"}), false),
            Err(SettingProblem::BadClose("\"yes\"".into()))
        );
        assert_eq!(ok(json!([1]), false), Err(SettingProblem::NotAnObject));
        assert_eq!(
            check_settings(Side::Foil, None, now(0), false),
            Err(SettingProblem::NotAnObject)
        );
    }

    #[test]
    fn limit_values_read_back() {
        for milli in [
            0u64,
            1,
            999,
            1_000,
            1_001,
            100_000,
            123_456_789,
            9_007_199_254_740_000,
        ] {
            let value = limit_value(milli);
            assert_eq!(
                parse_limit(Side::Foil, Some(&value)).map(|l| l.milli_chips),
                Ok(milli),
                "{value}"
            );
        }
        assert_eq!(limit_value(150_000), json!(150));
        assert_eq!(limit_value(1_500), json!(1.5));
    }
}
