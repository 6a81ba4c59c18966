//! Running a parsed trace: each parameter through the named optimizer, step by step, and the
//! answer as JSON.

use burn::optim::Optimizer;
use burn::tensor::{Device, Element, Tensor, TensorData};
use serde_json::{Map, Value};

use super::{Trace, TraceDtype, TraceParam, TraceRule};
use crate::error::GcError;
use crate::optim::{Gc, GcOptimizer};
use crate::plan::{ConvTransposeRule, LayerKind, decide};
use crate::presets::{Preset, WithOptimizer};

impl Trace {
    /// Run the trace on `device`: the parameters after each step, in PyTorch layout, as JSON.
    pub fn run(&self, device: &Device) -> Result<Value, GcError> {
        let preset = match self.rule {
            TraceRule::Layer => self.preset,
            TraceRule::RankRule => self.preset.rank_rule(),
        };
        let steps = self
            .preset
            .with_optimizer(
                &self.hyper,
                Replay {
                    trace: self,
                    preset,
                    device,
                },
            )
            .map_err(|err| {
                let at = match &err {
                    GcError::InvalidHyperparameter { name, .. }
                    | GcError::NotApplicable { name, .. } => format!("$.hyper.{name}"),
                    GcError::Nesterov { .. } => "$.hyper.nesterov".to_string(),
                    _ => "$.hyper".to_string(),
                };
                GcError::trace(at, err.to_string())
            })??;
        let mut answer = Map::new();
        answer.insert("optimizer".into(), Value::String(self.name.to_lowercase()));
        answer.insert("steps".into(), Value::Array(steps));
        Ok(Value::Object(answer))
    }
}

struct Replay<'a> {
    trace: &'a Trace,
    preset: Preset,
    device: &'a Device,
}

impl WithOptimizer for Replay<'_> {
    type Output = Result<Vec<Value>, GcError>;

    fn call<O: GcOptimizer>(self, optimizer: O) -> Self::Output {
        let trace = self.trace;
        let trajectories: Vec<Vec<Vec<f64>>> = trace
            .params
            .iter()
            .map(|param| {
                let burn_shape = to_burn_shape(param.kind, &param.shape);
                let gc = decide(
                    param.kind,
                    &burn_shape,
                    self.preset.scope,
                    ConvTransposeRule::OutputChannel,
                )
                .centralize()
                .map_or(Gc::NONE, |op| Gc::new(op, self.preset.placement));
                let optimizer = optimizer.with_gc(gc);
                match trace.dtype {
                    TraceDtype::F32 => replay::<O, f32>(&optimizer, param, &trace.lr, self.device),
                    TraceDtype::F64 => replay::<O, f64>(&optimizer, param, &trace.lr, self.device),
                }
            })
            .collect();
        // One object per step; JSON has no NaN or infinity, so a value that left the float range
        // is an error, found where it becomes a JSON number.
        let steps = trace.params.first().map_or(0, |param| param.grads.len());
        let mut answer = vec![Map::new(); steps];
        for (i, (param, trajectory)) in trace.params.iter().zip(&trajectories).enumerate() {
            for (step, values) in trajectory.iter().enumerate() {
                let numbers = values
                    .iter()
                    .enumerate()
                    .map(|(j, &x)| {
                        serde_json::Number::from_f64(x)
                            .map(Value::Number)
                            .ok_or_else(|| {
                                GcError::trace(
                                    format!("$.params[{i}]"),
                                    format!(
                                        "`{}` is not finite after step {} (element {j}: {x}); \
                                         JSON cannot carry it: lower the learning rate or use \
                                         \"dtype\": \"f64\"",
                                        param.name,
                                        step + 1
                                    ),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                answer[step].insert(param.name.clone(), Value::Array(numbers));
            }
        }
        Ok(answer.into_iter().map(Value::Object).collect())
    }
}

/// burn stores a Linear weight as `[d_input, d_output]`, the transpose of PyTorch's; every other kind
/// has the same layout in both.
fn to_burn_shape(kind: LayerKind, shape: &[usize]) -> Vec<usize> {
    match kind {
        LayerKind::Linear => vec![shape[1], shape[0]],
        _ => shape.to_vec(),
    }
}

/// The parameter's value after each step, in PyTorch layout.
fn replay<O: Optimizer, E: Element>(
    optimizer: &O,
    param: &TraceParam,
    lr: &[f64],
    device: &Device,
) -> Vec<Vec<f64>> {
    macro_rules! with_rank {
        ($($rank:literal),*) => {
            match param.shape.len() {
                $($rank => replay_rank::<O, E, $rank>(optimizer, param, lr, device),)*
                rank => unreachable!("rank {rank} was rejected when parsing"),
            }
        };
    }
    with_rank!(1, 2, 3, 4, 5, 6)
}

fn replay_rank<O: Optimizer, E: Element, const D: usize>(
    optimizer: &O,
    param: &TraceParam,
    lr: &[f64],
    device: &Device,
) -> Vec<Vec<f64>> {
    let linear = param.kind == LayerKind::Linear;
    let load = |values: &[f64]| -> Tensor<D> {
        let data: Vec<E> = values.iter().map(|&x| E::from_elem(x)).collect();
        let tensor = Tensor::<D>::from_data(
            TensorData::new(data, param.shape.clone()),
            (device, E::dtype()),
        );
        if linear { tensor.transpose() } else { tensor }
    };
    let mut tensor = load(&param.value);
    let mut state = None;
    let mut trajectory = Vec::with_capacity(param.grads.len());
    for (grad, &lr) in param.grads.iter().zip(lr) {
        let (next, next_state) = optimizer.step(lr, tensor, load(grad), state);
        tensor = next;
        state = next_state;
        let pytorch = if linear {
            tensor.clone().transpose()
        } else {
            tensor.clone()
        };
        let values: Vec<E> = pytorch
            .into_data()
            .convert::<E>()
            .try_to_vec()
            .expect("the tensor holds elements of its own type");
        trajectory.push(values.into_iter().map(|x| x.elem::<f64>()).collect());
    }
    trajectory
}
