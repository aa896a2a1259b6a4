//! The quota charges one relayed request makes: per user (`from`) and per API key, requests per window and
//! gas and cost per UTC day, and the sponsor's lifetime budget. Costs are counted in gwei (rounded up; limits
//! rounded down), so a day of any realistic spend fits the database's 64-bit counters.

use alloy_primitives::U256;
use gemgate_config::{QuotaSettings, RelayerSettings};
use gemgate_domain::relay::QuotaCharge;

const DAY: u64 = 86_400;
const GWEI: u64 = 1_000_000_000;

/// What a charge counts, to say which limit refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// A quota of `subject` (`user 0x..` or `key backend`) on `what`, whose window ends at `ends` (Unix s).
    Quota {
        subject: String,
        what: &'static str,
        ends: u64,
    },
    Budget,
}

/// The charges for one request of `gas` gas costing `cost_wei`, at `now` (Unix seconds).
pub fn charges(
    relayer: &RelayerSettings,
    from: &str,
    key: Option<&str>,
    gas: u64,
    cost_wei: U256,
    now: u64,
) -> Vec<(QuotaCharge, Limit)> {
    let cost = gwei_up(cost_wei);
    let mut out = Vec::new();
    let mut subject = |quota: &QuotaSettings, kind: &str, id: &str| {
        let name = format!("{kind} {id}");
        let bucket = |what: &str| format!("{}:{kind}:{id}:{what}", relayer.name);
        if let Some(limit) = quota.requests {
            let window = quota.window.as_secs().max(1);
            let start = now - now % window;
            let limit_of = Limit::Quota { subject: name.clone(), what: "requests", ends: start + window };
            out.push((
                QuotaCharge { bucket: bucket("requests"), window_start: start, amount: 1, limit },
                limit_of,
            ));
        }
        let day = now - now % DAY;
        if let Some(limit) = quota.gas_per_day {
            let limit_of = Limit::Quota { subject: name.clone(), what: "gas per day", ends: day + DAY };
            out.push((
                QuotaCharge { bucket: bucket("gas"), window_start: day, amount: gas, limit },
                limit_of,
            ));
        }
        if let Some(limit) = quota.wei_per_day {
            let limit_of = Limit::Quota { subject: name, what: "spend per day", ends: day + DAY };
            let limit = gwei_down(limit);
            out.push((
                QuotaCharge { bucket: bucket("gwei"), window_start: day, amount: cost, limit },
                limit_of,
            ));
        }
    };
    subject(&relayer.per_user, "user", from);
    if let Some(key) = key {
        subject(&relayer.per_key, "key", key);
    }
    if let Some(budget) = relayer.budget_wei {
        let bucket = format!("{}:budget:gwei", relayer.name);
        out.push((
            QuotaCharge { bucket, window_start: 0, amount: cost, limit: gwei_down(budget) },
            Limit::Budget,
        ));
    }
    out
}

fn gwei_up(wei: U256) -> u64 {
    let gwei = U256::from(GWEI);
    let whole = wei.div_ceil(gwei);
    whole.try_into().unwrap_or(i64::MAX as u64)
}

fn gwei_down(wei: U256) -> u64 {
    (wei / U256::from(GWEI)).try_into().unwrap_or(i64::MAX as u64).min(i64::MAX as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn relayer() -> RelayerSettings {
        RelayerSettings {
            name: "carbon".into(),
            chain_id: 31337,
            forwarder: Default::default(),
            signer: "sponsor".into(),
            max_gas_price: None,
            budget_wei: Some(U256::from(5_000_000_000u64)),
            max_value_wei: U256::ZERO,
            allow: Vec::new(),
            per_user: QuotaSettings {
                requests: Some(20),
                window: Duration::from_secs(600),
                gas_per_day: Some(1_000_000),
                wei_per_day: None,
            },
            per_key: QuotaSettings {
                requests: None,
                window: Duration::from_secs(3600),
                gas_per_day: None,
                wei_per_day: Some(U256::from(2_500_000_001u64)),
            },
            batch: Default::default(),
        }
    }

    #[test]
    fn each_configured_limit_is_one_charge_in_its_window() {
        let now = 1_700_000_123;
        let found = charges(&relayer(), "0xab", Some("backend"), 90_000, U256::from(1_000_000_001u64), now);
        let buckets: Vec<_> =
            found.iter().map(|(c, _)| (c.bucket.as_str(), c.window_start, c.amount, c.limit)).collect();
        assert_eq!(
            buckets,
            vec![
                ("carbon:user:0xab:requests", now - now % 600, 1, 20),
                ("carbon:user:0xab:gas", now - now % 86_400, 90_000, 1_000_000),
                // Costs in gwei: rounded up when charged, limits rounded down.
                ("carbon:key:backend:gwei", now - now % 86_400, 2, 2),
                ("carbon:budget:gwei", 0, 2, 5),
            ]
        );
        assert_eq!(
            found[0].1,
            Limit::Quota { subject: "user 0xab".into(), what: "requests", ends: now - now % 600 + 600 }
        );
        assert_eq!(found[3].1, Limit::Budget);
    }

    #[test]
    fn without_a_key_only_the_user_and_budget_are_charged() {
        let found = charges(&relayer(), "0xab", None, 1, U256::ZERO, 0);
        assert_eq!(found.len(), 3);
        assert!(found.iter().all(|(c, _)| !c.bucket.contains(":key:")));
    }
}
