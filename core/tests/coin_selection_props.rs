//! Properties of coin selection (`notch_core::tx::{select_coins,
//! branch_and_bound, largest_first}`), checked on random pools: never
//! overspends (inputs = payment + fee + change, exactly), never uses a coin
//! it was not given, never pays more fee than a change output would have
//! cost, totals exact in u128 even with amounts near `u64::MAX`, and
//! "insufficient funds" exactly when the pool cannot pay.
//!
//! 256 cases per property (`PROPTEST_CASES` overrides).

use std::collections::{HashMap, HashSet};

use notch_core::protocol::{AssetId, ChainParams, Network};
use notch_core::store::{Hash32, OutPoint};
use notch_core::tx::{Coin, Selection, branch_and_bound, fee_for, largest_first, select_coins};
use proptest::prelude::*;

const NATIVE: Hash32 = [1; 32];
const EURT: Hash32 = [2; 32];
const USDT: Hash32 = [3; 32];

fn params(base: u64, per_byte: u64) -> ChainParams {
    ChainParams {
        network: Network::Sandbox,
        native_asset: AssetId(NATIVE),
        min_fee_base: base,
        min_fee_per_byte: per_byte,
    }
}

/// Coins with distinct outpoints (`tag` keeps pools of different assets
/// apart).
fn coins(tag: u8, amounts: &[u64]) -> Vec<Coin> {
    amounts
        .iter()
        .enumerate()
        .map(|(i, &amount)| {
            let mut txid = [tag; 32];
            txid[..2].copy_from_slice(&(i as u16).to_le_bytes());
            Coin {
                outpoint: OutPoint {
                    txid,
                    vout: i as u32 % 3,
                },
                amount,
            }
        })
        .collect()
}

fn total(coins: &[Coin]) -> u128 {
    coins.iter().map(|c| u128::from(c.amount)).sum()
}

/// The pool and payments of one case.
#[derive(Clone)]
struct Case {
    base: u64,
    per_byte: u64,
    pools: HashMap<Hash32, Vec<Coin>>,
    /// (asset, amount), one entry per asset (prepare_send sums recipients
    /// of the same asset before it selects).
    payments: Vec<(Hash32, u64)>,
    outputs: usize,
}

fn name(asset: &Hash32) -> &'static str {
    match *asset {
        NATIVE => "NOTE",
        EURT => "EURT",
        USDT => "USDT",
        _ => "?",
    }
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut pools: Vec<(&str, Vec<u64>)> = self
            .pools
            .iter()
            .map(|(a, c)| (name(a), c.iter().map(|c| c.amount).collect()))
            .collect();
        pools.sort();
        let payments: Vec<(&str, u64)> = self.payments.iter().map(|(a, v)| (name(a), *v)).collect();
        f.debug_struct("Case")
            .field("fee", &format!("{} + {}/byte", self.base, self.per_byte))
            .field("coins", &pools)
            .field("payments", &payments)
            .field("outputs", &self.outputs)
            .finish()
    }
}

fn case(
    amount: impl Strategy<Value = u64> + Clone,
    pay: impl Strategy<Value = u64> + Clone,
) -> impl Strategy<Value = Case> {
    (
        0u64..5_000,
        0u64..50,
        prop::collection::vec(amount.clone(), 0..12),
        prop::collection::vec(amount.clone(), 0..6),
        prop::collection::vec(amount, 0..4),
        prop::option::of(pay.clone()),
        prop::option::of(pay.clone()),
        prop::option::of(pay),
        1usize..4,
    )
        .prop_map(
            |(base, per_byte, native, eurt, usdt, pay_native, pay_eurt, pay_usdt, extra)| {
                let mut pools = HashMap::new();
                pools.insert(NATIVE, coins(0xa0, &native));
                pools.insert(EURT, coins(0xb0, &eurt));
                if !usdt.is_empty() {
                    pools.insert(USDT, coins(0xc0, &usdt));
                }
                let mut payments = Vec::new();
                for (asset, pay) in [(NATIVE, pay_native), (EURT, pay_eurt), (USDT, pay_usdt)] {
                    if let Some(p) = pay {
                        payments.push((asset, p));
                    }
                }
                if payments.is_empty() {
                    payments.push((NATIVE, 1));
                }
                // At least one recipient output per paid asset.
                let outputs = payments.len() + extra - 1;
                Case {
                    base,
                    per_byte,
                    pools,
                    payments,
                    outputs,
                }
            },
        )
}

/// Everything a selection must satisfy; `Err` names what it breaks.
fn check_selection(c: &Case, s: &Selection) -> Result<(), String> {
    let p = params(c.base, c.per_byte);
    let mut used: HashSet<OutPoint> = HashSet::new();
    let mut inputs: HashMap<Hash32, u128> = HashMap::new();
    let mut count = 0usize;
    for (asset, picked) in &s.inputs {
        let pool = c.pools.get(asset).cloned().unwrap_or_default();
        for coin in picked {
            if !pool.contains(coin) {
                return Err(format!("{coin:?} is not a coin of the pool it was given"));
            }
            if !used.insert(coin.outpoint) {
                return Err(format!("{:?} is selected twice", coin.outpoint));
            }
            *inputs.entry(*asset).or_default() += u128::from(coin.amount);
            count += 1;
        }
    }
    let mut change: HashMap<Hash32, u128> = HashMap::new();
    for (asset, amount) in &s.change {
        if *amount == 0 {
            return Err("a change output of 0".into());
        }
        if change.insert(*asset, u128::from(*amount)).is_some() {
            return Err("two change outputs of one asset".into());
        }
    }
    let mut assets: HashSet<Hash32> = inputs.keys().copied().collect();
    assets.extend(c.payments.iter().map(|p| p.0));
    assets.insert(NATIVE);
    for asset in assets {
        let pay: u128 = c
            .payments
            .iter()
            .filter(|p| p.0 == asset)
            .map(|p| u128::from(p.1))
            .sum();
        let fee = if asset == NATIVE {
            u128::from(s.fee)
        } else {
            0
        };
        let got = inputs.get(&asset).copied().unwrap_or(0);
        let back = change.get(&asset).copied().unwrap_or(0);
        if got != pay + fee + back {
            return Err(format!(
                "asset {}: inputs {got} != payment {pay} + fee {fee} + change {back}",
                asset[0]
            ));
        }
    }
    // The fee pays for the transaction built, and at most what a change
    // output would have cost on top.
    let outputs = c.outputs + s.change.len();
    let min = fee_for(&p, count, outputs);
    let max = fee_for(&p, count, outputs + 1);
    if s.fee < min {
        return Err(format!(
            "fee {} below the rule's {min} for {count} inputs, {outputs} outputs",
            s.fee
        ));
    }
    if s.fee > max {
        return Err(format!(
            "fee {} above {max}: more than a change output would have cost",
            s.fee
        ));
    }
    Ok(())
}

/// Selects and checks: a selection must be right; a shortfall must be
/// true (checked against what is certainly enough / certainly too little).
fn run(c: &Case) -> Result<(), TestCaseError> {
    let p = params(c.base, c.per_byte);
    let result = select_coins(&p, NATIVE, &c.payments, c.outputs, &c.pools);
    let have = |a: &Hash32| c.pools.get(a).map(|v| total(v)).unwrap_or(0);
    let pay = |a: &Hash32| {
        c.payments
            .iter()
            .filter(|p| p.0 == *a)
            .map(|p| u128::from(p.1))
            .sum::<u128>()
    };
    let tokens: Vec<Hash32> = c
        .payments
        .iter()
        .map(|p| p.0)
        .filter(|a| *a != NATIVE)
        .collect();
    let all_coins: usize = c.pools.values().map(Vec::len).sum();
    // Certainly enough: every token covered, and native coins covering the
    // payment plus the fee of a transaction using every coin with a change
    // output per asset.
    let enough = tokens.iter().all(|a| have(a) >= pay(a))
        && have(&NATIVE)
            >= pay(&NATIVE) + u128::from(fee_for(&p, all_coins, c.outputs + tokens.len() + 1));
    // Certainly too little: a token short, or not even one native input's
    // worth of fee on top of the native payment.
    let min_inputs = 1 + tokens.iter().filter(|a| pay(a) > 0).count();
    let short = tokens.iter().any(|a| have(a) < pay(a))
        || have(&NATIVE) < pay(&NATIVE) + u128::from(fee_for(&p, min_inputs, c.outputs));
    match result {
        Ok(s) => {
            prop_assert!(!short, "selected although the pool cannot pay: {s:?}");
            if let Err(e) = check_selection(c, &s) {
                return Err(TestCaseError::fail(format!("{e}\n{s:?}")));
            }
        }
        Err(f) => {
            prop_assert!(!enough, "insufficient funds reported with enough: {f:?}");
            let total = have(&f.asset);
            let said = u128::from(f.have);
            prop_assert!(
                said == total || (total > u128::from(u64::MAX) && said == u128::from(u64::MAX)),
                "the shortfall says {} of {:?} but the pool holds {}",
                said,
                f.asset[0],
                total
            );
            prop_assert!(
                f.need > u128::from(f.have),
                "a shortfall that needs {} of {}",
                f.need,
                f.have
            );
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn select_coins_never_overspends(c in case(1u64..1_000_000_000, 1u64..3_000_000_000)) {
        run(&c)?;
    }

    #[test]
    fn select_coins_is_exact_near_u64_max(
        c in case(u64::MAX / 4..=u64::MAX, u64::MAX / 2..=u64::MAX - 10_000_000)
    ) {
        run(&c)?;
    }

    #[test]
    fn select_coins_with_mixed_small_and_huge_coins(
        c in case(
            prop_oneof![1u64..100_000, u64::MAX - 1_000_000..=u64::MAX],
            prop_oneof![1u64..100_000, u64::MAX / 2..=u64::MAX],
        )
    ) {
        run(&c)?;
    }

    /// Locked coins are left out by the caller; what is selected is a subset
    /// of what it was given, so never a locked coin.
    #[test]
    fn locked_coins_are_never_selected(
        amounts in prop::collection::vec(1u64..1_000_000_000, 1..16),
        locked in prop::collection::vec(any::<bool>(), 16),
        pay in 1u64..2_000_000_000,
    ) {
        let all = coins(0xd0, &amounts);
        type Numbered = Vec<(usize, Coin)>;
        let (locked, free): (Numbered, Numbered) =
            all.iter().copied().enumerate().partition(|(i, _)| locked[*i]);
        let locked: HashSet<OutPoint> = locked.into_iter().map(|(_, c)| c.outpoint).collect();
        let free: Vec<Coin> = free.into_iter().map(|(_, c)| c).collect();
        let mut pools = HashMap::new();
        pools.insert(NATIVE, free.clone());
        let p = params(1_000, 10);
        if let Ok(s) = select_coins(&p, NATIVE, &[(NATIVE, pay)], 1, &pools) {
            for (_, picked) in &s.inputs {
                for coin in picked {
                    prop_assert!(!locked.contains(&coin.outpoint), "locked {coin:?} selected");
                    prop_assert!(free.contains(coin), "{coin:?} was not given");
                }
            }
        }
        // And the search functions on their own.
        if let Some(picked) = branch_and_bound(&free, pay, 100, 1_000) {
            prop_assert!(picked.iter().all(|c| free.contains(c) && !locked.contains(&c.outpoint)));
        }
        if let Some(picked) = largest_first(&free, |_| pay) {
            prop_assert!(picked.iter().all(|c| free.contains(c) && !locked.contains(&c.outpoint)));
        }
    }

    /// Branch-and-bound returns a subset within the window; on small pools
    /// (exhaustive) it finds one whenever one exists.
    #[test]
    fn branch_and_bound_is_sound_and_complete_on_small_pools(
        amounts in prop::collection::vec(prop_oneof![1u64..10_000, u64::MAX - 10_000..=u64::MAX], 0..10),
        target in prop_oneof![0u64..40_000, u64::MAX - 20_000..=u64::MAX],
        cost in 0u64..200,
        window in 0u64..500,
    ) {
        let pool = coins(0xe0, &amounts);
        let found = branch_and_bound(&pool, target, cost, window);
        let lo = u128::from(target);
        let hi = lo + u128::from(window);
        let value = |c: &Coin| u128::from(c.amount) - u128::from(cost);
        if let Some(picked) = &found {
            let mut seen = HashSet::new();
            for c in picked {
                prop_assert!(pool.contains(c), "{c:?} is not in the pool");
                prop_assert!(seen.insert(c.outpoint), "{c:?} twice");
                prop_assert!(c.amount > cost, "{c:?} is worth nothing after its cost {cost}");
            }
            let sum: u128 = picked.iter().map(value).sum();
            prop_assert!(lo <= sum && sum <= hi, "{sum} outside [{lo}, {hi}]");
        }
        // Brute force over the subsets of coins worth more than their cost.
        let usable: Vec<&Coin> = pool.iter().filter(|c| c.amount > cost).collect();
        let exists = (0u32..(1 << usable.len())).any(|mask| {
            let sum: u128 = usable
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, c)| value(c))
                .sum();
            lo <= sum && sum <= hi
        });
        prop_assert_eq!(
            found.is_some(),
            exists,
            "a subset in [{}, {}] exists: {}, found: {:?}",
            lo,
            hi,
            exists,
            found
        );
    }

    /// Largest-first covers the need with the largest coins and stops as
    /// soon as it is covered; `None` only when all coins fall short.
    #[test]
    fn largest_first_covers_or_says_no(
        amounts in prop::collection::vec(prop_oneof![1u64..1_000_000, u64::MAX / 2..=u64::MAX], 0..20),
        base in prop_oneof![0u64..5_000_000, u64::MAX - 1_000_000..=u64::MAX],
        per in 0u64..10_000,
    ) {
        let pool = coins(0xf0, &amounts);
        let need = |k: usize| base.saturating_add(per.saturating_mul(k as u64));
        match largest_first(&pool, need) {
            Some(picked) => {
                let mut seen = HashSet::new();
                for c in &picked {
                    prop_assert!(pool.contains(c));
                    prop_assert!(seen.insert(c.outpoint));
                }
                let sum = total(&picked);
                prop_assert!(sum >= u128::from(need(picked.len())), "{sum} < need");
                // Largest first: nothing left out is larger than what was picked.
                let smallest = picked.iter().map(|c| c.amount).min().unwrap_or(0);
                for c in pool.iter().filter(|c| !picked.contains(c)) {
                    prop_assert!(c.amount <= smallest, "{c:?} left out for a smaller coin");
                }
                // Stops once covered.
                if picked.len() > 1 {
                    let without_last = sum - u128::from(picked[picked.len() - 1].amount);
                    prop_assert!(
                        without_last < u128::from(need(picked.len() - 1)),
                        "took a coin after the need was covered"
                    );
                }
            }
            None => {
                prop_assert!(
                    total(&pool) < u128::from(need(pool.len())) || pool.is_empty(),
                    "all coins ({}) cover the need ({}) but none were selected",
                    total(&pool),
                    need(pool.len())
                );
            }
        }
    }
}
