//! The seed's `--alg` names, translated per suite into the library's presets as the seed's
//! scripts define them (`GC_code/*/main.py`, and on CIFAR `algorithm-GC/cifar/main.py`). A name
//! means what its suite's script makes of it: GC_code's CIFAR-100 `adamWGCC2` is Adam_GCC2
//! (coupled L2), its ImageNet `sgdGC` is SGD_GCC; the translation is printed when used. The names
//! the two CIFAR scripts define differently are refused, with both meanings.

use crate::suites::Suite;

/// One of the seed's names: the preset it runs, and where the seed says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedArm {
    /// The seed's `--alg` value.
    pub alg: &'static str,
    /// The library's preset name.
    pub preset: &'static str,
    /// The seed's file and line.
    pub at: &'static str,
}

const fn arm(alg: &'static str, preset: &'static str, at: &'static str) -> SeedArm {
    SeedArm { alg, preset, at }
}

/// `GC_code/CIFAR100/main.py`: the lab's CIFAR suites follow it.
const CIFAR: &[SeedArm] = &[
    arm("sgd", "sgd", "GC_code/CIFAR100/main.py:112"),
    arm("sgdGC", "sgd_gc", "GC_code/CIFAR100/main.py:114"),
    arm("sgdGCC", "sgd_gcc", "GC_code/CIFAR100/main.py:116"),
    arm("adam", "adam", "GC_code/CIFAR100/main.py:119"),
    arm("adamGC2", "adam_gc2", "GC_code/CIFAR100/main.py:125"),
    arm("adamGCC2", "adam_gcc2", "GC_code/CIFAR100/main.py:127"),
    arm("adagrad", "adagrad", "GC_code/CIFAR100/main.py:131"),
    arm("adagradGC", "adagrad_gc", "GC_code/CIFAR100/main.py:133"),
    arm("adagradGCC", "adagrad_gcc", "GC_code/CIFAR100/main.py:135"),
    arm("sgdW", "sgdw", "GC_code/CIFAR100/main.py:143"),
    arm("sgdWGC", "sgdw_gc", "GC_code/CIFAR100/main.py:145"),
    arm("sgdWGCC", "sgdw_gcc", "GC_code/CIFAR100/main.py:147"),
    // Adam_GC*2 (coupled L2) under AdamW's names.
    arm("adamWGC2", "adam_gc2", "GC_code/CIFAR100/main.py:156"),
    arm("adamWGCC2", "adam_gcc2", "GC_code/CIFAR100/main.py:158"),
    // Only in algorithm-GC, whose default gc_loc=False puts GC on the update: our `_gc2`.
    arm("radam", "radam", "algorithm-GC/cifar/main.py:161"),
    arm("radamGC", "radam_gc2", "algorithm-GC/cifar/main.py:163"),
    arm("radamGCC", "radam_gcc2", "algorithm-GC/cifar/main.py:165"),
    arm("Lsgd", "lookahead_sgd", "algorithm-GC/cifar/main.py:171"),
    arm(
        "LsgdGC",
        "lookahead_sgd_gc",
        "algorithm-GC/cifar/main.py:174",
    ),
    arm(
        "LsgdGCC",
        "lookahead_sgd_gcc",
        "algorithm-GC/cifar/main.py:177",
    ),
    arm("Ladam", "lookahead_adam", "algorithm-GC/cifar/main.py:182"),
    arm(
        "LadamGC",
        "lookahead_adam_gc2",
        "algorithm-GC/cifar/main.py:185",
    ),
    arm(
        "LadamGCC",
        "lookahead_adam_gcc2",
        "algorithm-GC/cifar/main.py:188",
    ),
    arm(
        "Lradam",
        "lookahead_radam",
        "algorithm-GC/cifar/main.py:192",
    ),
    arm(
        "LradamGC",
        "lookahead_radam_gc2",
        "algorithm-GC/cifar/main.py:195",
    ),
    arm(
        "LradamGCC",
        "lookahead_radam_gcc2",
        "algorithm-GC/cifar/main.py:198",
    ),
    arm("ranger", "ranger", "algorithm-GC/cifar/main.py:204"),
    arm("rangerGC", "ranger_gc2", "algorithm-GC/cifar/main.py:206"),
    arm("rangerGCC", "ranger_gcc2", "algorithm-GC/cifar/main.py:208"),
];

const IMAGENET: &[SeedArm] = &[
    arm("sgd", "sgd", "GC_code/ImageNet/main.py:199"),
    // SGD_GCC: conv layers only.
    arm("sgdGC", "sgd_gcc", "GC_code/ImageNet/main.py:201"),
];

const MINI_IMAGENET: &[SeedArm] = &[
    arm("sgd", "sgd", "GC_code/Mini_ImageNet/main.py:200"),
    arm("sgdGC", "sgd_gc", "GC_code/Mini_ImageNet/main.py:202"),
];

const FINE_GRAINED: &[SeedArm] = &[
    arm(
        "sgd",
        "sgd",
        "GC_code/Fine-grained_classification/main.py:204",
    ),
    arm(
        "sgdGC",
        "sgd_gc",
        "GC_code/Fine-grained_classification/main.py:207",
    ),
];

/// The names GC_code's and algorithm-GC's CIFAR scripts define differently, with both meanings.
const CIFAR_AMBIGUOUS: &[(&str, &str)] = &[
    (
        "adamGC",
        "Adam_GC, GC on the gradient (`adam_gc`), in GC_code/CIFAR100/main.py:121, but Adam with \
         GC on the update (`adam_gc2`) in algorithm-GC/cifar/main.py:147",
    ),
    (
        "adamGCC",
        "Adam_GCC (`adam_gcc`) in GC_code/CIFAR100/main.py:123, but Adam with GC on the update of \
         conv layers (`adam_gcc2`) in algorithm-GC/cifar/main.py:149",
    ),
    (
        "adamW",
        "the seed's AdamW (`adamw`) in GC_code/CIFAR100/main.py:150, but another AdamW formula \
         (nearest: `adamw_torch`) in algorithm-GC/cifar/main.py:153",
    ),
    (
        "adamWGC",
        "Adam_GC with coupled L2 (`adam_gc`) in GC_code/CIFAR100/main.py:152, but a decoupled \
         AdamW with GC on the gradient (nearest: `adamw_gc`) in algorithm-GC/cifar/main.py:155",
    ),
    (
        "adamWGCC",
        "Adam_GCC with coupled L2 (`adam_gcc`) in GC_code/CIFAR100/main.py:154, but a decoupled \
         AdamW with GC on conv gradients (nearest: `adamw_gcc`) in algorithm-GC/cifar/main.py:157",
    ),
];

/// Why the seed's `alg` names no one optimizer in `suite`, when it does not.
pub fn ambiguity(suite: Suite, alg: &str) -> Option<&'static str> {
    let names: &[(&str, &str)] = match suite {
        Suite::Cifar100 | Suite::Cifar10 => CIFAR_AMBIGUOUS,
        _ => &[],
    };
    names
        .iter()
        .find(|(name, _)| *name == alg)
        .map(|(_, why)| *why)
}

/// The seed's names for `suite` (none for the lab's own suites).
pub fn seed_arms(suite: Suite) -> &'static [SeedArm] {
    match suite {
        Suite::Fashion | Suite::FashionFull => &[],
        Suite::Cifar100 | Suite::Cifar10 => CIFAR,
        Suite::MiniImagenet => MINI_IMAGENET,
        Suite::Imagenet => IMAGENET,
        Suite::FineGrained => FINE_GRAINED,
    }
}

/// The seed's `alg` (as its scripts spell it, case and all) in `suite`.
pub fn translate(suite: Suite, alg: &str) -> Option<SeedArm> {
    seed_arms(suite).iter().copied().find(|arm| arm.alg == alg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradient_centralization::Preset;

    /// Every translation names a preset, and the traps translate as the seed's code runs them.
    #[test]
    fn the_seeds_names_translate_as_its_scripts_define_them() {
        for suite in <Suite as clap::ValueEnum>::value_variants() {
            for arm in seed_arms(*suite) {
                assert!(arm.preset.parse::<Preset>().is_ok(), "{arm:?}");
            }
        }
        let preset = |suite, alg| translate(suite, alg).map(|arm| arm.preset);
        assert_eq!(preset(Suite::Cifar100, "adamWGCC2"), Some("adam_gcc2"));
        assert_eq!(
            preset(Suite::Cifar100, "LadamGC"),
            Some("lookahead_adam_gc2")
        );
        for alg in ["adamGC", "adamGCC", "adamW", "adamWGC", "adamWGCC"] {
            assert_eq!(preset(Suite::Cifar100, alg), None, "{alg}");
            let why = ambiguity(Suite::Cifar100, alg).unwrap();
            assert!(
                why.contains("GC_code") && why.contains("algorithm-GC"),
                "{why}"
            );
        }
        assert_eq!(ambiguity(Suite::Imagenet, "adamGC"), None);
        assert_eq!(preset(Suite::Cifar100, "rangerGC"), Some("ranger_gc2"));
        assert_eq!(preset(Suite::Imagenet, "sgdGC"), Some("sgd_gcc"));
        assert_eq!(preset(Suite::MiniImagenet, "sgdGC"), Some("sgd_gc"));
        // The seed's argparse is case-sensitive, and GC_code's adagradGC2 raises NameError.
        assert_eq!(preset(Suite::Cifar100, "SGDGC"), None);
        assert_eq!(preset(Suite::Cifar100, "adagradGC2"), None);
        assert_eq!(preset(Suite::Fashion, "sgdGC"), None);
    }
}
