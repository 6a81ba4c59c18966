//! CIFAR-10 and CIFAR-100 in both official on-disk forms, told apart by their file names.
//!
//! Binary version (the `*-binary.tar.gz` archives, unpacked): each record is the label byte(s)
//! then 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32x32 row-major). CIFAR-10
//! (`cifar-10-batches-bin/`): one label byte, training records in `data_batch_1.bin` ..
//! `data_batch_5.bin`, test records in `test_batch.bin`. CIFAR-100 (`cifar-100-binary/`): a coarse
//! (20 superclasses) then a fine (100 classes) label byte, in `train.bin` and `test.bin`.
//!
//! Python version (the `*-python.tar.gz` archives torchvision downloads): pickled dicts whose
//! `data` is a `uint8` numpy array `[n, 3072]` of the same pixel layout, with `labels` (CIFAR-10,
//! `cifar-10-batches-py/data_batch_1` .. `_5`, `test_batch`) or `fine_labels` and `coarse_labels`
//! (CIFAR-100, `cifar-100-python/train`, `test`).

use std::path::Path;

use super::pickle::{self, Value};
use super::{DataError, ImageSet, Images, Normalize, Splits};

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

    /// Training files and the test file of `form`.
    fn files(self, form: Form) -> (Vec<String>, String) {
        let ext = match form {
            Form::Binary => ".bin",
            Form::Python => "",
        };
        match self {
            Cifar::Ten => (
                (1..=5).map(|b| format!("data_batch_{b}{ext}")).collect(),
                format!("test_batch{ext}"),
            ),
            Cifar::HundredFine | Cifar::HundredCoarse => {
                (vec![format!("train{ext}")], format!("test{ext}"))
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Cifar::Ten => "CIFAR-10",
            Cifar::HundredFine | Cifar::HundredCoarse => "CIFAR-100",
        }
    }

    /// The normalization the seed's CIFAR-100 code writes (`GC_code/CIFAR100/main.py`, lines 58
    /// and 62); CIFAR-10's usual constants.
    pub fn normalize(self) -> Normalize {
        match self {
            Cifar::Ten => Normalize {
                mean: vec![0.4914, 0.4822, 0.4465],
                std: vec![0.2470, 0.2435, 0.2616],
            },
            Cifar::HundredFine | Cifar::HundredCoarse => Normalize {
                mean: vec![0.507, 0.487, 0.441],
                std: vec![0.267, 0.256, 0.276],
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

/// Parse one pickled batch of the python version.
fn parse_python(
    path: &Path,
    bytes: &[u8],
    kind: Cifar,
    set: &mut ImageSet,
) -> Result<(), DataError> {
    let value = pickle::load(bytes).map_err(|e| DataError::corrupt(path, e.offset, e.message))?;
    if !matches!(value, Value::Dict(_)) {
        return Err(DataError::invalid(
            path,
            format!(
                "holds a pickled {}, not a CIFAR batch (a dict)",
                value.kind()
            ),
        ));
    }
    let Some(Value::Array(data)) = value.get("data") else {
        return Err(DataError::invalid(
            path,
            "has no numpy array under `data`; is this a CIFAR python-version batch?",
        ));
    };
    let n = match data.shape.as_slice() {
        [n, PIXELS] if data.dtype == "u1" && !data.fortran && data.data.len() == n * PIXELS => *n,
        _ => {
            return Err(DataError::invalid(
                path,
                format!(
                    "`data` is a {}{} array of shape {:?} ({} bytes); CIFAR's is uint8 [n, 3072], \
                     row-major: images of the wrong size or type",
                    if data.fortran { "column-major " } else { "" },
                    data.dtype,
                    data.shape,
                    data.data.len()
                ),
            ));
        }
    };
    let key = match kind {
        Cifar::Ten => "labels",
        Cifar::HundredFine => "fine_labels",
        Cifar::HundredCoarse => "coarse_labels",
    };
    let Some(Value::List(labels)) = value.get(key) else {
        return Err(DataError::invalid(
            path,
            format!(
                "has no list under `{key}`; is this the {} file?",
                kind.name()
            ),
        ));
    };
    if labels.len() != n {
        return Err(DataError::invalid(
            path,
            format!("{} labels for {n} images", labels.len()),
        ));
    }
    for (i, label) in labels.iter().enumerate() {
        match label {
            Value::Int(l) if (0..kind.classes() as i64).contains(l) => set.labels.push(*l as u32),
            other => {
                return Err(DataError::invalid(
                    path,
                    format!(
                        "image {i} has label {other:?}, but there are {} classes; is this the {} \
                         file?",
                        kind.classes(),
                        kind.name()
                    ),
                ));
            }
        }
    }
    set.pixels.extend_from_slice(&data.data);
    Ok(())
}

fn read(dir: &Path, names: &[String], kind: Cifar, form: Form) -> Result<ImageSet, DataError> {
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
        match form {
            Form::Binary => parse(&path, &bytes, kind, &mut set)?,
            Form::Python => parse_python(&path, &bytes, kind, &mut set)?,
        }
    }
    Ok(set)
}

/// The two official on-disk forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `*.bin` records.
    Binary,
    /// Pickled numpy arrays.
    Python,
}

/// Load CIFAR from `dir`, an unpacked archive's folder of either form.
pub fn load(dir: &Path, kind: Cifar) -> Result<Splits, DataError> {
    let complete = |form: Form| {
        let (train, test) = kind.files(form);
        train.iter().chain([&test]).all(|n| dir.join(n).is_file())
    };
    let form = if complete(Form::Binary) {
        Form::Binary
    } else if complete(Form::Python) {
        Form::Python
    } else {
        let looked: Vec<String> = [Form::Binary, Form::Python]
            .into_iter()
            .flat_map(|form| {
                let (train, test) = kind.files(form);
                train.into_iter().chain([test])
            })
            .map(|name| dir.join(name))
            .filter(|path| !path.is_file())
            .map(|p| p.display().to_string())
            .collect();
        let archives = match kind {
            Cifar::Ten => {
                "cifar-10-binary.tar.gz (unpacks to cifar-10-batches-bin/) or \
                 cifar-10-python.tar.gz (cifar-10-batches-py/)"
            }
            _ => {
                "cifar-100-binary.tar.gz (unpacks to cifar-100-binary/) or \
                 cifar-100-python.tar.gz (cifar-100-python/)"
            }
        };
        return Err(DataError::Missing {
            dataset: kind.name().into(),
            looked: format!("{} (missing: {})", dir.display(), looked.join(", ")),
            how: format!(
                "Download {archives} from the CIFAR page of the University of Toronto, unpack \
                 it, and pass the unpacked folder with --data."
            ),
        });
    };
    let (train_files, test_file) = kind.files(form);
    Ok(Splits {
        name: match kind {
            Cifar::Ten => "CIFAR-10",
            Cifar::HundredFine => "CIFAR-100",
            Cifar::HundredCoarse => "CIFAR-100 (coarse)",
        }
        .into(),
        source: dir.to_path_buf(),
        train: Images::Memory(read(dir, &train_files, kind, form)?),
        test: Images::Memory(read(dir, &[test_file], kind, form)?),
        normalize: kind.normalize(),
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod py2;
