//! Fees: EIP-1559 prices from `eth_feeHistory` at a speed, the re-pricing of a stuck transaction, and the fee
//! cap for new transactions. Pure arithmetic on wei; the RPC calls are the workers' business.
//!
//! Replacement rule (geth, and the strictest of the clients): a replacement must raise both the priority fee
//! and the fee cap by at least 10%, rounded up. The cap for new transactions never applies to a replacement:
//! a cap that stops a stuck transaction from being replaced wedges its sender for good.

/// How fast a request should be included: which percentile of recent priority fees it pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Speed {
    Slow,
    #[default]
    Normal,
    Fast,
}

impl Speed {
    /// The reward percentiles to ask `eth_feeHistory` for, in the order `from_history` reads them.
    pub const PERCENTILES: [f64; 3] = [10.0, 50.0, 90.0];

    fn column(self) -> usize {
        match self {
            Speed::Slow => 0,
            Speed::Normal => 1,
            Speed::Fast => 2,
        }
    }

    pub fn parse(text: &str) -> Option<Speed> {
        match text {
            "slow" => Some(Speed::Slow),
            "normal" => Some(Speed::Normal),
            "fast" => Some(Speed::Fast),
            _ => None,
        }
    }
}

/// EIP-1559 fee fields, in wei.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

/// The least priority fee offered: never zero (geth's pool refuses tips under `--txpool.pricelimit`,
/// 1 wei by default).
pub const MIN_PRIORITY_FEE: u128 = 1;

/// Fees for a new transaction from `eth_feeHistory`: `next_base_fee` (the last entry of `baseFeePerGas`, the
/// next block's) and `rewards` (one row per block, one column per `Speed::PERCENTILES` entry). The priority
/// fee is the median over the blocks of the speed's percentile; the fee cap leaves room for the base fee to
/// double (two full blocks in a row) before the transaction is underpriced.
pub fn from_history(next_base_fee: u128, rewards: &[Vec<u128>], speed: Speed) -> Fees {
    let mut column: Vec<u128> = rewards.iter().filter_map(|row| row.get(speed.column()).copied()).collect();
    column.sort_unstable();
    let priority = column.get(column.len() / 2).copied().unwrap_or(MIN_PRIORITY_FEE).max(MIN_PRIORITY_FEE);
    Fees {
        max_fee_per_gas: next_base_fee.saturating_mul(2).saturating_add(priority),
        max_priority_fee_per_gas: priority,
    }
}

/// `value` raised by 10%, rounded up, and by at least 1 wei.
fn plus_ten_percent(value: u128) -> u128 {
    let raised = value.saturating_mul(11).div_ceil(10);
    raised.max(value.saturating_add(1))
}

/// The fees of a replacement for a stuck transaction: both fields at least +10% (rounded up), and at least
/// what the market asks now (`current`), with the priority fee never above the fee cap. No cap applies.
pub fn bump(previous: Fees, current: Fees) -> Fees {
    let priority = plus_ten_percent(previous.max_priority_fee_per_gas).max(current.max_priority_fee_per_gas);
    let max_fee = plus_ten_percent(previous.max_fee_per_gas).max(current.max_fee_per_gas).max(priority);
    Fees { max_fee_per_gas: max_fee, max_priority_fee_per_gas: priority }
}

/// Why a new transaction is not sent at these fees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the fee cap {needed} wei per gas is above the configured limit {limit}")]
pub struct AboveCap {
    pub needed: u128,
    pub limit: u128,
}

/// Checks a new transaction's fees against the configured cap (`None`: no cap). Replacements use `bump`,
/// which no cap limits.
pub fn within_cap(fees: Fees, cap: Option<u128>) -> Result<Fees, AboveCap> {
    match cap {
        Some(limit) if fees.max_fee_per_gas > limit => Err(AboveCap { needed: fees.max_fee_per_gas, limit }),
        _ => Ok(fees),
    }
}

/// How long to wait before re-pricing a transaction that is still pending after `bumps` re-pricings: the
/// wait doubles each time (from `first`, at most `max`), so a fee escalation cannot run away.
pub fn bump_after(bumps: u32, first: std::time::Duration, max: std::time::Duration) -> std::time::Duration {
    first.saturating_mul(2u32.saturating_pow(bumps.min(16))).min(max)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const GWEI: u128 = 1_000_000_000;

    #[test]
    fn new_fees_take_the_speeds_median_percentile_and_room_for_the_base_fee_to_double() {
        let rewards = vec![
            vec![GWEI, 2 * GWEI, 5 * GWEI],
            vec![GWEI, 3 * GWEI, 9 * GWEI],
            vec![2 * GWEI, 2 * GWEI, 7 * GWEI],
        ];
        let normal = from_history(10 * GWEI, &rewards, Speed::Normal);
        assert_eq!(normal, Fees { max_fee_per_gas: 22 * GWEI, max_priority_fee_per_gas: 2 * GWEI });
        let fast = from_history(10 * GWEI, &rewards, Speed::Fast);
        assert_eq!(fast.max_priority_fee_per_gas, 7 * GWEI);
        assert!(
            from_history(10 * GWEI, &rewards, Speed::Slow).max_priority_fee_per_gas
                <= normal.max_priority_fee_per_gas
        );
        // No history (a fresh chain, or empty blocks that report zero rewards): the minimum tip.
        assert_eq!(
            from_history(7, &[], Speed::Normal),
            Fees { max_fee_per_gas: 15, max_priority_fee_per_gas: 1 }
        );
        assert_eq!(from_history(7, &[vec![0, 0, 0]], Speed::Fast).max_priority_fee_per_gas, MIN_PRIORITY_FEE);
    }

    #[test]
    fn a_bump_raises_both_fields_by_ten_percent_rounded_up() {
        let previous = Fees { max_fee_per_gas: 15, max_priority_fee_per_gas: 3 };
        let quiet = Fees { max_fee_per_gas: 1, max_priority_fee_per_gas: 1 };
        // 15 * 1.1 = 16.5 -> 17; 3 * 1.1 = 3.3 -> 4.
        assert_eq!(bump(previous, quiet), Fees { max_fee_per_gas: 17, max_priority_fee_per_gas: 4 });
        // Tiny values still move (10% of 1 rounds up to 1).
        let tiny = Fees { max_fee_per_gas: 1, max_priority_fee_per_gas: 0 };
        assert_eq!(
            bump(tiny, Fees { max_fee_per_gas: 0, max_priority_fee_per_gas: 0 }),
            Fees { max_fee_per_gas: 2, max_priority_fee_per_gas: 1 }
        );
        // A market that moved more than 10% is followed.
        let spike = Fees { max_fee_per_gas: 100 * GWEI, max_priority_fee_per_gas: 2 * GWEI };
        let bumped = bump(Fees { max_fee_per_gas: 20 * GWEI, max_priority_fee_per_gas: GWEI }, spike);
        assert_eq!(bumped, spike);
        for fees in [previous, tiny, spike] {
            let next = bump(fees, quiet);
            assert!(next.max_fee_per_gas * 10 >= fees.max_fee_per_gas * 11, "{fees:?} -> {next:?}");
            assert!(next.max_priority_fee_per_gas * 10 >= fees.max_priority_fee_per_gas * 11);
            assert!(next.max_priority_fee_per_gas <= next.max_fee_per_gas);
        }
    }

    #[test]
    fn the_cap_refuses_new_transactions_only() {
        let fees = Fees { max_fee_per_gas: 50 * GWEI, max_priority_fee_per_gas: GWEI };
        assert_eq!(within_cap(fees, None), Ok(fees));
        assert_eq!(within_cap(fees, Some(50 * GWEI)), Ok(fees));
        assert_eq!(within_cap(fees, Some(40 * GWEI)), Err(AboveCap { needed: 50 * GWEI, limit: 40 * GWEI }));
        // A stuck transaction at the cap is still replaced above it.
        let bumped = bump(fees, fees);
        assert!(bumped.max_fee_per_gas > 50 * GWEI);
    }

    #[test]
    fn the_wait_before_a_bump_doubles_up_to_a_ceiling() {
        let (first, max) = (Duration::from_secs(15), Duration::from_secs(300));
        let waits: Vec<u64> = (0..7).map(|n| bump_after(n, first, max).as_secs()).collect();
        assert_eq!(waits, vec![15, 30, 60, 120, 240, 300, 300]);
        assert_eq!(bump_after(u32::MAX, first, max), max);
    }

    #[test]
    fn speeds_parse_from_their_names() {
        assert_eq!(Speed::parse("fast"), Some(Speed::Fast));
        assert_eq!(Speed::parse("normal"), Some(Speed::default()));
        assert_eq!(Speed::parse("ludicrous"), None);
    }
}
