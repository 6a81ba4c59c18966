//! Where GC's units lie in a dense row-major buffer: the one question the fused kernels of every
//! backend ask before they take a step, answered without any backend.

use super::Gc;
use crate::centralize::Placement;

/// Where GC's units lie in a dense buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Units {
    /// No centralization.
    None,
    /// Contiguous rows of `len` elements, one per unit (output axis first: convolutions).
    Rows { len: usize },
    /// Element `i` belongs to unit `i % units` (output axis last: burn's `Linear [in, out]`).
    Cols { units: usize },
}

impl Units {
    /// The layout of `gc` on `dims`, or `None` when the kernels do not cover it.
    pub(crate) fn of(gc: Gc, dims: &[usize]) -> Option<Units> {
        let Some(op) = gc.op else {
            return Some(Units::None);
        };
        if gc.placement == Placement::Update || op.fits(dims).is_err() || op.groups() != 1 {
            return None;
        }
        let lead: usize = dims[..op.axis()].iter().product();
        let units = dims[op.axis()];
        let trail: usize = dims[op.axis() + 1..].iter().product();
        if lead == 1 {
            Some(Units::Rows { len: trail })
        } else if trail == 1 {
            Some(Units::Cols { units })
        } else {
            None
        }
    }
}
