//! Every method against burn's convolution, forward and both gradients, on awkward shapes.

use burn::tensor::Device;
use burn::tensor::module::conv2d as burn_conv2d;

use super::dispatch::{Method, with_method};
use super::*;
use crate::testing::{assert_close, tensor, to_vec};

/// A convolution's settings: input `[n, c, h, w]`, `o` outputs, kernel, stride, padding
/// (top, bottom), (left, right), dilation, groups.
struct Case {
    x: [usize; 4],
    o: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
    dilation: [usize; 2],
    groups: usize,
}

const fn case(
    x: [usize; 4],
    o: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
    dilation: [usize; 2],
    groups: usize,
) -> Case {
    Case {
        x,
        o,
        kernel,
        stride,
        padding,
        dilation,
        groups,
    }
}

/// Batches of 1 (the product spread inside) and 3 (images spread over a pool of 2 threads,
/// see `on_two_threads`); 3x3 with and without padding, strides 2 and 3, 1x1 with and
/// without stride (the pointwise path), 7x7, non-square kernels and inputs, asymmetric
/// padding, dilation, groups, padding wider than the kernel reaches (rows and columns of only
/// padding), a 1x1 with padding after only (not the pointwise path), an even kernel with
/// one-sided padding (the shifted copy); the cases 12-14 and 16 are wide enough to be cut
/// into several tiles of output rows (checked below; 14 and 16 for the shifted method); 15
/// and 16 are stride-1 grouped convolutions (15: batch 1, a non-square kernel, unequal
/// dilation, asymmetric padding); 17 and 18 have kernels of 3 and 2 taps (1x3, 2x1: the direct
/// weight gradient's chunks of that many taps; 18 also 7 output channels, blocks of 6 and 2
/// with a zero channel); 19 and 20 have rows 32 and 16 wide and an even number of output
/// channels (the direct forward kernel writing the output row by row; 20 also its flipped
/// input gradient, on one image); 21 and 22 have 6 rows 8 wide (the direct kernel two rows a
/// block, forward and flipped input gradient; 22 on one image); 23 pads 3 after and none
/// before (its flipped input gradient pads -1 after: `dy`'s last row and column are left
/// out of the padded copy); 24-26 are stride-1 kernels 5, 7 and 3 wide (the AVX-512 weight
/// gradient's rows of 5 and 7 taps; 25 has output rows 4 wide, narrower than the 6 columns at
/// each end of a row where its taps are checked; 26 has 51 kernel rows, so a last call of 3
/// rows, and two blocks of output channels). Every case runs with each method where it applies
/// (the shifted and the direct one: stride 1; the flipped one: the input gradient at stride 1).
const CASES: [Case; 27] = [
    case([3, 4, 9, 9], 5, [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1], 1),
    case([1, 4, 9, 9], 5, [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1], 1),
    case(
        [3, 3, 11, 10],
        4,
        [3, 3],
        [2, 2],
        [(1, 1), (1, 1)],
        [1, 1],
        1,
    ),
    case([3, 6, 7, 7], 8, [1, 1], [1, 1], [(0, 0), (0, 0)], [1, 1], 1),
    case([3, 6, 7, 8], 8, [1, 1], [2, 2], [(0, 0), (0, 0)], [1, 1], 1),
    case(
        [2, 3, 16, 15],
        4,
        [7, 7],
        [2, 2],
        [(3, 3), (3, 3)],
        [1, 1],
        1,
    ),
    case([3, 2, 8, 9], 3, [2, 3], [1, 3], [(0, 1), (2, 0)], [1, 1], 1),
    case(
        [3, 4, 10, 10],
        2,
        [3, 3],
        [1, 1],
        [(2, 2), (2, 2)],
        [2, 2],
        1,
    ),
    case([3, 6, 8, 8], 4, [3, 3], [1, 2], [(1, 1), (1, 1)], [1, 1], 2),
    case([2, 2, 4, 4], 3, [3, 3], [1, 1], [(4, 3), (3, 4)], [1, 1], 1),
    case([3, 3, 5, 6], 2, [1, 1], [1, 1], [(0, 1), (0, 2)], [1, 1], 1),
    case([3, 2, 6, 6], 3, [2, 2], [1, 1], [(0, 1), (1, 0)], [1, 1], 1),
    case(
        [2, 64, 6, 60],
        3,
        [3, 3],
        [1, 1],
        [(1, 1), (1, 1)],
        [1, 1],
        1,
    ),
    case(
        [1, 40, 7, 70],
        2,
        [3, 3],
        [2, 1],
        [(1, 1), (1, 1)],
        [1, 1],
        1,
    ),
    case(
        [3, 40, 6, 300],
        40,
        [3, 3],
        [1, 1],
        [(1, 1), (1, 1)],
        [1, 1],
        1,
    ),
    case([1, 6, 7, 9], 4, [2, 3], [1, 1], [(1, 0), (2, 1)], [2, 1], 2),
    case(
        [2, 64, 6, 300],
        64,
        [3, 3],
        [1, 1],
        [(1, 1), (1, 1)],
        [1, 1],
        2,
    ),
    case([2, 5, 6, 7], 3, [1, 3], [1, 1], [(0, 0), (1, 1)], [1, 1], 1),
    case([1, 3, 5, 6], 7, [2, 1], [1, 1], [(1, 0), (0, 0)], [1, 1], 1),
    case(
        [2, 5, 4, 32],
        6,
        [3, 3],
        [1, 1],
        [(1, 1), (1, 1)],
        [1, 1],
        1,
    ),
    case(
        [1, 8, 3, 16],
        10,
        [3, 3],
        [1, 1],
        [(1, 1), (1, 1)],
        [1, 1],
        1,
    ),
    case([2, 4, 6, 8], 4, [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1], 1),
    case([1, 4, 6, 8], 6, [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1], 1),
    case([2, 3, 7, 7], 4, [3, 3], [1, 1], [(0, 3), (0, 3)], [1, 1], 1),
    case(
        [2, 4, 8, 10],
        6,
        [5, 5],
        [1, 1],
        [(2, 2), (2, 2)],
        [1, 1],
        1,
    ),
    case([2, 3, 9, 4], 5, [3, 7], [1, 1], [(1, 1), (3, 3)], [1, 1], 1),
    case(
        [1, 17, 5, 6],
        18,
        [3, 3],
        [1, 1],
        [(1, 1), (1, 1)],
        [1, 1],
        1,
    ),
];

const METHODS: [Method; 4] = [
    Method::Im2col,
    Method::Shifted,
    Method::Flipped,
    Method::Direct,
];

#[test]
fn the_wide_cases_take_several_tiles() {
    let geometry = |c: &Case| {
        let w = [c.o, c.x[1] / c.groups, c.kernel[0], c.kernel[1]];
        Geometry::new(c.x, w, &options(c)).unwrap()
    };
    for c in &CASES[12..=14] {
        assert!(geometry(c).tiles().count() > 1, "{:?}", c.x);
    }
    for c in [&CASES[14], &CASES[16]] {
        assert!(shifted::tile_count(&geometry(c)) > 1, "{:?}", c.x);
    }
}

fn options(c: &Case) -> ConvOptions<2> {
    ConvOptions::new_with_padding(c.stride, c.padding, c.dilation, c.groups)
}

/// Runs `f` on a pool of two threads: batches of 3 then spread images over the pool, batches
/// of 1 spread the matrix products, whatever the machine's core count.
fn on_two_threads(f: impl FnOnce() + Send) {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn forward_matches_burn() {
    for method in METHODS {
        on_two_threads(|| with_method(method, || forward_cases(method)))
    }
    // On a CPU with AVX-512 the loop ran the direct kernels' 16-lane forms; their AVX2 forms too.
    if direct::avx512_available() {
        on_two_threads(|| {
            direct::with_avx2(|| with_method(Method::Direct, || forward_cases(Method::Direct)))
        })
    }
}

fn forward_cases(method: Method) {
    let device = Device::flex();
    for (i, c) in CASES.iter().enumerate() {
        let i = format!("{i} ({method:?})");
        let x = tensor(c.x, 1, &device);
        let w = tensor(
            [c.o, c.x[1] / c.groups, c.kernel[0], c.kernel[1]],
            2,
            &device,
        );
        let b = tensor([c.o], 3, &device);
        let ours = conv2d(x.clone(), w.clone(), Some(b.clone()), options(c));
        let reference = burn_conv2d(x, w, Some(b), options(c));
        assert_eq!(ours.dims(), reference.dims(), "case {i}");
        assert_close(&to_vec(ours), &to_vec(reference), &format!("case {i}"));
    }
}

/// The gradients of `sum(conv(x, w) + b) · r)` for a fixed random `r`, with respect to
/// `x`, `w` and `b`, against burn's convolution's.
#[test]
fn gradients_match_burn() {
    for method in METHODS {
        on_two_threads(|| with_method(method, || gradient_cases(method)))
    }
    if direct::avx512_available() {
        on_two_threads(|| {
            direct::with_avx2(|| with_method(Method::Direct, || gradient_cases(Method::Direct)))
        })
    }
}

fn gradient_cases(method: Method) {
    let device = Device::flex().autodiff();
    for (i, c) in CASES.iter().enumerate() {
        let i = format!("{i} ({method:?})");
        let w_shape = [c.o, c.x[1] / c.groups, c.kernel[0], c.kernel[1]];
        let grads = |ours: bool| {
            let x = tensor(c.x, 1, &device).require_grad();
            let w = tensor(w_shape, 2, &device).require_grad();
            let b = tensor([c.o], 3, &device).require_grad();
            let y = if ours {
                conv2d(x.clone(), w.clone(), Some(b.clone()), options(c))
            } else {
                burn_conv2d(x.clone(), w.clone(), Some(b.clone()), options(c))
            };
            let r = tensor(y.dims(), 4, &device);
            let grads = (y * r).sum().backward();
            [
                to_vec(x.grad(&grads).unwrap()),
                to_vec(w.grad(&grads).unwrap()),
                to_vec(b.grad(&grads).unwrap()),
            ]
        };
        let (ours, reference) = (grads(true), grads(false));
        for (k, what) in ["x", "weight", "bias"].iter().enumerate() {
            assert_close(&ours[k], &reference[k], &format!("case {i}, d{what}"));
        }
    }
}

/// An input that is a view (axes swapped) is read in logical order.
#[test]
fn reads_views_in_logical_order() {
    let device = Device::flex();
    let x = tensor([5, 3, 6, 6], 1, &device).swap_dims(0, 1);
    let w = tensor([2, 5, 3, 3], 2, &device);
    let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let ours = conv2d(x.clone(), w.clone(), None, options.clone());
    let reference = burn_conv2d(x, w, None, options);
    assert_close(&to_vec(ours), &to_vec(reference), "swapped input");
}

#[test]
fn forward_takes_the_modules_settings() {
    let device = Device::flex();
    let conv = burn::nn::conv::Conv2dConfig::new([4, 6], [3, 3])
        .with_stride([2, 1])
        .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 0, 2, 1))
        .with_groups(2)
        .init(&device);
    let x = tensor([2, 4, 9, 7], 5, &device);
    assert_close(
        &to_vec(forward(&conv, x.clone())),
        &to_vec(conv.forward(x)),
        "Conv2d, explicit padding",
    );
    // `Same` with an even kernel and a stride: uneven padding, the extra pixel after.
    let conv = burn::nn::conv::Conv2dConfig::new([3, 2], [4, 2])
        .with_stride([2, 3])
        .with_padding(burn::nn::PaddingConfig2d::Same)
        .init(&device);
    let x = tensor([2, 3, 9, 7], 6, &device);
    let ours = forward(&conv, x.clone());
    assert_eq!(ours.dims(), [2, 2, 5, 3]);
    assert_close(
        &to_vec(ours),
        &to_vec(conv.forward(x)),
        "Conv2d, same padding",
    );
}

#[test]
fn rejects_mismatched_shapes_with_the_reason() {
    let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 2);
    let err = Geometry::new([1, 4, 5, 5], [3, 4, 3, 3], &options).unwrap_err();
    assert!(err.contains("2 group(s)"), "{err}");
    let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
    let err = Geometry::new([1, 4, 2, 5], [3, 4, 3, 3], &options).unwrap_err();
    assert!(err.contains("larger than the padded input"), "{err}");
    let err = Geometry::new([1, 4, 5, 5], [3, 4, 0, 3], &options).unwrap_err();
    assert!(err.contains("at least 1"), "{err}");
}

/// `dy`'s transposition for the direct weight gradient, in 16 x 16 register blocks with AVX-512
/// and element by element for what is left, equals the plain definition bit for bit, on
/// whole blocks and on plane and position counts that leave a rest.
#[test]
fn transposes_dy_exactly() {
    let transposed = |planes: usize, p: usize| {
        let cols = planes.next_multiple_of(16);
        let from = crate::testing::values(planes * p, 7);
        let mut to = vec![f32::NAN; p * cols];
        direct::transpose(&from, p, &mut to, cols);
        for q in 0..p {
            for o in 0..planes {
                assert_eq!(
                    to[q * cols + o].to_bits(),
                    from[o * p + q].to_bits(),
                    "{planes} planes of {p}: position {q}, plane {o}"
                );
            }
        }
    };
    let shapes = [
        (16, 16),
        (32, 64),
        (64, 48),
        (19, 37),
        (35, 16),
        (16, 21),
        (3, 5),
    ];
    for (planes, p) in shapes {
        transposed(planes, p);
        if direct::avx512_available() {
            direct::with_avx2(|| transposed(planes, p));
        }
    }
}
