//! How many blocks to ask `eth_getLogs` for. It starts moderate, doubles while responses stay small,
//! halves when they grow large, and learns from refusals: a provider's hint when it gives a usable one,
//! half the refused range otherwise. Shared by the concurrent range fetchers.

use std::sync::atomic::{AtomicU64, Ordering};

use gemgate_domain::RangeHint;

/// Adaptive span, in blocks.
#[derive(Debug)]
pub struct SpanController {
    span: AtomicU64,
    max: u64,
}

/// Aim for responses of at most about this many logs: large enough to amortise the request, small enough
/// to bound memory (with 4 ranges in flight, at most about 40,000 decoded events are held at once).
const TARGET_LOGS: usize = 5_000;

impl SpanController {
    pub fn new(initial: u64, max: u64) -> Self {
        Self { span: AtomicU64::new(initial.clamp(1, max)), max: max.max(1) }
    }

    pub fn span(&self) -> u64 {
        self.span.load(Ordering::Relaxed)
    }

    /// After a successful fetch of `blocks` blocks that returned `logs` logs.
    pub fn on_success(&self, blocks: u64, logs: usize) {
        let span = self.span();
        if logs > TARGET_LOGS * 2 {
            self.span.store((blocks / 2).max(1).min(span), Ordering::Relaxed);
        } else if logs < TARGET_LOGS / 4 && blocks >= span {
            self.span.store((span * 2).min(self.max), Ordering::Relaxed);
        }
    }

    /// After the provider refused `from..=to`: returns the end of the first sub-range to try instead.
    pub fn on_refused(&self, from: u64, to: u64, hint: Option<RangeHint>) -> u64 {
        let refused = to - from + 1;
        let smaller = match hint {
            Some(RangeHint::Range(a, b)) if a == from && b < to => b - a + 1,
            Some(RangeHint::MaxSpan(n)) if n < refused => n,
            // No usable hint (or one that repeats the refused range): halve.
            _ => (refused / 2).max(1),
        };
        self.span.store(smaller.min(self.span()).max(1), Ordering::Relaxed);
        from + smaller - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_from_hints_and_never_repeats_a_refused_range() {
        let span = SpanController::new(1_000, 100_000);
        assert_eq!(span.on_refused(0, 999, Some(RangeHint::Range(0, 99))), 99);
        assert_eq!(span.span(), 100);
        let span = SpanController::new(1_000, 100_000);
        assert_eq!(
            span.on_refused(0, 999, Some(RangeHint::Range(0, 999))),
            499,
            "a hint equal to the refused range halves"
        );
        assert_eq!(span.on_refused(500, 999, Some(RangeHint::MaxSpan(200))), 699);
        assert_eq!(span.on_refused(7, 7, None), 7, "a single block cannot shrink further");
    }

    #[test]
    fn grows_while_responses_are_small_and_shrinks_when_large() {
        let span = SpanController::new(1_000, 4_000);
        span.on_success(1_000, 10);
        assert_eq!(span.span(), 2_000);
        span.on_success(2_000, 10);
        span.on_success(4_000, 10);
        assert_eq!(span.span(), 4_000, "capped");
        span.on_success(4_000, 50_000);
        assert_eq!(span.span(), 2_000);
    }
}
