//! An operation's variants at call time: which one serves a call (by
//! weight, or stably by the value of a request path), and whether the call
//! is sampled for the shadow variant. Each variant is a whole
//! [`OperationPlan`] of its own, compiled at load like the operation's.
//!
//! Pure apart from the random draws (`fastrand`), which the `_with`
//! methods take as arguments so tests can pin them.

use std::sync::Arc;

use super::OperationPlan;
use super::path;
use crate::xml::Element;

/// Weights are percents; a call's draw is in `0..BUCKETS` so a weight of
/// `w` takes `w * 100` buckets.
pub(crate) const BUCKETS: u32 = 10_000;

/// One variant: its name, its share of calls and its plan.
#[derive(Debug)]
pub struct Variant {
    pub(crate) name: String,
    /// Percent of the calls it serves (0: shadow only).
    pub(crate) weight: u32,
    pub(crate) plan: Arc<OperationPlan>,
}

impl Variant {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The variant's plan (shared, so a background task may keep it).
    pub fn plan(&self) -> &Arc<OperationPlan> {
        &self.plan
    }
}

/// The variants of an operation, the sticky path and the shadow setting.
#[derive(Debug, Default)]
pub(crate) struct Variants {
    pub(crate) list: Vec<Variant>,
    pub(crate) sticky_by: Option<path::Path>,
    /// The share of calls (0 to 1) and the index into `list`.
    pub(crate) shadow: Option<(f64, usize)>,
}

impl Variants {
    /// The variant whose bucket range holds `bucket` (`None`: the primary
    /// serves). Ranges follow the order of the mapping file.
    fn by_bucket(&self, bucket: u32) -> Option<&Variant> {
        let mut upper = 0;
        for v in &self.list {
            upper += v.weight * (BUCKETS / 100);
            if bucket < upper {
                return Some(v);
            }
        }
        None
    }
}

/// FNV-1a 64: stable across processes and versions, so a sticky key keeps
/// its variant through restarts (std's hasher is randomly seeded).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The bucket of a sticky key.
pub(crate) fn sticky_bucket(key: &str) -> u32 {
    // The remainder is below BUCKETS, so it fits.
    u32::try_from(fnv1a(key.as_bytes()) % u64::from(BUCKETS)).unwrap_or(0)
}

impl OperationPlan {
    /// The operation's variants, in mapping order.
    pub fn variants(&self) -> &[Variant] {
        &self.variants.list
    }

    /// The `sticky_by` path as written.
    pub fn sticky_by(&self) -> Option<&str> {
        self.variants.sticky_by.as_ref().map(|p| p.text.as_str())
    }

    /// The `shadow` setting: the share of calls sampled and the variant.
    pub fn shadow(&self) -> Option<(f64, &Variant)> {
        let (sample, index) = self.variants.shadow?;
        Some((sample, self.variants.list.get(index)?))
    }

    /// The variant that serves a call with this request payload (`None`:
    /// the operation's own settings). With `sticky_by` the value at that
    /// path decides, so equal values always get the same variant; a
    /// request without it, or a mapping without `sticky_by`, draws at
    /// random by weight.
    pub fn choose_variant(&self, payload: &[Element]) -> Option<&Variant> {
        if self.variants.list.iter().all(|v| v.weight == 0) {
            return None;
        }
        self.choose_variant_with(payload, fastrand::u32(0..BUCKETS))
    }

    /// [`OperationPlan::choose_variant`] with the random draw given
    /// (`0..10_000`).
    pub fn choose_variant_with(&self, payload: &[Element], draw: u32) -> Option<&Variant> {
        let bucket = self
            .sticky_key(payload)
            .map_or(draw, |key| sticky_bucket(&key));
        self.variants.by_bucket(bucket)
    }

    /// The value of the `sticky_by` path in this request (trimmed; `None`
    /// without `sticky_by` or when the request leaves it out or empty).
    pub fn sticky_key(&self, payload: &[Element]) -> Option<String> {
        self.simple_value(self.variants.sticky_by.as_ref()?, payload)
    }

    /// The shadow variant when this call is sampled for it (a random draw
    /// against `shadow.sample`), else `None`. `served` is the variant that
    /// serves the call: a variant is never its own shadow.
    pub fn shadow_for(&self, served: Option<&Variant>) -> Option<&Variant> {
        let (sample, _) = self.variants.shadow?;
        self.shadow_for_with(served, fastrand::f64() < sample)
    }

    /// [`OperationPlan::shadow_for`] with the draw given.
    pub fn shadow_for_with(&self, served: Option<&Variant>, sampled: bool) -> Option<&Variant> {
        let (_, index) = self.variants.shadow?;
        let shadow = self.variants.list.get(index)?;
        let same = served.is_some_and(|s| std::ptr::eq(s, shadow));
        (sampled && !same).then_some(shadow)
    }
}
