//! Replay given gradients through a named optimizer (the format of `docs/TRACE-FORMAT.md`), so
//! anyone can compare our arithmetic with another implementation on the same numbers. This file
//! reads and checks a document (over 400 lines: every field's check with its JSON path, in the
//! document's order, is one concept); `replay.rs` runs it.

mod replay;

use serde_json::{Map, Value};

use crate::error::{GcError, check_lr};
use crate::hyperparameters::Hyperparameters;
use crate::plan::LayerKind;
use crate::presets::{Family, Preset};

/// Floating-point type a trace runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceDtype {
    /// 32-bit floats (default).
    F32,
    /// 64-bit floats.
    F64,
}

/// How a trace decides which parameters are centralized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceRule {
    /// By layer kind, as the library's default plan does.
    Layer,
    /// The seed's rank test on PyTorch-layout shapes.
    RankRule,
}

/// One parameter of a trace, in PyTorch layout.
#[derive(Debug, Clone)]
pub struct TraceParam {
    /// Its name; the output uses it as the key.
    pub name: String,
    /// Its layer kind.
    pub kind: LayerKind,
    /// Its shape in PyTorch layout.
    pub shape: Vec<usize>,
    /// Its initial value, flat, row-major.
    pub value: Vec<f64>,
    /// One flat gradient per step.
    pub grads: Vec<Vec<f64>>,
}

/// A parsed, validated trace document.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The optimizer's name as given.
    pub name: String,
    /// The preset it names.
    pub preset: Preset,
    /// The learning rate of each step (one per gradient step; a scalar `lr` in the document is
    /// repeated).
    pub lr: Vec<f64>,
    /// The other hyperparameters.
    pub hyper: Hyperparameters,
    /// The float type.
    pub dtype: TraceDtype,
    /// How GC is decided.
    pub rule: TraceRule,
    /// The parameters.
    pub params: Vec<TraceParam>,
}

fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

fn numbers(value: &Value, at: &str) -> Result<Vec<f64>, GcError> {
    let array = value
        .as_array()
        .ok_or_else(|| GcError::trace(at, "expected an array of numbers"))?;
    array
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_f64()
                .ok_or_else(|| GcError::trace(format!("{at}[{i}]"), "expected a number"))
        })
        .collect()
}

/// The values of a parameter's `kind` (docs/TRACE-FORMAT.md lists each).
pub const KINDS: [&str; 10] = [
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "embedding",
    "bias",
    "norm",
];

fn kind_of(name: &str, groups: Option<usize>, at: &str) -> Result<LayerKind, GcError> {
    let conv_transpose = |dims| LayerKind::ConvTranspose {
        dims,
        groups: Some(groups.unwrap_or(1)),
    };
    let kind = match name {
        "linear" => LayerKind::Linear,
        "conv1d" => LayerKind::Conv(1),
        "conv2d" => LayerKind::Conv(2),
        "conv3d" => LayerKind::Conv(3),
        "conv_transpose1d" => conv_transpose(1),
        "conv_transpose2d" => conv_transpose(2),
        "conv_transpose3d" => conv_transpose(3),
        "embedding" => LayerKind::Embedding,
        "bias" => LayerKind::Bias,
        "norm" => LayerKind::Norm,
        other => {
            return Err(GcError::trace(
                at,
                format!(
                    "unknown kind `{other}`; expected one of {}",
                    KINDS.join(", ")
                ),
            ));
        }
    };
    Ok(kind)
}

/// The rank a kind's weight must have in PyTorch layout, when it is fixed.
fn expected_rank(kind: LayerKind) -> Option<usize> {
    match kind {
        LayerKind::Linear | LayerKind::Embedding => Some(2),
        LayerKind::Conv(n) | LayerKind::ConvTranspose { dims: n, .. } => Some(n as usize + 2),
        LayerKind::Bias | LayerKind::Norm => Some(1),
        LayerKind::Other => None,
    }
}

impl Trace {
    /// Parse and validate a trace document.
    pub fn parse(text: &str) -> Result<Self, GcError> {
        let root: Value = serde_json::from_str(text)
            .map_err(|err| GcError::trace("$", format!("not valid JSON: {err}")))?;
        let root = root
            .as_object()
            .ok_or_else(|| GcError::trace("$", "expected a JSON object"))?;
        for key in root.keys() {
            if !["optimizer", "hyper", "dtype", "rule", "params"].contains(&key.as_str()) {
                return Err(GcError::trace(
                    format!("$.{key}"),
                    "unknown key; expected optimizer, hyper, dtype, rule, params",
                ));
            }
        }

        let name = field(root, "optimizer")
            .and_then(Value::as_str)
            .ok_or_else(|| GcError::trace("$.optimizer", "expected the optimizer's name"))?
            .to_string();
        let preset: Preset = name
            .parse()
            .map_err(|err: GcError| GcError::trace("$.optimizer", err.to_string()))?;

        let mut hyper_object = match field(root, "hyper") {
            None => Map::new(),
            Some(Value::Object(object)) => object.clone(),
            Some(_) => return Err(GcError::trace("$.hyper", "expected an object")),
        };
        for key in hyper_object.keys() {
            if !HYPER_KEYS.contains(&key.as_str()) {
                return Err(GcError::trace(
                    format!("$.hyper.{key}"),
                    format!("unknown key; expected one of {}", HYPER_KEYS.join(", ")),
                ));
            }
        }
        let lr = match hyper_object.remove("lr").filter(|lr| !lr.is_null()) {
            Some(Value::Array(lrs)) => LrInput::Steps(
                lrs.iter()
                    .enumerate()
                    .map(|(k, lr)| {
                        let at = format!("$.hyper.lr[{k}]");
                        let lr = lr
                            .as_f64()
                            .ok_or_else(|| GcError::trace(&at, "expected a number"))?;
                        check_lr(lr).map_err(|err| GcError::trace(&at, err.to_string()))?;
                        Ok(lr)
                    })
                    .collect::<Result<Vec<_>, GcError>>()?,
            ),
            Some(value) => LrInput::Every(value.as_f64().ok_or_else(|| {
                GcError::trace(
                    "$.hyper.lr",
                    "expected a number or an array of numbers, one per step",
                )
            })?),
            None => LrInput::Every(match preset.family {
                Family::Sgd | Family::Sgdw => {
                    return Err(GcError::trace(
                        "$.hyper.lr",
                        "SGD has no default learning rate; give `lr`",
                    ));
                }
                Family::Adagrad => 1e-2,
                _ => 1e-3,
            }),
        };
        if let LrInput::Every(lr) = lr {
            check_lr(lr).map_err(|err| GcError::trace("$.hyper.lr", err.to_string()))?;
        }
        let hyper: Hyperparameters = serde_json::from_value(Value::Object(hyper_object))
            .map_err(|err| GcError::trace("$.hyper", err.to_string()))?;

        let dtype = match field(root, "dtype").map(|v| v.as_str()) {
            None | Some(Some("f32")) => TraceDtype::F32,
            Some(Some("f64")) => TraceDtype::F64,
            _ => return Err(GcError::trace("$.dtype", "expected \"f32\" or \"f64\"")),
        };
        let rule = match field(root, "rule").map(|v| v.as_str()) {
            None | Some(Some("layer")) => TraceRule::Layer,
            Some(Some("rank_rule")) => TraceRule::RankRule,
            _ => {
                return Err(GcError::trace(
                    "$.rule",
                    "expected \"layer\" or \"rank_rule\"",
                ));
            }
        };

        let params = field(root, "params")
            .and_then(Value::as_array)
            .ok_or_else(|| GcError::trace("$.params", "expected an array of parameters"))?;
        let mut parsed: Vec<TraceParam> = Vec::with_capacity(params.len());
        for (i, param) in params.iter().enumerate() {
            let at = format!("$.params[{i}]");
            let param = parse_param(param, &at, dtype)?;
            if parsed.iter().any(|other| other.name == param.name) {
                return Err(GcError::trace(
                    format!("{at}.name"),
                    format!("duplicate name `{}`", param.name),
                ));
            }
            if let Some(first) = parsed.first()
                && first.grads.len() != param.grads.len()
            {
                return Err(GcError::trace(
                    format!("{at}.grads"),
                    format!(
                        "{} gradient steps, but `{}` has {}: every param needs the same number",
                        param.grads.len(),
                        first.name,
                        first.grads.len()
                    ),
                ));
            }
            parsed.push(param);
        }
        let steps = parsed.first().map_or(0, |param| param.grads.len());
        let lr = match lr {
            LrInput::Every(lr) => vec![lr; steps],
            LrInput::Steps(lrs) if lrs.len() == steps => lrs,
            LrInput::Steps(lrs) => {
                return Err(GcError::trace(
                    "$.hyper.lr",
                    format!(
                        "{} learning rates for {steps} gradient steps: give one per step, or one number",
                        lrs.len()
                    ),
                ));
            }
        };
        Ok(Trace {
            name,
            preset,
            lr,
            hyper,
            dtype,
            rule,
            params: parsed,
        })
    }
}

/// The learning rate as the document gives it, before the number of steps is known.
enum LrInput {
    Every(f64),
    Steps(Vec<f64>),
}

/// The keys `hyper` may hold (docs/TRACE-FORMAT.md lists each).
pub const HYPER_KEYS: [&str; 13] = [
    "lr",
    "momentum",
    "dampening",
    "nesterov",
    "weight_decay",
    "betas",
    "eps",
    "amsgrad",
    "lr_decay",
    "initial_accumulator_value",
    "k",
    "alpha",
    "seed_buffer_aliasing",
];

/// Numbers that `dtype` cannot hold (beyond f32's range in an f32 trace) are an error at their
/// JSON path, not an infinity.
fn representable(values: &[f64], dtype: TraceDtype, at: &str) -> Result<(), GcError> {
    if dtype == TraceDtype::F32
        && let Some(j) = values.iter().position(|x| x.abs() > f32::MAX as f64)
    {
        return Err(GcError::trace(
            format!("{at}[{j}]"),
            format!(
                "{} overflows f32 (largest {:e}); use \"dtype\": \"f64\"",
                values[j],
                f32::MAX
            ),
        ));
    }
    Ok(())
}

fn parse_param(param: &Value, at: &str, dtype: TraceDtype) -> Result<TraceParam, GcError> {
    let object = param
        .as_object()
        .ok_or_else(|| GcError::trace(at, "expected an object"))?;
    for key in object.keys() {
        if !["name", "kind", "shape", "value", "grads", "groups"].contains(&key.as_str()) {
            return Err(GcError::trace(
                format!("{at}.{key}"),
                "unknown key; expected name, kind, shape, value, grads, groups",
            ));
        }
    }
    let name = field(object, "name")
        .and_then(Value::as_str)
        .ok_or_else(|| GcError::trace(format!("{at}.name"), "expected a string"))?
        .to_string();
    let groups = match field(object, "groups") {
        None => None,
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|g| usize::try_from(g).ok())
                .filter(|&g| g >= 1)
                .ok_or_else(|| {
                    GcError::trace(format!("{at}.groups"), "expected an integer >= 1")
                })?,
        ),
    };
    let kind_name = field(object, "kind")
        .and_then(Value::as_str)
        .ok_or_else(|| GcError::trace(format!("{at}.kind"), "expected a string"))?;
    let kind = kind_of(kind_name, groups, &format!("{at}.kind"))?;
    if groups.is_some() && !matches!(kind, LayerKind::ConvTranspose { .. }) {
        return Err(GcError::trace(
            format!("{at}.groups"),
            format!(
                "a {kind_name} has no groups here: `groups` is for transposed convolutions (a \
                 grouped conv's weight already has its fan-in in its shape)"
            ),
        ));
    }
    let shape = field(object, "shape")
        .and_then(Value::as_array)
        .ok_or_else(|| GcError::trace(format!("{at}.shape"), "expected an array of sizes"))?
        .iter()
        .enumerate()
        .map(|(j, dim)| {
            dim.as_u64()
                .and_then(|d| usize::try_from(d).ok())
                .filter(|&d| d >= 1)
                .ok_or_else(|| {
                    GcError::trace(format!("{at}.shape[{j}]"), "expected an integer >= 1")
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if shape.is_empty() || shape.len() > 6 {
        return Err(GcError::trace(
            format!("{at}.shape"),
            "expected a rank between 1 and 6",
        ));
    }
    if let Some(rank) = expected_rank(kind)
        && rank != shape.len()
    {
        return Err(GcError::trace(
            format!("{at}.shape"),
            format!(
                "a {kind_name} weight has rank {rank}, this shape has rank {}",
                shape.len()
            ),
        ));
    }
    if let LayerKind::ConvTranspose {
        groups: Some(groups),
        ..
    } = kind
        && shape[0] % groups != 0
    {
        return Err(GcError::trace(
            format!("{at}.groups"),
            format!(
                "{groups} groups do not divide the {} input channels",
                shape[0]
            ),
        ));
    }
    let len = shape
        .iter()
        .try_fold(1usize, |len, &dim| len.checked_mul(dim))
        .filter(|&len| len <= MAX_ELEMENTS)
        .ok_or_else(|| {
            GcError::trace(
                format!("{at}.shape"),
                format!("{shape:?} holds more than {MAX_ELEMENTS} elements"),
            )
        })?;
    let value = numbers(
        field(object, "value").ok_or_else(|| GcError::trace(format!("{at}.value"), "missing"))?,
        &format!("{at}.value"),
    )?;
    if value.len() != len {
        return Err(GcError::trace(
            format!("{at}.value"),
            format!("{} numbers, but shape {shape:?} holds {len}", value.len()),
        ));
    }
    representable(&value, dtype, &format!("{at}.value"))?;
    let grads = field(object, "grads")
        .and_then(Value::as_array)
        .ok_or_else(|| GcError::trace(format!("{at}.grads"), "expected an array of steps"))?
        .iter()
        .enumerate()
        .map(|(step, grad)| {
            let at = format!("{at}.grads[{step}]");
            let grad = numbers(grad, &at)?;
            if grad.len() != len {
                return Err(GcError::trace(
                    at,
                    format!("{} numbers, but shape {shape:?} holds {len}", grad.len()),
                ));
            }
            representable(&grad, dtype, &at)?;
            Ok(grad)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TraceParam {
        name,
        kind,
        shape,
        value,
        grads,
    })
}

/// The most elements a trace parameter may hold (2^32 - 1): a JSON document with more numbers than
/// that is not a trace anyone writes by hand or by script.
const MAX_ELEMENTS: usize = u32::MAX as usize;
