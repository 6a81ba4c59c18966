//! ImageFolder trees the tests write: discovery, decoding, torchvision's crops and resizes.

use super::*;
use crate::test_dir;
use image::{ImageFormat, Rgb};

fn save(path: &Path, width: u32, height: u32, color: [u8; 3], format: ImageFormat) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbImage::from_pixel(width, height, Rgb(color))
        .save_with_format(path, format)
        .unwrap();
}

/// The normalization that writes a pixel's byte value as its float.
fn unit() -> Normalize {
    Normalize {
        mean: vec![0.0; 3],
        std: vec![1.0 / 255.0; 3],
    }
}

/// A `width`x4 PNG in `root` whose red channel is its column index.
fn columns(root: &Path, width: u32) -> PathBuf {
    let mut image = RgbImage::new(width, 4);
    for (x, _, p) in image.enumerate_pixels_mut() {
        *p = Rgb([x as u8, 0, 0]);
    }
    let path = root.join("g.png");
    image.save(&path).unwrap();
    path
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
    let unit = unit();
    let mut rng = Rng::new(&[5]);
    for augment in [
        Augment::RandomResizedCrop { size: 8 },
        Augment::ResizeRandomCrop {
            resize: 12,
            crop: 8,
        },
        Augment::ResizeFlipCenterCrop {
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
    let path = columns(&root, 6);
    let unit = unit();
    let mut out = vec![0.0; 3 * 16];
    let augment = Augment::ResizeCenterCrop { resize: 4, crop: 4 };
    write_file_image(&path, augment, &unit, &mut Rng::new(&[0]), &mut out).unwrap();
    assert_eq!(&out[..4], &[1.0, 2.0, 3.0, 4.0]);
    std::fs::remove_dir_all(root).unwrap();
}

/// torchvision's `CenterCrop` offset is `int(round((size - crop) / 2))` with Python's `round`:
/// round(1.5) = 2, round(2.5) = 2, round(3.5) = 4 (halves to even).
#[test]
fn centre_offsets_round_halves_to_even_as_python() {
    assert_eq!(centre_offset(6, 4), 1);
    assert_eq!(centre_offset(7, 4), 2);
    assert_eq!(centre_offset(9, 4), 2);
    assert_eq!(centre_offset(11, 4), 4);
}

/// The seed's fine-grained training flips the resized image, then takes its centre: with an odd
/// margin that is not the flipped centre crop. A 7x4 image whose red channel is its column index:
/// the centre crop starts at column round(3 / 2) = 2, so unflipped it holds columns 2..5 and
/// flipped the columns 4, 3, 2, 1 of the original (flipping the crop would give 5, 4, 3, 2).
#[test]
fn the_seeds_fine_grained_crop_flips_before_it_crops() {
    let root = test_dir("folder-flip-centre");
    let path = columns(&root, 7);
    let unit = unit();
    let augment = Augment::ResizeFlipCenterCrop { resize: 4, crop: 4 };
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..16 {
        let mut out = vec![0.0; 3 * 16];
        write_file_image(&path, augment, &unit, &mut Rng::new(&[seed]), &mut out).unwrap();
        seen.insert(out[..4].iter().map(|&v| v as u8).collect::<Vec<_>>());
    }
    let expected: std::collections::BTreeSet<Vec<u8>> =
        [vec![2, 3, 4, 5], vec![4, 3, 2, 1]].into_iter().collect();
    assert_eq!(seen, expected);
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
