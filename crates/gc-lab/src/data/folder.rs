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
        Augment::ResizeCenterCrop { resize, crop } => {
            let resized = resize_shorter(&image, resize as u32);
            let (rw, rh) = resized.dimensions();
            let crop = crop as u32;
            // torchvision: round((size - crop) / 2).
            let x = ((f64::from(rw - crop)) / 2.0).round() as u32;
            let y = ((f64::from(rh - crop)) / 2.0).round() as u32;
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
mod tests {
    use super::*;
    use crate::test_dir;
    use image::{ImageFormat, Rgb};

    fn save(path: &Path, width: u32, height: u32, color: [u8; 3], format: ImageFormat) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        RgbImage::from_pixel(width, height, Rgb(color))
            .save_with_format(path, format)
            .unwrap();
    }

    fn tree(name: &str) -> PathBuf {
        let root = test_dir(name);
        save(
            &root.join("train/dog/b.png"),
            40,
            30,
            [200, 10, 10],
            ImageFormat::Png,
        );
        save(
            &root.join("train/dog/a.jpg"),
            30,
            40,
            [10, 200, 10],
            ImageFormat::Jpeg,
        );
        save(
            &root.join("train/cat/x.PNG"),
            50,
            50,
            [0, 0, 0],
            ImageFormat::Png,
        );
        std::fs::write(root.join("train/cat/notes.txt"), "not an image").unwrap();
        save(
            &root.join("val/dog/c.png"),
            20,
            20,
            [1, 2, 3],
            ImageFormat::Png,
        );
        root
    }

    #[test]
    fn classes_are_sorted_folders_and_files_sorted_within() {
        let root = tree("folder-scan");
        let splits = load(&root, "tiny").unwrap();
        let super::super::Images::Files(train) = &splits.train else {
            panic!("files");
        };
        assert_eq!(train.classes, vec!["cat", "dog"]);
        assert_eq!(train.labels, vec![0, 1, 1]);
        let names: Vec<_> = train
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, vec!["x.PNG", "a.jpg", "b.png"]);
        let super::super::Images::Files(test) = &splits.test else {
            panic!("files");
        };
        assert_eq!(
            test.labels,
            vec![1],
            "val labels follow the training classes"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn bad_trees_are_clear_errors() {
        let root = tree("folder-bad");
        std::fs::create_dir_all(root.join("val/cow")).unwrap();
        save(&root.join("val/cow/m.png"), 4, 4, [0; 3], ImageFormat::Png);
        let err = load(&root, "tiny").unwrap_err().to_string();
        assert!(
            err.contains("class `cow` is not among the 2 training classes"),
            "{err}"
        );
        std::fs::remove_dir_all(root.join("val/cow")).unwrap();
        std::fs::create_dir_all(root.join("train/emu")).unwrap();
        let err = load(&root, "tiny").unwrap_err().to_string();
        assert!(
            err.contains("emu") && err.contains("holds no images"),
            "{err}"
        );
        let err = load(&root.join("nowhere"), "tiny").unwrap_err().to_string();
        assert!(
            err.contains("not found") && err.contains("train/<class>"),
            "{err}"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn transforms_give_the_crop_size_and_keep_a_plain_colour() {
        let root = tree("folder-transforms");
        let unit = Normalize {
            mean: vec![0.0; 3],
            std: vec![1.0 / 255.0; 3],
        };
        let mut rng = Rng::new(&[5]);
        for augment in [
            Augment::RandomResizedCrop { size: 8 },
            Augment::ResizeRandomCrop {
                resize: 12,
                crop: 8,
            },
            Augment::ResizeCenterCrop {
                resize: 10,
                crop: 8,
            },
        ] {
            let mut out = vec![f32::NAN; 3 * 8 * 8];
            write_file_image(
                &root.join("train/dog/b.png"),
                augment,
                &unit,
                &mut rng,
                &mut out,
            )
            .unwrap();
            for (c, expected) in [200.0, 10.0, 10.0].into_iter().enumerate() {
                let plane = &out[c * 64..(c + 1) * 64];
                // The filter keeps a plain colour exactly; only (p/255)/(1/255) rounds.
                assert!(
                    plane.iter().all(|&v| (v - expected).abs() < 1e-3),
                    "{augment:?} channel {c}: {plane:?}"
                );
            }
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn center_crop_takes_the_middle_as_torchvision() {
        let root = test_dir("folder-center");
        // A 6x4 image whose red channel is its column index: resizing the shorter side to 4 keeps
        // it as it is, and a centred 4x4 crop starts at column round((6 - 4) / 2) = 1.
        let mut image = RgbImage::new(6, 4);
        for (x, _, p) in image.enumerate_pixels_mut() {
            *p = Rgb([x as u8, 0, 0]);
        }
        let path = root.join("g.png");
        image.save(&path).unwrap();
        let unit = Normalize {
            mean: vec![0.0; 3],
            std: vec![1.0 / 255.0; 3],
        };
        let mut out = vec![0.0; 3 * 16];
        let augment = Augment::ResizeCenterCrop { resize: 4, crop: 4 };
        write_file_image(&path, augment, &unit, &mut Rng::new(&[0]), &mut out).unwrap();
        assert_eq!(&out[..4], &[1.0, 2.0, 3.0, 4.0]);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn corrupt_images_name_the_file() {
        let root = test_dir("folder-corrupt");
        let path = root.join("broken.jpg");
        std::fs::write(&path, b"\xff\xd8\xff\xe0 this is not a jpeg").unwrap();
        let mut out = vec![0.0; 3 * 64];
        let err = write_file_image(
            &path,
            Augment::ResizeCenterCrop { resize: 8, crop: 8 },
            &imagenet_normalize(),
            &mut Rng::new(&[0]),
            &mut out,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("broken.jpg") && err.contains("cannot decode"),
            "{err}"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn random_resized_boxes_stay_inside_and_respect_scale_and_ratio() {
        let mut rng = Rng::new(&[9]);
        for (w, h) in [(500, 375), (64, 64), (1000, 10), (10, 1000)] {
            for _ in 0..200 {
                let (x, y, cw, ch) = random_resized_box(w, h, &mut rng);
                assert!(
                    cw > 0 && ch > 0 && x + cw <= w && y + ch <= h,
                    "{w}x{h}: {x},{y} {cw}x{ch}"
                );
            }
        }
        // On a roomy image the first try succeeds: area within [0.08, 1] and ratio within
        // [3/4, 4/3] up to rounding.
        for _ in 0..200 {
            let (_, _, cw, ch) = random_resized_box(500, 500, &mut rng);
            let scale = f64::from(cw * ch) / 250_000.0;
            let ratio = f64::from(cw) / f64::from(ch);
            assert!((0.075..=1.0).contains(&scale), "{scale}");
            assert!((0.74..=1.35).contains(&ratio), "{ratio}");
        }
        // A 1000x10 strip never fits a box of ratio <= 4/3 and area >= 8%: the central crop of
        // ratio 4/3 is taken.
        assert_eq!(random_resized_box(1000, 10, &mut rng), (493, 0, 13, 10));
    }
}
