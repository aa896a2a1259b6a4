//! The transaction manager's clock: Unix milliseconds for the ledger (first sends, leases, expiries) and the
//! re-pricing and re-broadcast clocks that run from them. Production reads the wall clock; tests start
//! from a fixed time and move it with tokio's paused clock (`tokio::time::advance`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Where "now" comes from.
#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    /// The system's wall clock: leases are compared across processes, so every process must read the same.
    #[default]
    System,
    /// `start_ms` at `start`, then as far on as tokio's clock has moved (paused in tests).
    Tokio { start_ms: u64, start: tokio::time::Instant },
}

impl Clock {
    /// A clock reading `start_ms` now and following tokio's clock from here.
    pub fn tokio_from(start_ms: u64) -> Self {
        Self::Tokio { start_ms, start: tokio::time::Instant::now() }
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        match self {
            Self::System => {
                SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
            }
            Self::Tokio { start_ms, start } => start_ms + start.elapsed().as_millis() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_moves_only_with_tokio_time() {
        let clock = Clock::tokio_from(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        tokio::time::advance(std::time::Duration::from_secs(30)).await;
        assert_eq!(clock.now_ms(), 31_000);
    }

    #[test]
    fn the_system_clock_is_unix_time() {
        // 2026-01-01 in Unix milliseconds: a clock reading less is not the wall clock.
        assert!(Clock::System.now_ms() > 1_767_225_600_000);
    }
}
