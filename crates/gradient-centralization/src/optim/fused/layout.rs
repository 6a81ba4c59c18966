//! Where the kernels find their numbers: GC's units in a dense buffer, gradients read through
//! their strides (burn's convolution weight gradients), and buffers made dense and uniquely owned
//! when burn hands them over otherwise.

use burn::backend::flex::{FlexTensor, Layout};
use burn::tensor::{Bytes, DType};

use super::diagnostics::COPIED;
use super::loops::{Cache, prefetch};

/// Padding after each row of a strided gradient's tile, in elements: with rows a multiple of 1 KiB
/// apart (most convolutions' rows: 64·k² floats or a multiple) a gather's stores to consecutive
/// rows would fall into a few sets of the L1 cache and evict each other; one extra cache line per
/// row spreads them.
pub(super) const TILE_PAD: usize = 16;

/// How many steps of a strided gradient's outer axis [`Strided::gather`] prefetches ahead.
const AHEAD: usize = 16;

/// Contiguous from offset 0 and exactly the logical size.
pub(super) fn is_dense(ft: &FlexTensor) -> bool {
    let n = ft.layout().num_elements();
    ft.layout().contiguous_offsets() == Some((0, n)) && ft.bytes().len() == n * 4
}

/// A gradient read through its strides, one logical row (one output unit of a convolution) at a
/// time: the element of row `o` at inner index `(i_1, .., i_k)` lies at
/// `offset + o·row_stride + Σ i_j·s_j` of the buffer.
///
/// After a backward pass burn 0.22.1 hands every convolution weight gradient over as such a view
/// (`conv2d_weight_grad_no_groups` computes it with the first two axes swapped and swaps them back
/// as a view; with a stride above 1 it also slices a larger kernel), so the kernels read it where
/// it lies instead of laying it out densely first.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Strided {
    pub(super) offset: usize,
    pub(super) row_stride: usize,
    /// The inner axes as `(length, stride)`, axes of length 1 dropped and neighbours that are
    /// contiguous with each other merged; the last one, always of stride 1, is copied in runs.
    pub(super) inner: Vec<(usize, usize)>,
}

impl Strided {
    /// The view of `ft` as rows along its first axis; `None` for fewer than two axes, negative
    /// strides or a view that reaches past its buffer.
    pub(super) fn of(ft: &FlexTensor, dims: &[usize]) -> Option<Strided> {
        let layout = ft.layout();
        let strides: Vec<usize> = layout
            .strides()
            .iter()
            .map(|&s| usize::try_from(s).ok())
            .collect::<Option<_>>()?;
        if dims.len() < 2 || strides.len() != dims.len() || dims.contains(&0) {
            return None;
        }
        let offset = layout.start_offset();
        let last = dims.iter().zip(&strides).try_fold(offset, |at, (d, s)| {
            at.checked_add((d - 1).checked_mul(*s)?)
        })?;
        if last >= ft.bytes().len() / 4 {
            return None;
        }
        let mut inner: Vec<(usize, usize)> = Vec::new();
        for (&d, &s) in dims[1..].iter().zip(&strides[1..]) {
            match inner.last_mut() {
                _ if d == 1 => {}
                Some((run, step)) if *step == d * s => (*run, *step) = (*run * d, s),
                _ => inner.push((d, s)),
            }
        }
        // The innermost axis is copied in runs: a strided one becomes an outer axis over runs of
        // one element, so that a gather visits the rows in turn at each of its steps (reading
        // the rows' neighbouring elements together) rather than walking each row through memory
        // on its own (for a 1x1 convolution's swapped gradient, a row's elements lie a whole
        // block of output channels apart, and every row would fetch the same cache lines again).
        if inner.last().is_none_or(|&(_, step)| step != 1) {
            inner.push((1, 1));
        }
        Some(Strided {
            offset,
            row_stride: strides[0],
            inner,
        })
    }

    /// How many rows a task should read at least. In burn's swapped layout one step of the
    /// outer axis holds the task's rows next to each other, a piece of `rows · row_stride`
    /// elements, and consecutive steps lie far apart (a whole block of output channels): pieces of
    /// at least 64 elements (four cache lines) keep memory reads long. (From `CHUNK` alone a 1x1
    /// convolution with 2048 inputs gets 8 rows per task: half a cache line per piece, each line
    /// fetched by two neighbouring tasks.)
    pub(super) fn rows(&self) -> usize {
        64usize.div_ceil(self.row_stride.max(1))
    }

    /// Rows `first .. first + rows` of `data`, each `row` long, laid out `pitch` apart in `tile`
    /// (rows a little more than `row` apart stay clear of each other in the L1 cache). Within
    /// each run of the innermost axis the rows are visited in turn, so that views whose rows lie
    /// close together in memory (burn's swapped axes) are read nearly in order.
    pub(super) fn gather(
        &self,
        data: &[f32],
        first: usize,
        rows: usize,
        (row, pitch): (usize, usize),
        tile: &mut Vec<f32>,
    ) {
        // Every element of the tile's rows is written below; only the padding keeps old values.
        if tile.len() < rows * pitch {
            tile.resize(rows * pitch, 0.0);
        }
        let (&(run, step), outer) = self.inner.split_last().expect("at least one inner axis");
        debug_assert_eq!(
            step, 1,
            "the innermost axis is contiguous (see `Strided::of`)"
        );
        let mut index = vec![0usize; outer.len()];
        let mut at = 0;
        loop {
            let base = self.offset
                + outer
                    .iter()
                    .zip(&index)
                    .map(|(&(_, s), &i)| s * i)
                    .sum::<usize>();
            // Ask for the rows' elements a few steps of the last outer axis ahead: consecutive
            // steps lie far apart (a whole output-channel block in burn's swapped layout), too
            // far for the hardware's prefetchers (docs/PERFORMANCE-LOG.md: "Hints and blocks").
            if let Some(&(len, stride)) = outer.last()
                && index[outer.len() - 1] + AHEAD < len
            {
                let lo = base + AHEAD * stride + first * self.row_stride;
                let hi = lo + (rows - 1) * self.row_stride + run;
                if hi - lo <= 4096 {
                    for at in (lo..hi).step_by(16) {
                        prefetch(&data[at], Cache::L1);
                    }
                    prefetch(&data[hi - 1], Cache::L1);
                }
            }
            if run == 1 {
                // One element per row (1x1 convolutions): a transposition, element by element.
                let from = &data[base + first * self.row_stride..];
                for r in 0..rows {
                    tile[r * pitch + at] = from[r * self.row_stride];
                }
            } else {
                for r in 0..rows {
                    let from = base + (first + r) * self.row_stride;
                    tile[r * pitch + at..r * pitch + at + run]
                        .copy_from_slice(&data[from..from + run]);
                }
            }
            at += run;
            if !next(&mut index, outer) {
                debug_assert_eq!(at, row, "a whole row gathered");
                return;
            }
        }
    }
}

/// Steps `index` over the axes `outer` (`(length, stride)`), last axis fastest; false after the
/// last index.
#[inline(always)]
fn next(index: &mut [usize], outer: &[(usize, usize)]) -> bool {
    for k in (0..outer.len()).rev() {
        index[k] += 1;
        if index[k] < outer[k].0 {
            return true;
        }
        index[k] = 0;
    }
    false
}

/// A uniquely owned dense buffer: `ft` itself when it is one, else one copy.
pub(super) fn owned_dense(ft: FlexTensor) -> FlexTensor {
    if ft.is_unique() && is_dense(&ft) {
        return ft;
    }
    COPIED.with(|c| c.set(c.get() + 1));
    let shape = ft.layout().shape().clone();
    let values: Vec<f32> = match ft.as_slice::<f32>() {
        Some(s) if is_dense(&ft) => s.to_vec(),
        _ => ft
            .to_contiguous()
            .as_slice::<f32>()
            .expect("a contiguous f32 tensor")
            .to_vec(),
    };
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

pub(super) fn zeros_like(ft: &FlexTensor) -> FlexTensor {
    let shape = ft.layout().shape().clone();
    let n = ft.layout().num_elements();
    FlexTensor::new(
        Bytes::from_elems(vec![0f32; n]),
        Layout::contiguous(shape),
        DType::F32,
    )
}

pub(super) fn slice_mut(ft: &mut FlexTensor) -> &mut [f32] {
    let n = ft.layout().num_elements();
    &mut ft
        .try_storage_mut::<f32>()
        .expect("owned_dense made the buffer unique")[..n]
}
