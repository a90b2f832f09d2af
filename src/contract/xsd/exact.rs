//! Exact content-model matching: does a list of child elements match a
//! particle, and which declaration (or wildcard) does each child match?
//!
//! The matcher works on sets of positions: a term applied at a position
//! yields every position it can end at, a particle iterates its term
//! between `minOccurs` and `maxOccurs` times, a sequence folds, a choice
//! takes the union. That is XSD 1.0's content model semantics exactly,
//! including repeated groups whose iterations begin with the same element
//! (`(Note | Tag)*` over `Note Note`), which a single greedy pass with
//! per-particle counters cannot tell from one particle repeated too often.
//! Results are memoised per (particle, position), so the work is bounded by
//! particles × children × the positions each can end at — a handful under
//! the Unique Particle Attribution rule, which makes every content model
//! deterministic — and a step budget bounds what any schema can cost.
//!
//! Under UPA each child is claimed by one particle, whatever the path, so
//! the first claim recorded is the child's declaration.

use std::collections::HashMap;

use super::SchemaSet;
use super::model::*;
use crate::xml::{Element, QName};

/// What one child matched.
#[derive(Clone, Copy, Debug)]
pub(super) enum Claim<'a> {
    Decl(&'a ElementDecl),
    Wildcard(&'a Wildcard),
}

/// Steps (term applications) one content model may take before the matcher
/// gives up and leaves the answer to the caller's other pass.
const STEP_BUDGET: usize = 4_000_000;

pub(super) struct Exact<'a, 'k> {
    set: &'a SchemaSet,
    kids: &'k [&'a Element],
    claims: Vec<Option<Claim<'a>>>,
    memo: HashMap<(usize, usize), Vec<usize>>,
    steps: usize,
}

/// The outcome of matching a content model.
pub(super) enum Matched<'a> {
    /// Every child matched: what each one matched, in order.
    Valid(Vec<Claim<'a>>),
    /// The children do not match the content model.
    Invalid,
    /// The step budget ran out before an answer.
    Undecided,
}

impl<'a, 'k> Exact<'a, 'k> {
    pub(super) fn new(set: &'a SchemaSet, kids: &'k [&'a Element]) -> Self {
        Exact {
            set,
            kids,
            claims: vec![None; kids.len()],
            memo: HashMap::new(),
            steps: 0,
        }
    }

    /// Whether the children, all of them, match `p`.
    pub(super) fn run(mut self, p: &'a Particle) -> Matched<'a> {
        let ends = self.particle(p, 0);
        if self.steps > STEP_BUDGET {
            return Matched::Undecided;
        }
        if !ends.contains(&self.kids.len()) {
            return Matched::Invalid;
        }
        match self.claims.into_iter().collect::<Option<Vec<_>>>() {
            Some(claims) => Matched::Valid(claims),
            // Cannot happen: reaching the end claims every child.
            None => Matched::Undecided,
        }
    }

    /// Every position `p` can end at, starting at `pos`; sorted, unique.
    fn particle(&mut self, p: &'a Particle, pos: usize) -> Vec<usize> {
        // A lone element or wildcard is cheaper to match again than to
        // look up.
        if matches!(p.term, Term::Element(_) | Term::Any(_)) {
            return self.iterate(p, pos);
        }
        let key = (p as *const Particle as usize, pos);
        if let Some(ends) = self.memo.get(&key) {
            return ends.clone();
        }
        let ends = self.iterate(p, pos);
        self.memo.insert(key, ends.clone());
        ends
    }

    fn iterate(&mut self, p: &'a Particle, pos: usize) -> Vec<usize> {
        // An emptiable term can pad any count up to `min` with empty
        // iterations, so every position it reaches is an end.
        let pad = term_emptiable(&p.term);
        let mut ends = Vec::new();
        if p.min == 0 || pad {
            ends.push(pos);
        }
        let mut frontier = vec![pos];
        // Once past `min` with no upper bound, the count no longer matters:
        // a position seen then need not be walked again.
        let mut walked: Vec<usize> = Vec::new();
        let mut count = 0u32;
        while !frontier.is_empty() && p.max.allows(count) && self.steps <= STEP_BUDGET {
            count += 1;
            let mut next = Vec::new();
            for &at in &frontier {
                for end in self.term(&p.term, at) {
                    // Empty iterations are the padding above.
                    if end > at {
                        next.push(end);
                    }
                }
            }
            next.sort_unstable();
            next.dedup();
            if count >= p.min || pad {
                ends.extend_from_slice(&next);
                if p.max == MaxOccurs::Unbounded {
                    next.retain(|n| walked.binary_search(n).is_err());
                    walked.extend_from_slice(&next);
                    walked.sort_unstable();
                }
            }
            frontier = next;
        }
        ends.sort_unstable();
        ends.dedup();
        ends
    }

    fn term(&mut self, t: &'a Term, pos: usize) -> Vec<usize> {
        self.steps += 1;
        match t {
            Term::Element(id) => {
                let Some(kid) = self.kids.get(pos) else {
                    return Vec::new();
                };
                match self.match_decl(*id, &kid.name) {
                    Some(d) => {
                        self.claims[pos].get_or_insert(Claim::Decl(d));
                        vec![pos + 1]
                    }
                    None => Vec::new(),
                }
            }
            Term::Any(w) => match self.kids.get(pos) {
                Some(kid) if w.namespaces.allows(&kid.name.ns) => {
                    self.claims[pos].get_or_insert(Claim::Wildcard(w));
                    vec![pos + 1]
                }
                _ => Vec::new(),
            },
            Term::Sequence(ps) => {
                let mut at = vec![pos];
                for p in ps {
                    let mut next = Vec::new();
                    for &a in &at {
                        next.extend(self.particle(p, a));
                    }
                    next.sort_unstable();
                    next.dedup();
                    if next.is_empty() {
                        return next;
                    }
                    at = next;
                }
                at
            }
            Term::Choice(ps) => {
                let mut ends = Vec::new();
                for p in ps {
                    ends.extend(self.particle(p, pos));
                }
                ends.sort_unstable();
                ends.dedup();
                ends
            }
            Term::All(ps) => self.all(ps, pos),
        }
    }

    /// `xsd:all`: each member (an element particle, at most once) in any
    /// order. The members' names are distinct, so each child picks its
    /// member; the group can end wherever every required member is in.
    fn all(&mut self, ps: &'a [Particle], pos: usize) -> Vec<usize> {
        let mut seen = vec![false; ps.len()];
        let satisfied = |seen: &[bool]| {
            ps.iter()
                .zip(seen)
                .all(|(p, s)| *s || p.min == 0 || term_emptiable(&p.term))
        };
        let mut ends = Vec::new();
        let mut at = pos;
        loop {
            if satisfied(&seen) {
                ends.push(at);
            }
            let Some(kid) = self.kids.get(at) else { break };
            self.steps += 1;
            let hit = ps.iter().enumerate().find_map(|(i, p)| match &p.term {
                Term::Element(id) if !seen[i] => self.match_decl(*id, &kid.name).map(|d| (i, d)),
                _ => None,
            });
            let Some((i, d)) = hit else { break };
            seen[i] = true;
            self.claims[at].get_or_insert(Claim::Decl(d));
            at += 1;
        }
        ends
    }

    /// The declaration an element with this name matches (see
    /// [`SchemaSet::decl_matching`]).
    fn match_decl(&self, id: ElementId, name: &QName) -> Option<&'a ElementDecl> {
        self.set.decl_matching(id, name)
    }
}

pub(super) fn term_emptiable(t: &Term) -> bool {
    match t {
        Term::Element(_) | Term::Any(_) => false,
        Term::Sequence(ps) | Term::All(ps) => ps.iter().all(emptiable),
        Term::Choice(ps) => ps.iter().any(emptiable),
    }
}

pub(super) fn emptiable(p: &Particle) -> bool {
    p.min == 0 || term_emptiable(&p.term)
}
