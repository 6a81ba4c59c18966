//! Datasets held in memory as bytes, and the batches the training loop reads.

pub mod augment;
pub mod cifar;
pub mod fashion;
pub mod idx;
pub mod loader;
pub mod pickle;

use std::path::{Path, PathBuf};

/// Everything that can go wrong reading data; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is truncated or not in the expected format.
    #[error("{path}: corrupt at byte {offset}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the problem (in the decompressed stream for gzip files).
        offset: usize,
        /// What is wrong.
        message: String,
    },
    /// The files are well-formed but do not agree with each other or with the dataset.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No copy of the dataset was found.
    #[error("{dataset} not found; looked in: {looked}. {how}")]
    Missing {
        /// The dataset's name.
        dataset: String,
        /// The places searched.
        looked: String,
        /// How to get it.
        how: String,
    },
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, offset: usize, message: impl Into<String>) -> Self {
        DataError::Corrupt {
            path: path.to_path_buf(),
            offset,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        DataError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Images as bytes, `[n, channels, height, width]` row-major, with one label each.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// Channels per image.
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// All pixels, image after image, channel-major within an image.
    pub pixels: Vec<u8>,
    /// Class of each image, in `0..classes`.
    pub labels: Vec<u32>,
    /// Number of classes.
    pub classes: usize,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.pixels[i * len..(i + 1) * len]
    }

    /// The first `n` images of each class, in their original order (a balanced subset).
    pub fn balanced_subset(&self, per_class: usize) -> ImageSet {
        let mut taken = vec![0usize; self.classes];
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for (i, &label) in self.labels.iter().enumerate() {
            let slot = &mut taken[label as usize];
            if *slot < per_class {
                *slot += 1;
                pixels.extend_from_slice(self.image(i));
                labels.push(label);
            }
        }
        ImageSet {
            pixels,
            labels,
            ..self.clone()
        }
    }
}

/// A train and a test split.
#[derive(Debug, Clone)]
pub struct Splits {
    /// The dataset's name, for reports.
    pub name: String,
    /// Where it was read from.
    pub source: PathBuf,
    /// Training images.
    pub train: ImageSet,
    /// Test images.
    pub test: ImageSet,
    /// Per-channel mean and standard deviation used to normalize inputs.
    pub normalize: Normalize,
}

/// Per-channel normalization `(x/255 − mean)/std`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalize {
    /// Channel means in [0, 1].
    pub mean: Vec<f32>,
    /// Channel standard deviations.
    pub std: Vec<f32>,
}
