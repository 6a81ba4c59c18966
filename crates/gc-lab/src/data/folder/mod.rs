//! ImageFolder trees, the layout of ImageNet, Mini-ImageNet and the fine-grained sets as
//! torchvision's `ImageFolder` reads them: `train/<class>/<image>` and `val/<class>/<image>` (or
//! `test/`), JPEG or PNG files of any size. Classes are the training folder's sub-folders in
//! sorted order; images are decoded and transformed by the loader's workers, batch by batch.

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{ImageReader, RgbImage};

use super::augment::{Augment, Rng};
use super::{DataError, Normalize, Splits};

/// The file extensions read as images (case-insensitive); other files are not images.
const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// ImageNet's channel statistics, which the seed uses for every ImageFolder dataset.
pub fn imagenet_normalize() -> Normalize {
    Normalize {
        mean: vec![0.485, 0.456, 0.406],
        std: vec![0.229, 0.224, 0.225],
    }
}

/// Image files with their classes.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSet {
    /// The split's folder.
    pub root: PathBuf,
    /// Every image, class after class, each class's files in name order.
    pub files: Vec<PathBuf>,
    /// Class of each file.
    pub labels: Vec<u32>,
    /// Class names (folder names), sorted; a label indexes this list.
    pub classes: Vec<String>,
}

impl FileSet {
    /// Read the tree under `dir`: one sub-folder per class. With `classes` (the training split's),
    /// every folder must be one of them and labels follow that list.
    pub fn scan(dir: &Path, classes: Option<&[String]>) -> Result<FileSet, DataError> {
        let mut folders: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
            .map_err(|e| DataError::io(dir, e))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.to_string();
                (!name.starts_with('.')).then(|| (name, entry.path()))
            })
            .collect();
        folders.sort();
        if folders.is_empty() {
            return Err(DataError::invalid(
                dir,
                "holds no class folders; an ImageFolder split is one folder per class, \
                 e.g. train/n01440764/*.JPEG",
            ));
        }
        let classes: Vec<String> = match classes {
            Some(known) => known.to_vec(),
            None => folders.iter().map(|(name, _)| name.clone()).collect(),
        };
        let mut set = FileSet {
            root: dir.to_path_buf(),
            files: Vec::new(),
            labels: Vec::new(),
            classes,
        };
        for (name, path) in folders {
            let Some(label) = set.classes.iter().position(|c| *c == name) else {
                return Err(DataError::invalid(
                    &path,
                    format!(
                        "class `{name}` is not among the {} training classes; the splits must \
                         have the same class folders",
                        set.classes.len()
                    ),
                ));
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|e| DataError::io(&path, e))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
                })
                .collect();
            if files.is_empty() {
                return Err(DataError::invalid(
                    &path,
                    format!(
                        "class folder `{name}` holds no images (.jpg, .jpeg or .png); remove it \
                         or fill it"
                    ),
                ));
            }
            files.sort();
            set.labels
                .extend(std::iter::repeat_n(label as u32, files.len()));
            set.files.extend(files);
        }
        Ok(set)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The first `n` images of each class.
    pub fn balanced_subset(&self, per_class: usize) -> FileSet {
        let mut taken = vec![0usize; self.classes.len()];
        let (mut files, mut labels) = (Vec::new(), Vec::new());
        for (file, &label) in self.files.iter().zip(&self.labels) {
            let slot = &mut taken[label as usize];
            if *slot < per_class {
                *slot += 1;
                files.push(file.clone());
                labels.push(label);
            }
        }
        FileSet {
            files,
            labels,
            ..self.clone()
        }
    }
}

/// Load `root/train` and `root/val` (or `root/test`).
pub fn load(root: &Path, name: &str) -> Result<Splits, DataError> {
    let train_dir = root.join("train");
    let test_dir = ["val", "test"]
        .into_iter()
        .map(|split| root.join(split))
        .find(|dir| dir.is_dir());
    let (true, Some(test_dir)) = (train_dir.is_dir(), test_dir) else {
        return Err(DataError::Missing {
            dataset: name.into(),
            looked: format!(
                "{} and {} (or {})",
                train_dir.display(),
                root.join("val").display(),
                root.join("test").display()
            ),
            how: "Pass with --data the folder holding train/<class>/*.jpg and val/<class>/*.jpg \
                  (the ImageFolder layout; ImageNet's validation images must be sorted into class \
                  folders first)."
                .into(),
        });
    };
    let train = FileSet::scan(&train_dir, None)?;
    let test = FileSet::scan(&test_dir, Some(&train.classes))?;
    Ok(Splits {
        name: name.into(),
        source: root.to_path_buf(),
        train: super::Images::Files(train),
        test: super::Images::Files(test),
        normalize: imagenet_normalize(),
    })
}

/// Decode `path` as RGB (grey and palette images are expanded, alpha dropped).
pub fn decode(path: &Path) -> Result<RgbImage, DataError> {
    let reader = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| DataError::io(path, e))?;
    let image = reader.decode().map_err(|e| {
        DataError::invalid(
            path,
            format!("cannot decode the image: {e}; replace or remove the file"),
        )
    })?;
    Ok(image.to_rgb8())
}

/// torchvision's `RandomResizedCrop` box (scale 0.08 to 1 of the area, aspect ratio 3/4 to 4/3,
/// ten tries, then the central crop of the nearest allowed ratio): `(x, y, width, height)`.
pub fn random_resized_box(width: u32, height: u32, rng: &mut Rng) -> (u32, u32, u32, u32) {
    let area = f64::from(width) * f64::from(height);
    let (log_lo, log_hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * (0.08 + (1.0 - 0.08) * rng.uniform());
        let ratio = (log_lo + (log_hi - log_lo) * rng.uniform()).exp();
        let w = (target * ratio).sqrt().round() as u32;
        let h = (target / ratio).sqrt().round() as u32;
        if 0 < w && w <= width && 0 < h && h <= height {
            let y = rng.below((height - h + 1) as usize) as u32;
            let x = rng.below((width - w + 1) as usize) as u32;
            return (x, y, w, h);
        }
    }
    let ratio = f64::from(width) / f64::from(height);
    let (w, h) = if ratio < 3.0 / 4.0 {
        (width, (f64::from(width) / (3.0 / 4.0)).round() as u32)
    } else if ratio > 4.0 / 3.0 {
        ((f64::from(height) * (4.0 / 3.0)).round() as u32, height)
    } else {
        (width, height)
    };
    let (w, h) = (w.min(width), h.min(height));
    ((width - w) / 2, (height - h) / 2, w, h)
}

/// Resize so that the shorter side is `size` (torchvision's `Resize(size)`: the longer side is
/// scaled and truncated), with a triangle (bilinear, antialiased) filter.
pub fn resize_shorter(image: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let (nw, nh) = if w <= h {
        (size, (u64::from(size) * u64::from(h) / u64::from(w)) as u32)
    } else {
        ((u64::from(size) * u64::from(w) / u64::from(h)) as u32, size)
    };
    imageops::resize(image, nw, nh, FilterType::Triangle)
}

/// Where torchvision's `CenterCrop` starts a `crop` inside `size`: `int(round((size - crop) / 2))`,
/// Python's `round`, which takes a half to the even neighbour.
pub fn centre_offset(size: u32, crop: u32) -> u32 {
    (f64::from(size - crop) / 2.0).round_ties_even() as u32
}

/// Decode `path`, transform it with `augment` and write it normalized into `out` (`3·s·s`).
pub fn write_file_image(
    path: &Path,
    augment: Augment,
    normalize: &Normalize,
    rng: &mut Rng,
    out: &mut [f32],
) -> Result<(), DataError> {
    let image = decode(path)?;
    let (w, h) = image.dimensions();
    let (image, flip) = match augment {
        Augment::RandomResizedCrop { size } => {
            let (x, y, cw, ch) = random_resized_box(w, h, rng);
            let crop = imageops::crop_imm(&image, x, y, cw, ch);
            let size = size as u32;
            let resized = imageops::resize(&*crop, size, size, FilterType::Triangle);
            (resized, rng.next_u64() & 1 == 1)
        }
        Augment::ResizeRandomCrop { resize, crop } => {
            let resized = resize_shorter(&image, resize as u32);
            let (rw, rh) = resized.dimensions();
            let crop = crop as u32;
            let y = rng.below((rh - crop + 1) as usize) as u32;
            let x = rng.below((rw - crop + 1) as usize) as u32;
            let cropped = imageops::crop_imm(&resized, x, y, crop, crop).to_image();
            (cropped, rng.next_u64() & 1 == 1)
        }
        Augment::ResizeFlipCenterCrop { resize, crop } => {
            let resized = resize_shorter(&image, resize as u32);
            let (rw, rh) = resized.dimensions();
            let crop = crop as u32;
            let (x, y) = (centre_offset(rw, crop), centre_offset(rh, crop));
            // The centre crop of the flipped image is the flip of the crop mirrored about the
            // middle: the same columns only when the margin is even.
            let flip = rng.next_u64() & 1 == 1;
            let x = if flip { rw - crop - x } else { x };
            (
                imageops::crop_imm(&resized, x, y, crop, crop).to_image(),
                flip,
            )
        }
        Augment::ResizeCenterCrop { resize, crop } => {
            let resized = resize_shorter(&image, resize as u32);
            let (rw, rh) = resized.dimensions();
            let crop = crop as u32;
            let (x, y) = (centre_offset(rw, crop), centre_offset(rh, crop));
            (
                imageops::crop_imm(&resized, x, y, crop, crop).to_image(),
                false,
            )
        }
        Augment::None | Augment::CropFlip { .. } => {
            unreachable!("checked by Images::shape: files need a resizing transform")
        }
    };
    let (w, h) = image.dimensions();
    let (w, h) = (w as usize, h as usize);
    let raw = image.as_raw();
    for c in 0..3 {
        let (mean, std) = (normalize.mean[c], normalize.std[c]);
        for y in 0..h {
            for x in 0..w {
                let sx = if flip { w - 1 - x } else { x };
                let p = raw[(y * w + sx) * 3 + c];
                out[(c * h + y) * w + x] = (p as f32 / 255.0 - mean) / std;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
