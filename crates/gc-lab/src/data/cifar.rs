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
        assert_eq!(fine.train.memory().unwrap().labels, vec![42, 99]);
        assert_eq!(fine.train.memory().unwrap().image(1)[0], 9);
        assert_eq!(
            (
                fine.train.memory().unwrap().channels,
                fine.train.memory().unwrap().height
            ),
            (3, 32)
        );
        let coarse = load(&dir, Cifar::HundredCoarse).unwrap();
        assert_eq!(coarse.train.memory().unwrap().labels, vec![3, 19]);
        assert_eq!(coarse.test.memory().unwrap().labels, vec![0]);
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
        assert_eq!(splits.train.memory().unwrap().labels, vec![1, 2, 3, 4, 5]);
        assert_eq!(splits.test.memory().unwrap().labels, vec![9]);
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

    fn pixels(n: usize) -> Vec<u8> {
        (0..n * PIXELS).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn cifar100_python_version() {
        let dir = test_dir("cifar-100-python");
        std::fs::write(
            dir.join("train"),
            py2::cifar100(&[42, 99, 7], &[3, 19, 0], &pixels(3)),
        )
        .unwrap();
        std::fs::write(dir.join("test"), py2::cifar100(&[5], &[1], &pixels(1))).unwrap();
        let fine = load(&dir, Cifar::HundredFine).unwrap();
        assert_eq!(fine.train.memory().unwrap().labels, vec![42, 99, 7]);
        assert_eq!(fine.train.memory().unwrap().pixels, pixels(3));
        assert_eq!(fine.test.memory().unwrap().labels, vec![5]);
        let coarse = load(&dir, Cifar::HundredCoarse).unwrap();
        assert_eq!(coarse.train.memory().unwrap().labels, vec![3, 19, 0]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// More than 1000 labels: cPickle appends them in batches of 1000, and the memo passes 255.
    #[test]
    fn cifar10_python_version_with_long_label_lists() {
        let dir = test_dir("cifar-10-python");
        let labels: Vec<u32> = (0..1203).map(|i| i % 10).collect();
        for b in 1..=5 {
            std::fs::write(
                dir.join(format!("data_batch_{b}")),
                py2::cifar10(&labels, &pixels(labels.len())),
            )
            .unwrap();
        }
        std::fs::write(dir.join("test_batch"), py2::cifar10(&[9], &pixels(1))).unwrap();
        let splits = load(&dir, Cifar::Ten).unwrap();
        assert_eq!(splits.train.len(), 5 * 1203);
        assert_eq!(
            &splits.train.memory().unwrap().labels[1195..1203],
            &labels[1195..1203]
        );
        assert_eq!(splits.test.memory().unwrap().labels, vec![9]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Files written by `reference/make_pickles.py` (Python 3, numpy): the same batch pickled with
    /// protocols 2 (`_codecs.encode` bytes), 4 (frames, `STACK_GLOBAL`, memoize) and 5 (numpy's
    /// `_frombuffer` with an in-band buffer).
    #[test]
    fn python3_pickles_of_every_protocol() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for protocol in [2, 4, 5] {
            let path = fixtures.join(format!("cifar100-py3-protocol{protocol}.pickle"));
            let bytes = std::fs::read(&path).unwrap();
            let mut set = ImageSet {
                channels: 3,
                height: 32,
                width: 32,
                pixels: vec![],
                labels: vec![],
                classes: 100,
            };
            parse_python(&path, &bytes, Cifar::HundredFine, &mut set).unwrap();
            assert_eq!(set.labels, vec![42, 99], "protocol {protocol}");
            assert_eq!(set.pixels, pixels(2), "protocol {protocol}");
        }
    }

    #[test]
    fn python_version_errors_name_the_file_and_the_problem() {
        let path = Path::new("train");
        let mut set = ImageSet {
            channels: 3,
            height: 32,
            width: 32,
            pixels: vec![],
            labels: vec![],
            classes: 100,
        };
        let good = py2::cifar100(&[1, 2], &[1, 2], &pixels(2));
        let cut = good.len() - 300;
        let err = parse_python(path, &good[..cut], Cifar::HundredFine, &mut set).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("train: corrupt at byte {cut}: truncated")),
            "{err}"
        );
        let bad_label = py2::cifar100(&[1, 100], &[1, 2], &pixels(2));
        let err = parse_python(path, &bad_label, Cifar::HundredFine, &mut set).unwrap_err();
        assert!(
            err.to_string().contains("image 1 has label Int(100)"),
            "{err}"
        );
        let mut w = py2::Writer::new();
        w.begin_dict();
        w.string(b"data");
        w.u8_array(&[2, 1024], &[0; 2048]);
        let small = w.end_dict();
        let err = parse_python(path, &small, Cifar::HundredFine, &mut set).unwrap_err();
        assert!(err.to_string().contains("shape [2, 1024]"), "{err}");
        let err = parse_python(
            path,
            &py2::cifar10(&[1], &pixels(1)),
            Cifar::HundredFine,
            &mut set,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("no list under `fine_labels`"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn truncated_or_flipped_pickles_are_errors_not_panics(cut in 0usize..7000, flip in 0usize..7000, bit in 0u8..8) {
            let good = py2::cifar100(&[1, 2], &[1, 2], &pixels(2));
            let mut set = ImageSet { channels: 3, height: 32, width: 32, pixels: vec![], labels: vec![], classes: 100 };
            let cut = cut.min(good.len() - 1);
            prop_assert!(parse_python(Path::new("t"), &good[..cut], Cifar::HundredFine, &mut set).is_err());
            let mut flipped = good.clone();
            let at = flip % flipped.len();
            flipped[at] ^= 1 << bit;
            let _ = parse_python(Path::new("t"), &flipped, Cifar::HundredFine, &mut set);
        }

        #[test]
        fn random_pickle_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
            let mut set = ImageSet { channels: 3, height: 32, width: 32, pixels: vec![], labels: vec![], classes: 10 };
            let mut framed = vec![0x80, 2];
            framed.extend(&bytes);
            let _ = parse_python(Path::new("t"), &framed, Cifar::Ten, &mut set);
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..8000)) {
            let mut set = ImageSet { channels: 3, height: 32, width: 32, pixels: vec![], labels: vec![], classes: 10 };
            let _ = parse(Path::new("x.bin"), &bytes, Cifar::Ten, &mut set);
        }
    }
}

/// Writers of the python version's files, byte for byte in the form Python 2's cPickle gave them
/// (protocol 2; memo from 1; strings `U`/`T`, memoized only when cPickle would: not the
/// temporaries numpy's `__reduce__` makes; lists appended in batches of 1000; numpy's
/// `_reconstruct` + BUILD), for the tests. The layout was derived from cPickle's rules and checked
/// against the real `batches.meta` (158 bytes, reproduced byte for byte) and the sizes of the
/// official batch files.
#[cfg(test)]
pub(crate) mod py2 {
    /// A py2 cPickle protocol-2 stream under construction.
    pub struct Writer {
        pub out: Vec<u8>,
        memo: u32,
    }

    impl Writer {
        pub fn new() -> Self {
            Writer {
                out: vec![0x80, 2],
                memo: 0,
            }
        }

        fn memo(&mut self) {
            self.memo += 1;
            if self.memo < 256 {
                self.out.extend([b'q', self.memo as u8]);
            } else {
                self.out.push(b'r');
                self.out.extend(self.memo.to_le_bytes());
            }
        }

        fn raw_string(&mut self, s: &[u8]) {
            if s.len() < 256 {
                self.out.extend([b'U', s.len() as u8]);
            } else {
                self.out.push(b'T');
                self.out.extend((s.len() as u32).to_le_bytes());
            }
            self.out.extend(s);
        }

        /// A string held by the dict (memoized).
        pub fn string(&mut self, s: &[u8]) {
            self.raw_string(s);
            self.memo();
        }

        pub fn int(&mut self, v: u32) {
            match v {
                0..=0xff => self.out.extend([b'K', v as u8]),
                0x100..=0xffff => {
                    self.out.push(b'M');
                    self.out.extend((v as u16).to_le_bytes());
                }
                _ => {
                    self.out.push(b'J');
                    self.out.extend(v.to_le_bytes());
                }
            }
        }

        fn global(&mut self, module: &str, name: &str) {
            self.out.push(b'c');
            self.out.extend(format!("{module}\n{name}\n").bytes());
            self.memo();
        }

        fn list<T>(&mut self, values: &[T], mut item: impl FnMut(&mut Self, &T)) {
            self.out.push(b']');
            self.memo();
            for chunk in values.chunks(1000) {
                if let [one] = chunk {
                    item(self, one);
                    self.out.push(b'a');
                } else {
                    self.out.push(b'(');
                    for v in chunk {
                        item(self, v);
                    }
                    self.out.push(b'e');
                }
            }
        }

        pub fn int_list(&mut self, values: &[u32]) {
            self.list(values, |w, &v| w.int(v));
        }

        pub fn string_list(&mut self, values: &[Vec<u8>]) {
            self.list(values, |w, v| w.string(v));
        }

        /// `numpy.ndarray` of uint8, C order.
        pub fn u8_array(&mut self, shape: &[u32], data: &[u8]) {
            self.global("numpy.core.multiarray", "_reconstruct");
            self.global("numpy", "ndarray");
            self.out.extend([b'K', 0, 0x85]);
            self.raw_string(b"b");
            self.out.extend([0x87, b'R']);
            self.memo();
            self.out.extend([b'(', b'K', 1]);
            for &d in shape {
                self.int(d);
            }
            self.out.push(if shape.len() == 2 { 0x86 } else { 0x85 });
            self.global("numpy", "dtype");
            self.raw_string(b"u1");
            self.out.extend([b'K', 0, b'K', 1, 0x87, b'R']);
            self.memo();
            self.out.extend([b'(', b'K', 3]);
            self.raw_string(b"|");
            self.out
                .extend(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
            self.out.push(0x89);
            self.raw_string(data);
            self.out.extend(b"tb");
        }

        pub fn begin_dict(&mut self) {
            self.out.push(b'}');
            self.memo();
            self.out.push(b'(');
        }

        pub fn end_dict(mut self) -> Vec<u8> {
            self.out.extend(b"u.");
            self.out
        }
    }

    fn names(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("leptodactylus_pentadactylus_s_{i:06}.png").into_bytes())
            .collect()
    }

    /// A CIFAR-100 `train`/`test` file, keys in the official files' order.
    pub fn cifar100(fine: &[u32], coarse: &[u32], pixels: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        w.begin_dict();
        w.string(b"filenames");
        w.string_list(&names(fine.len()));
        w.string(b"batch_label");
        w.string(b"training batch 1 of 1");
        w.string(b"fine_labels");
        w.int_list(fine);
        w.string(b"coarse_labels");
        w.int_list(coarse);
        w.string(b"data");
        w.u8_array(&[fine.len() as u32, 3072], pixels);
        w.end_dict()
    }

    /// A CIFAR-10 `data_batch_*`/`test_batch` file, keys in the official files' order.
    pub fn cifar10(labels: &[u32], pixels: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        w.begin_dict();
        w.string(b"batch_label");
        w.string(b"training batch 1 of 5");
        w.string(b"labels");
        w.int_list(labels);
        w.string(b"data");
        w.u8_array(&[labels.len() as u32, 3072], pixels);
        w.string(b"filenames");
        w.string_list(&names(labels.len()));
        w.end_dict()
    }

    /// The real `cifar-10-batches-py/batches.meta` has these 158 bytes; the writer must give them.
    #[test]
    fn the_writer_reproduces_the_real_batches_meta() {
        let mut w = Writer::new();
        w.begin_dict();
        w.string(b"num_cases_per_batch");
        w.int(10000);
        w.string(b"label_names");
        let labels = [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ];
        w.string_list(&labels.map(|l| l.as_bytes().to_vec()));
        w.string(b"num_vis");
        w.int(3072);
        let bytes = w.end_dict();
        assert_eq!(bytes.len(), 158);
        let mut expected =
            b"\x80\x02}q\x01(U\x13num_cases_per_batchq\x02M\x10'U\x0blabel_namesq\x03]q\x04("
                .to_vec();
        for (i, l) in labels.iter().enumerate() {
            expected.extend([b'U', l.len() as u8]);
            expected.extend(l.as_bytes());
            expected.extend([b'q', 5 + i as u8]);
        }
        expected.extend(b"eU\x07num_visq\x0fM\x00\x0cu.");
        assert_eq!(bytes, expected);
    }
}
