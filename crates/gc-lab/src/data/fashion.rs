//! Fashion-MNIST and MNIST from IDX files (gzipped or not).

use std::path::{Path, PathBuf};

use super::{DataError, ImageSet, Images, Normalize, Splits, idx};

/// Where Debian's `dataset-fashion-mnist` package puts the full set.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The subset shipped in this repository (MIT licence, see its LICENSE): 1000 training and 200 test
/// images per class, the first of each class in the official files.
pub fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist-subset")
}

/// Class names of Fashion-MNIST, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const FILES: [(&str, &str); 2] = [
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
];

/// The file `stem` or `stem.gz` in `dir`.
fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [stem.to_string(), format!("{stem}.gz")]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// Whether `dir` holds the four IDX files.
pub fn is_idx_dir(dir: &Path) -> bool {
    FILES
        .iter()
        .all(|(images, labels)| find(dir, images).is_some() && find(dir, labels).is_some())
}

/// Find Fashion-MNIST: `dir` when given, else the Debian package's folder, else the shipped subset.
pub fn locate(dir: Option<&Path>) -> Result<PathBuf, DataError> {
    let candidates: Vec<PathBuf> = match dir {
        Some(dir) => vec![dir.to_path_buf()],
        None => vec![PathBuf::from(DEBIAN_DIR), shipped_dir()],
    };
    candidates
        .iter()
        .find(|dir| is_idx_dir(dir))
        .cloned()
        .ok_or_else(|| DataError::Missing {
            dataset: "Fashion-MNIST".into(),
            looked: candidates
                .iter()
                .map(|dir| dir.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            how: "Each folder needs train-images-idx3-ubyte, train-labels-idx1-ubyte, \
                  t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each may end in .gz). \
                  On Debian: `apt-get install dataset-fashion-mnist` (or run scripts/install-data.sh)."
                .into(),
        })
}

/// Read one split: images `[n, h, w]` and labels `[n]` below `classes`.
fn read_split(
    dir: &Path,
    images: &str,
    labels: &str,
    classes: usize,
) -> Result<ImageSet, DataError> {
    let images_path = find(dir, images).expect("checked by locate");
    let labels_path = find(dir, labels).expect("checked by locate");
    let images = idx::read(&images_path)?;
    let labels = idx::read(&labels_path)?;
    let [n, height, width] = images.dims[..] else {
        return Err(DataError::invalid(
            &images_path,
            format!(
                "expected images of shape [n, height, width], found {:?}",
                images.dims
            ),
        ));
    };
    if labels.dims != [n] {
        return Err(DataError::invalid(
            &labels_path,
            format!(
                "expected {n} labels (one per image in {}), found shape {:?}",
                images_path.display(),
                labels.dims
            ),
        ));
    }
    if let Some((i, &label)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= classes)
    {
        return Err(DataError::invalid(
            &labels_path,
            format!("label {label} of image {i} is out of range (there are {classes} classes)"),
        ));
    }
    Ok(ImageSet {
        channels: 1,
        height,
        width,
        pixels: images.data,
        labels: labels.data.into_iter().map(u32::from).collect(),
        classes,
    })
}

/// Per-channel mean and standard deviation of the training pixels, in [0, 1] units.
pub fn channel_stats(set: &ImageSet) -> Normalize {
    let plane = set.height * set.width;
    let mut sums = vec![0f64; set.channels];
    let mut squares = vec![0f64; set.channels];
    for image in set.pixels.chunks_exact(set.image_len()) {
        for (c, channel) in image.chunks_exact(plane).enumerate() {
            for &p in channel {
                let x = p as f64 / 255.0;
                sums[c] += x;
                squares[c] += x * x;
            }
        }
    }
    let count = (set.len() * plane) as f64;
    let mean: Vec<f64> = sums.iter().map(|s| s / count).collect();
    let std = squares
        .iter()
        .zip(&mean)
        .map(|(sq, m)| ((sq / count - m * m).max(1e-12)).sqrt() as f32)
        .collect();
    Normalize {
        mean: mean.into_iter().map(|m| m as f32).collect(),
        std,
    }
}

/// Load Fashion-MNIST (or MNIST: the same files) from `dir`, found by [`locate`].
pub fn load(dir: &Path, name: &str) -> Result<Splits, DataError> {
    let train = read_split(dir, FILES[0].0, FILES[0].1, 10)?;
    let test = read_split(dir, FILES[1].0, FILES[1].1, 10)?;
    if (test.height, test.width) != (train.height, train.width) {
        return Err(DataError::invalid(
            dir,
            format!(
                "test images are {}x{}, training images {}x{}",
                test.height, test.width, train.height, train.width
            ),
        ));
    }
    let normalize = channel_stats(&train);
    Ok(Splits {
        name: name.into(),
        source: dir.to_path_buf(),
        train: Images::Memory(train),
        test: Images::Memory(test),
        normalize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::encode;
    use crate::test_dir;
    use std::io::Write;

    fn write(dir: &Path, name: &str, bytes: &[u8], gzip: bool) {
        let path = dir.join(if gzip {
            format!("{name}.gz")
        } else {
            name.into()
        });
        let mut file = std::fs::File::create(path).unwrap();
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            enc.write_all(bytes).unwrap();
            enc.finish().unwrap();
        } else {
            file.write_all(bytes).unwrap();
        }
    }

    fn tiny(dir: &Path, gzip: bool, bad_label: bool) {
        let pixels: Vec<u8> = (0..3 * 4 * 4).map(|i| i as u8).collect();
        write(
            dir,
            "train-images-idx3-ubyte",
            &encode(&[3, 4, 4], &pixels),
            gzip,
        );
        write(
            dir,
            "train-labels-idx1-ubyte",
            &encode(&[3], &[0, 9, if bad_label { 10 } else { 2 }]),
            gzip,
        );
        write(
            dir,
            "t10k-images-idx3-ubyte",
            &encode(&[1, 4, 4], &pixels[..16]),
            gzip,
        );
        write(dir, "t10k-labels-idx1-ubyte", &encode(&[1], &[5]), gzip);
    }

    #[test]
    fn loads_plain_and_gzipped_files() {
        for gzip in [false, true] {
            let dir = test_dir(&format!("fashion-{gzip}"));
            tiny(&dir, gzip, false);
            let splits = load(&locate(Some(&dir)).unwrap(), "tiny").unwrap();
            assert_eq!(splits.train.len(), 3);
            assert_eq!(splits.train.memory().unwrap().labels, vec![0, 9, 2]);
            assert_eq!(splits.test.memory().unwrap().image(0)[15], 15);
            assert_eq!(
                (
                    splits.train.memory().unwrap().height,
                    splits.train.memory().unwrap().width
                ),
                (4, 4)
            );
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn a_label_out_of_range_names_the_file_and_image() {
        let dir = test_dir("fashion-label");
        tiny(&dir, false, true);
        let err = load(&dir, "tiny").unwrap_err().to_string();
        assert!(
            err.contains("train-labels-idx1-ubyte") && err.contains("label 10 of image 2"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_dataset_says_where_it_looked_and_how_to_get_it() {
        let dir = test_dir("fashion-missing");
        let err = locate(Some(&dir)).unwrap_err().to_string();
        assert!(
            err.contains(&dir.display().to_string()) && err.contains("apt-get install"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_truncated_gzip_file_names_the_file() {
        let dir = test_dir("fashion-trunc");
        tiny(&dir, true, false);
        let path = dir.join("train-images-idx3-ubyte.gz");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = load(&dir, "tiny").unwrap_err().to_string();
        assert!(
            err.contains("train-images-idx3-ubyte.gz") && err.contains("corrupt at byte"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
