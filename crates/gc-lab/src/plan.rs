//! `gclab plan`: which parameters of a lab model GC centralizes, along which axis, and why not.

use anyhow::{Result, bail};
use burn::tensor::Device;
use gradient_centralization::{GcPlan, Scope};

use crate::models::{ModelName, Net};

/// The scope a `--scope` name selects: `gc` (conv and linear), `gcc` (conv only), `none`,
/// `rank-gc` or `rank-gcc` (the seed's rank rule), `burn-rank-gc` or `burn-rank-gcc` (a rank rule
/// on burn's layouts, as rank-based ports apply it).
pub fn scope(name: &str) -> Result<Scope> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "gc" => Scope::ConvLinear,
        "gcc" => Scope::ConvOnly,
        "none" => Scope::None,
        "rank-gc" => Scope::RANK_RULE_GC,
        "rank-gcc" => Scope::RANK_RULE_GCC,
        "burn-rank-gc" => Scope::BURN_RANK_GC,
        "burn-rank-gcc" => Scope::BURN_RANK_GCC,
        "seed-gc" | "seed-gcc" => bail!(
            "the scope `{name}` is called `{}` now (the reference code's rank rule)",
            name.to_ascii_lowercase().replace("seed", "rank")
        ),
        other => bail!(
            "unknown scope `{other}`; expected gc, gcc, none, rank-gc, rank-gcc, burn-rank-gc or burn-rank-gcc"
        ),
    })
}

/// The plan of `model` (built for `channels` input channels and `classes` classes) under `scope`,
/// as the table `gclab plan` prints, headed by the model.
pub fn describe(model: ModelName, scope: Scope, channels: usize, classes: usize) -> String {
    let net = Net::new(
        model,
        channels,
        model.default_size(),
        classes,
        &Device::flex(),
    );
    let plan = GcPlan::new(&net, scope);
    format!("{model} ({channels} input channels, {classes} classes)\n{plan}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_by_name_and_unknown_ones_named() {
        assert_eq!(scope("GC").unwrap(), Scope::ConvLinear);
        assert_eq!(scope("rank-gcc").unwrap(), Scope::RANK_RULE_GCC);
        assert_eq!(scope("burn-rank-gc").unwrap(), Scope::BURN_RANK_GC);
        let err = scope("conv").unwrap_err().to_string();
        assert!(err.contains("unknown scope `conv`"), "{err}");
        let err = scope("seed-gc").unwrap_err().to_string();
        assert!(err.contains("is called `rank-gc` now"), "{err}");
    }

    #[test]
    fn the_small_cnn_plan_names_its_layers() {
        let text = describe(ModelName::SMALL_CNN, Scope::ConvLinear, 1, 10);
        assert!(
            text.starts_with("small-cnn (1 input channels, 10 classes)"),
            "{text}"
        );
        assert!(text.contains("conv1.weight"), "{text}");
    }
}
