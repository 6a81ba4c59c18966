//! Augmentations on byte images, written straight into a normalized f32 batch.

use serde::{Deserialize, Serialize};

use super::Normalize;

/// A small, fast, seedable generator (SplitMix64), so that every batch's augmentation depends only
/// on (seed, epoch, batch) and not on which thread made it.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for this stream of `keys`.
    pub fn new(keys: &[u64]) -> Self {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for &key in keys {
            rng.0 ^= key;
            rng.next_u64();
        }
        rng
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 11) as u128 * n as u128) >> 53) as usize
    }

    /// Shuffle in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// How training images are augmented (test images never are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Augment {
    /// None.
    #[default]
    None,
    /// Random crop of the original size from the image zero-padded by `pad` on each side, then a
    /// horizontal flip with probability 1/2 (the seed's CIFAR augmentation, pad 4).
    CropFlip {
        /// Padding on each side.
        pad: usize,
    },
    /// For image files: torchvision's `RandomResizedCrop(size)` (8% to 100% of the area, aspect
    /// 3/4 to 4/3), then a horizontal flip with probability 1/2 (the seed's ImageNet training).
    RandomResizedCrop {
        /// Side of the square output.
        size: usize,
    },
    /// For image files: the shorter side resized to `resize`, a random `crop`x`crop` square, and
    /// a horizontal flip with probability 1/2 (the usual fine-grained training; not the seed's,
    /// which is [`Augment::ResizeFlipCenterCrop`]).
    ResizeRandomCrop {
        /// Shorter side after resizing.
        resize: usize,
        /// Side of the square crop.
        crop: usize,
    },
    /// For image files: the shorter side resized to `resize`, a horizontal flip with probability
    /// 1/2, then the centred `crop`x`crop` square (the seed's fine-grained training, 512 and 448:
    /// `Resize`, `RandomHorizontalFlip`, `CenterCrop`, in that order).
    ResizeFlipCenterCrop {
        /// Shorter side after resizing.
        resize: usize,
        /// Side of the square crop.
        crop: usize,
    },
    /// For image files: the shorter side resized to `resize`, then the centred `crop`x`crop`
    /// square (the seed's evaluation: 256, 224; fine-grained: 512, 448).
    ResizeCenterCrop {
        /// Shorter side after resizing.
        resize: usize,
        /// Side of the square crop.
        crop: usize,
    },
}

impl Augment {
    /// Whether this transform works on images of any size (files), rather than on a dataset's
    /// fixed-size images in memory.
    pub fn resizes(self) -> bool {
        !matches!(self, Augment::None | Augment::CropFlip { .. })
    }

    /// The side of the square images it makes, for resizing transforms.
    pub fn output_size(self) -> Option<usize> {
        match self {
            Augment::None | Augment::CropFlip { .. } => None,
            Augment::RandomResizedCrop { size } => Some(size),
            Augment::ResizeRandomCrop { crop, .. }
            | Augment::ResizeFlipCenterCrop { crop, .. }
            | Augment::ResizeCenterCrop { crop, .. } => Some(crop),
        }
    }
}

/// Write image `pixels` (`[c, h, w]` bytes) into `out` (`c·h·w` floats), augmented and normalized.
pub fn write_image(
    pixels: &[u8],
    (channels, height, width): (usize, usize, usize),
    augment: Augment,
    normalize: &Normalize,
    rng: &mut Rng,
    out: &mut [f32],
) {
    let (dy, dx, flip) = match augment {
        Augment::CropFlip { pad } => {
            let dy = rng.below(2 * pad + 1) as isize - pad as isize;
            let dx = rng.below(2 * pad + 1) as isize - pad as isize;
            (dy, dx, rng.next_u64() & 1 == 1)
        }
        // Resizing transforms are for files; `Images::shape` rejects them for images in memory.
        _ => (0isize, 0isize, false),
    };
    for c in 0..channels {
        let (mean, std) = (normalize.mean[c], normalize.std[c]);
        // Padding is black: the value a zero byte normalizes to.
        let fill = (0.0 - mean) / std;
        for y in 0..height {
            let sy = y as isize + dy;
            for x in 0..width {
                let xx = if flip { width - 1 - x } else { x } as isize;
                let sx = xx + dx;
                let value = if sy < 0 || sx < 0 || sy >= height as isize || sx >= width as isize {
                    fill
                } else {
                    let p = pixels[(c * height + sy as usize) * width + sx as usize];
                    (p as f32 / 255.0 - mean) / std
                };
                out[(c * height + y) * width + x] = value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit() -> Normalize {
        Normalize {
            mean: vec![0.0],
            std: vec![1.0 / 255.0],
        }
    }

    #[test]
    fn no_augmentation_only_normalizes() {
        let mut out = vec![0.0; 4];
        write_image(
            &[1, 2, 3, 4],
            (1, 2, 2),
            Augment::None,
            &unit(),
            &mut Rng::new(&[1]),
            &mut out,
        );
        assert_eq!(out, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn crops_shift_and_pad_with_black_and_flips_mirror() {
        // Over many draws, every output is a shifted (and maybe mirrored) copy padded with zeros.
        let image: Vec<u8> = (1..=9).collect();
        let mut rng = Rng::new(&[7]);
        let mut seen_flip = false;
        for _ in 0..200 {
            let mut out = vec![0.0; 9];
            write_image(
                &image,
                (1, 3, 3),
                Augment::CropFlip { pad: 1 },
                &unit(),
                &mut rng,
                &mut out,
            );
            let nonzero: Vec<f32> = out.iter().copied().filter(|v| *v != 0.0).collect();
            assert!(nonzero.len() >= 4, "{out:?}");
            seen_flip |= out[4] != 0.0 && out[3] > out[5] && out[5] != 0.0;
        }
        assert!(seen_flip);
    }

    #[test]
    fn the_generator_is_deterministic_and_covers_its_range() {
        let a: Vec<usize> = (0..50)
            .scan(Rng::new(&[3, 4]), |r, _| Some(r.below(10)))
            .collect();
        let b: Vec<usize> = (0..50)
            .scan(Rng::new(&[3, 4]), |r, _| Some(r.below(10)))
            .collect();
        assert_eq!(a, b);
        assert!((0..10).all(|v| a.contains(&v)));
    }
}
