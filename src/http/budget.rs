//! The parse budget: how many bytes of large request bodies are parsed at
//! once, so that the trees they grow are bounded as a whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::xml;

/// What a large body counts at least against the parse budget: the floor
/// of its tree's budget over its factor, since a tree may take that much
/// however small the body.
const MIN_CHARGE: usize = xml::TreeBudget::REQUEST.floor / xml::TreeBudget::REQUEST.factor;

/// The bytes of large request bodies being parsed at once
/// (`max_parsing_bytes`), so that what concurrent large bodies take in
/// memory is bounded as a whole: each body's tree is bounded by
/// [`xml::TreeBudget::REQUEST`], this bounds how many trees grow at once. A
/// body that does not fit is refused at once (`OVERLOADED`); nothing waits.
///
/// A body counts from when it has arrived until it is parsed, not while it
/// arrives: a budget held by bodies on their way would be held by whoever
/// declares a large Content-Length and sends slowly, which costs an
/// attacker nothing. What bodies take while they arrive (1 time their
/// size) is bounded by the connection cap and `max_body_bytes`.
#[derive(Debug)]
pub(crate) struct ParseBudget {
    max: usize,
    used: AtomicUsize,
}

/// A body's share of the parse budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<ParseBudget>,
    bytes: usize,
}

impl ParseBudget {
    /// A budget of `max` bytes (`max_parsing_bytes`), one per process.
    pub(crate) fn new(max: usize) -> ParseBudget {
        ParseBudget {
            max,
            used: AtomicUsize::new(0),
        }
    }

    /// Bytes charged now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// What a body of `len` bytes counts: at least [`MIN_CHARGE`], at most
    /// the whole budget (a body larger than the budget is parsed alone).
    fn cost(&self, len: usize) -> usize {
        len.max(MIN_CHARGE).min(self.max)
    }

    /// Whether a body of `len` bytes would fit now.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.used
            .load(Ordering::Relaxed)
            .saturating_add(self.cost(len))
            <= self.max
    }

    /// Take room for a body of `len` bytes, or `None` when it is not free.
    pub(crate) fn try_charge(self: &Arc<Self>, len: usize) -> Option<Charge> {
        let bytes = self.cost(len);
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.checked_add(bytes).filter(|n| *n <= self.max)?;
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Some(Charge {
                        budget: self.clone(),
                        bytes,
                    });
                }
                Err(now) => used = now,
            }
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}
