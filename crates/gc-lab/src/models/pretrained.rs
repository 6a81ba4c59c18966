//! `--pretrained FILE`: a torchvision ResNet state dict (`.pth`, as `torch.save(model.state_dict())`
//! writes it) into the lab's ImageNet ResNets, through burn's own PyTorch reader (burn-store).
//!
//! Names: torchvision's `layer1` .. `layer4` are the lab's `stages.0` .. `stages.3`, a block's
//! `downsample.0` / `downsample.1` its `downsample.conv` / `downsample.bn`; the rest (`conv1`,
//! `bn1`, a block's `conv2`, ..., `fc`) match, and burn-store leaves the lab's enum variants
//! (`Block::Bottleneck`, `Norm::Batch`) out of the paths. A `module.` prefix (a checkpoint of
//! `DataParallel`, as the seed saves them) is dropped. Layouts: burn-store transposes `Linear`
//! weights and gives norms' `weight` / `bias` to `gamma` / `beta`; BatchNorm's running statistics
//! load as they are, its `num_batches_tracked` counters are not needed.
//!
//! A file that does not fit is refused, naming what is missing, what is left over and what has
//! another shape. The one exception is the classifier: fine-tuning on other classes keeps the
//! model's own freshly initialized `fc` (as the seed's `r50p` replaces torchvision's head), and
//! says so.

use std::path::Path;

use anyhow::{Result, bail};
use burn::store::{ModuleSnapshot, ModuleStore, PytorchStore};

use super::resnet::NormKind;
use super::{ModelName, Net};

/// What an import did, for the run's log.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// Tensors loaded into the model.
    pub loaded: usize,
    /// Why the model's `fc` kept its initialization, when it did.
    pub head_kept: Option<String>,
}

impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} tensors loaded", self.loaded)?;
        if let Some(why) = &self.head_kept {
            write!(
                f,
                "; fc.weight and fc.bias keep their initialization ({why})"
            )?;
        }
        Ok(())
    }
}

/// torchvision's names into the lab's: applied, in order, to every key of the file.
const RENAMES: [(&str, &str); 7] = [
    (r"^module\.", ""),
    (r"^layer1\.", "stages.0."),
    (r"^layer2\.", "stages.1."),
    (r"^layer3\.", "stages.2."),
    (r"^layer4\.", "stages.3."),
    (r"\.downsample\.0\.", ".downsample.conv."),
    (r"\.downsample\.1\.", ".downsample.bn."),
];

/// The most names of each kind a refusal lists.
const LISTED: usize = 12;

/// Whether `model` takes a torchvision file, and `file` is there: what a comparison checks before
/// it starts. torchvision's ResNets have BatchNorm, no Weight Standardization (its weights would
/// compute something else through standardized convolutions) and no conv biases.
pub fn check(model: ModelName, file: &Path) -> Result<()> {
    let torchvision = matches!(
        model,
        ModelName::ImageNet {
            norm: NormKind::Batch,
            ws: false,
            conv_bias: false,
            ..
        }
    );
    if !torchvision {
        bail!(
            "--pretrained loads a torchvision ResNet state dict into imagenet-r18/34/50/101 (the \
             lab's torchvision ResNets: BatchNorm, no Weight Standardization, no conv biases); \
             {model} does not take one"
        );
    }
    if !file.is_file() {
        bail!("--pretrained {}: no such file", file.display());
    }
    Ok(())
}

/// Loads `file` into `net`, built as `model` (which names it in messages) for `classes` classes
/// (see [`check`] for the models that take one).
pub fn load(
    mut net: Net,
    model: ModelName,
    classes: usize,
    file: &Path,
) -> Result<(Net, Imported)> {
    check(model, file)?;
    let mut reading = RENAMES
        .iter()
        .fold(PytorchStore::from_file(file), |store, (from, to)| {
            store.with_key_remapping(from, *to)
        })
        .map_indices_contiguous(false)
        .skip_enum_variants(true)
        .allow_partial(true)
        .validate(false);
    let tensors = reading.get_all_tensors().map_err(|err| {
        anyhow::anyhow!(
            "--pretrained {}: not a PyTorch state dict burn can read ({err}); save one with \
             torch.save(model.state_dict(), path)",
            file.display()
        )
    })?;
    // The file's classifier, PyTorch's [classes, features].
    let head = tensors.get("fc.weight").map(|t| t.shape.to_vec());
    let head_kept = match head.as_deref() {
        Some([out, _]) if *out != classes => Some(format!(
            "the file's head has {out} classes, the data {classes}"
        )),
        _ => None,
    };
    if head_kept.is_some() {
        // The predicate sees the module path of each parameter: its owner is `fc`.
        reading = reading.with_predicate(|path, _| path.rsplit('.').nth(1) != Some("fc"));
    }
    let result = net
        .load_from(&mut reading)
        .map_err(|err| anyhow::anyhow!("--pretrained {}: cannot load it: {err}", file.display()))?;
    let unused: Vec<&String> = result
        .unused
        .iter()
        .filter(|name| !name.ends_with("num_batches_tracked"))
        .collect();
    if !result.missing.is_empty() || !unused.is_empty() || !result.errors.is_empty() {
        let mut why = Vec::new();
        let list = |names: Vec<String>| {
            let more = names.len().saturating_sub(LISTED);
            let mut text = names
                .into_iter()
                .take(LISTED)
                .collect::<Vec<_>>()
                .join(", ");
            if more > 0 {
                text.push_str(&format!(" and {more} more"));
            }
            text
        };
        if !result.missing.is_empty() {
            let names = result
                .missing
                .iter()
                .map(|(path, _)| path.clone())
                .collect();
            why.push(format!("not in the file: {}", list(names)));
        }
        if !unused.is_empty() {
            let names = unused.into_iter().cloned().collect();
            why.push(format!("in the file, not in {model}: {}", list(names)));
        }
        if !result.errors.is_empty() {
            let names = result.errors.iter().map(ToString::to_string).collect();
            why.push(list(names));
        }
        bail!(
            "--pretrained {} does not fit {model} (names as the lab has them: torchvision's \
             layerN is stages.N-1, downsample.0/1 is downsample.conv/bn):\n  {}",
            file.display(),
            why.join("\n  ")
        );
    }
    let imported = Imported {
        loaded: result.applied.len(),
        head_kept,
    };
    Ok((net, imported))
}

#[cfg(test)]
mod tests;
