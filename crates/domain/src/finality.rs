//! Finality: how settled a block is (`FinalityLevel`), and what a consumer waits for (`Finality`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How settled a block is, from the node's tags or a configured depth.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinalityLevel {
    Latest,
    Safe,
    Finalized,
}

/// What a consumer (a sink) waits for before it sees an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finality {
    /// Immediately, with retractions if a reorg removes the event.
    Latest,
    /// Once the block is at or below the chain's `safe` head.
    Safe,
    /// Once the block is at or below the chain's `finalized` head.
    Finalized,
    /// Once this many blocks are on top of the event's block.
    Confirmations(u64),
}

impl Finality {
    /// Whether this consumer can ever see an event that a reorg later removes.
    pub fn sees_retractions(&self) -> bool {
        matches!(self, Finality::Latest)
    }
}

impl fmt::Display for Finality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finality::Latest => f.write_str("latest"),
            Finality::Safe => f.write_str("safe"),
            Finality::Finalized => f.write_str("finalized"),
            Finality::Confirmations(n) => write!(f, "{n} confirmations"),
        }
    }
}

impl FromStr for Finality {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "latest" => Ok(Finality::Latest),
            "safe" => Ok(Finality::Safe),
            "finalized" => Ok(Finality::Finalized),
            other => Err(format!(
                "unknown finality {other:?}: expected latest, safe, finalized or {{ confirmations = N }}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_levels_and_rejects_others() {
        assert_eq!("safe".parse::<Finality>(), Ok(Finality::Safe));
        assert!("final".parse::<Finality>().unwrap_err().contains("final"));
        assert!(Finality::Latest.sees_retractions());
        assert!(!Finality::Confirmations(3).sees_retractions());
    }
}
