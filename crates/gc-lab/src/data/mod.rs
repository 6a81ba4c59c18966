//! Datasets, held in memory as bytes or read from image files, and the batches the training
//! loop reads.

pub mod augment;
pub mod cifar;
pub mod fashion;
pub mod folder;
pub mod idx;
pub mod loader;
pub mod pickle;

use std::path::{Path, PathBuf};

use augment::Augment;

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

/// A split's images: decoded in memory (IDX, CIFAR), or files decoded batch by batch
/// (ImageFolder trees).
#[derive(Debug, Clone)]
pub enum Images {
    /// Fixed-size images in memory.
    Memory(ImageSet),
    /// Image files of any size.
    Files(folder::FileSet),
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        match self {
            Images::Memory(set) => set.len(),
            Images::Files(set) => set.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images in memory, if that is where they are.
    pub fn memory(&self) -> Option<&ImageSet> {
        match self {
            Images::Memory(set) => Some(set),
            Images::Files(_) => None,
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        match self {
            Images::Memory(set) => set.classes,
            Images::Files(set) => set.classes.len(),
        }
    }

    /// Class of image `i`.
    pub fn label(&self, i: usize) -> u32 {
        match self {
            Images::Memory(set) => set.labels[i],
            Images::Files(set) => set.labels[i],
        }
    }

    /// The first `n` images of each class.
    pub fn balanced_subset(&self, per_class: usize) -> Images {
        match self {
            Images::Memory(set) => Images::Memory(set.balanced_subset(per_class)),
            Images::Files(set) => Images::Files(set.balanced_subset(per_class)),
        }
    }

    /// `[channels, height, width]` of the inputs the loader makes from these images with
    /// `augment`, or why the two do not go together.
    pub fn shape(&self, augment: Augment) -> Result<[usize; 3], String> {
        match (self, augment.output_size()) {
            (Images::Memory(set), None) => Ok([set.channels, set.height, set.width]),
            (Images::Memory(set), Some(_)) => Err(format!(
                "{augment:?} resizes image files; these images are {}x{} in memory: use none or \
                 crop_flip",
                set.height, set.width
            )),
            (Images::Files(set), None) => Err(format!(
                "the images under {} are files of any size: they need a resizing transform \
                 (random_resized_crop, resize_random_crop, resize_flip_center_crop or resize_center_crop), not {augment:?}",
                set.root.display()
            )),
            (Images::Files(_), Some(size)) => match augment {
                Augment::ResizeRandomCrop { resize, crop }
                | Augment::ResizeFlipCenterCrop { resize, crop }
                | Augment::ResizeCenterCrop { resize, crop }
                    if crop > resize =>
                {
                    Err(format!(
                        "{augment:?}: the crop is larger than the resized image"
                    ))
                }
                _ if size == 0 => Err(format!("{augment:?}: the output would be empty")),
                _ => Ok([3, size, size]),
            },
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
    pub train: Images,
    /// Test images.
    pub test: Images,
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
