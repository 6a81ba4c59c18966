//! CIFAR-10 and CIFAR-100, binary version (the `*-binary.tar.gz` archives, unpacked).
//!
//! Each record is the label byte(s) then 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each
//! 32x32 row-major). CIFAR-10 (`cifar-10-batches-bin/`): one label byte, training records in
//! `data_batch_1.bin` .. `data_batch_5.bin`, test records in `test_batch.bin`. CIFAR-100
//! (`cifar-100-binary/`): a coarse (20 superclasses) then a fine (100 classes) label byte, in
//! `train.bin` and `test.bin`.

use std::path::{Path, PathBuf};

use super::{DataError, ImageSet, Normalize, Splits};

const PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR, and for CIFAR-100 which labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar {
    /// CIFAR-10: 10 classes.
    Ten,
    /// CIFAR-100 with its 100 fine labels (the seed's experiments).
    HundredFine,
    /// CIFAR-100 with its 20 coarse labels.
    HundredCoarse,
}

impl Cifar {
    fn label_bytes(self) -> usize {
        match self {
            Cifar::Ten => 1,
            Cifar::HundredFine | Cifar::HundredCoarse => 2,
        }
    }

    fn classes(self) -> usize {
        match self {
            Cifar::Ten => 10,
            Cifar::HundredFine => 100,
            Cifar::HundredCoarse => 20,
        }
    }

    fn files(self) -> (Vec<&'static str>, &'static str) {
        match self {
            Cifar::Ten => (
                vec![
                    "data_batch_1.bin",
                    "data_batch_2.bin",
                    "data_batch_3.bin",
                    "data_batch_4.bin",
                    "data_batch_5.bin",
                ],
                "test_batch.bin",
            ),
            Cifar::HundredFine | Cifar::HundredCoarse => (vec!["train.bin"], "test.bin"),
        }
    }

    /// The normalization the seed's CIFAR-100 code uses; CIFAR-10's usual constants.
    pub fn normalize(self) -> Normalize {
        match self {
            Cifar::Ten => Normalize {
                mean: vec![0.4914, 0.4822, 0.4465],
                std: vec![0.2470, 0.2435, 0.2616],
            },
            Cifar::HundredFine | Cifar::HundredCoarse => Normalize {
                mean: vec![0.5071, 0.4865, 0.4409],
                std: vec![0.2673, 0.2564, 0.2762],
            },
        }
    }
}

/// Parse the records of one file.
fn parse(path: &Path, bytes: &[u8], kind: Cifar, set: &mut ImageSet) -> Result<(), DataError> {
    let record = kind.label_bytes() + PIXELS;
    if !bytes.len().is_multiple_of(record) {
        let whole = bytes.len() / record * record;
        return Err(DataError::corrupt(
            path,
            whole,
            format!(
                "truncated record: {} bytes left over after {} whole {record}-byte records",
                bytes.len() - whole,
                bytes.len() / record
            ),
        ));
    }
    for (i, chunk) in bytes.chunks_exact(record).enumerate() {
        let label = match kind {
            Cifar::Ten | Cifar::HundredCoarse => chunk[0],
            Cifar::HundredFine => chunk[1],
        } as usize;
        if label >= kind.classes() {
            return Err(DataError::corrupt(
                path,
                i * record,
                format!(
                    "record {i} has label {label}, but there are {} classes; \
                     is this the {} file?",
                    kind.classes(),
                    if kind == Cifar::Ten {
                        "CIFAR-10"
                    } else {
                        "CIFAR-100"
                    }
                ),
            ));
        }
        set.labels.push(label as u32);
        set.pixels.extend_from_slice(&chunk[kind.label_bytes()..]);
    }
    Ok(())
}

fn read(dir: &Path, names: &[&str], kind: Cifar) -> Result<ImageSet, DataError> {
    let mut set = ImageSet {
        channels: 3,
        height: 32,
        width: 32,
        pixels: Vec::new(),
        labels: Vec::new(),
        classes: kind.classes(),
    };
    for name in names {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|source| DataError::io(&path, source))?;
        parse(&path, &bytes, kind, &mut set)?;
    }
    Ok(set)
}

/// Load CIFAR from `dir`, the unpacked binary archive's folder.
pub fn load(dir: &Path, kind: Cifar) -> Result<Splits, DataError> {
    let (train_files, test_file) = kind.files();
    let missing: Vec<PathBuf> = train_files
        .iter()
        .chain([&test_file])
        .map(|name| dir.join(name))
        .filter(|path| !path.is_file())
        .collect();
    if !missing.is_empty() {
        let (name, archive) = match kind {
            Cifar::Ten => (
                "CIFAR-10",
                "cifar-10-binary.tar.gz (unpacks to cifar-10-batches-bin/)",
            ),
            _ => (
                "CIFAR-100",
                "cifar-100-binary.tar.gz (unpacks to cifar-100-binary/)",
            ),
        };
        return Err(DataError::Missing {
            dataset: name.into(),
            looked: missing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            how: format!(
                "Download the binary version, {archive}, from the CIFAR page of the University of \
                 Toronto, unpack it, and pass its folder with --data."
            ),
        });
    }
    Ok(Splits {
        name: match kind {
            Cifar::Ten => "CIFAR-10",
            Cifar::HundredFine => "CIFAR-100",
            Cifar::HundredCoarse => "CIFAR-100 (coarse)",
        }
        .into(),
        source: dir.to_path_buf(),
        train: read(dir, &train_files, kind)?,
        test: read(dir, &[test_file], kind)?,
        normalize: kind.normalize(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir;
    use proptest::prelude::*;

    fn record(labels: &[u8], fill: u8) -> Vec<u8> {
        let mut r = labels.to_vec();
        r.extend(std::iter::repeat_n(fill, PIXELS));
        r
    }

    #[test]
    fn cifar100_fine_and_coarse_labels() {
        let dir = test_dir("cifar-100");
        let train: Vec<u8> = [record(&[3, 42], 7), record(&[19, 99], 9)].concat();
        std::fs::write(dir.join("train.bin"), &train).unwrap();
        std::fs::write(dir.join("test.bin"), record(&[0, 5], 1)).unwrap();
        let fine = load(&dir, Cifar::HundredFine).unwrap();
        assert_eq!(fine.train.labels, vec![42, 99]);
        assert_eq!(fine.train.image(1)[0], 9);
        assert_eq!((fine.train.channels, fine.train.height), (3, 32));
        let coarse = load(&dir, Cifar::HundredCoarse).unwrap();
        assert_eq!(coarse.train.labels, vec![3, 19]);
        assert_eq!(coarse.test.labels, vec![0]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cifar10_reads_all_five_training_batches() {
        let dir = test_dir("cifar-10");
        for b in 1..=5 {
            std::fs::write(
                dir.join(format!("data_batch_{b}.bin")),
                record(&[b as u8], b as u8),
            )
            .unwrap();
        }
        std::fs::write(dir.join("test_batch.bin"), record(&[9], 0)).unwrap();
        let splits = load(&dir, Cifar::Ten).unwrap();
        assert_eq!(splits.train.labels, vec![1, 2, 3, 4, 5]);
        assert_eq!(splits.test.labels, vec![9]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_files_say_which_and_how_to_get_them() {
        let dir = test_dir("cifar-missing");
        let err = load(&dir, Cifar::HundredFine).unwrap_err().to_string();
        assert!(
            err.contains("train.bin") && err.contains("cifar-100-binary.tar.gz"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn truncation_and_bad_labels_name_the_byte_offset() {
        let path = Path::new("train.bin");
        let mut set = ImageSet {
            channels: 3,
            height: 32,
            width: 32,
            pixels: vec![],
            labels: vec![],
            classes: 100,
        };
        let two = [record(&[1, 1], 0), record(&[1, 1], 0)].concat();
        let err = parse(path, &two[..two.len() - 5], Cifar::HundredFine, &mut set).unwrap_err();
        assert!(err.to_string().contains("corrupt at byte 3074"), "{err}");
        let bad = [record(&[1, 1], 0), record(&[1, 100], 0)].concat();
        let err = parse(path, &bad, Cifar::HundredFine, &mut set).unwrap_err();
        assert!(
            err.to_string()
                .contains("at byte 3074: record 1 has label 100"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..8000)) {
            let mut set = ImageSet { channels: 3, height: 32, width: 32, pixels: vec![], labels: vec![], classes: 10 };
            let _ = parse(Path::new("x.bin"), &bytes, Cifar::Ten, &mut set);
        }
    }
}
