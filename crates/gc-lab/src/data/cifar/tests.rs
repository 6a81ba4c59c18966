//! The CIFAR readers on small files the tests write: both versions, every error a user can meet.

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
