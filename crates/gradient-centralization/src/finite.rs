//! Finding the parameter whose gradient holds NaN or infinite values.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{FloatDType, Tensor};

use crate::error::GcError;
use crate::plan::Stack;

/// Check that every gradient in `grads` is finite; the error names the first parameter (by its path
/// in `module`) that is not, and how many of its values are NaN or infinite.
///
/// Cheap enough for every step: one sum per gradient, read back from the device once for all of
/// them; only a gradient whose sum is not finite (a NaN or infinity in it, or finite values whose
/// sum overflows) is counted element by element. Call it before `optimizer.step`:
///
/// ```
/// use burn::module::Module;
/// use burn::nn::{Linear, LinearConfig};
/// use burn::optim::GradientsParams;
/// use burn::tensor::{Device, Tensor};
/// use gradient_centralization::{GcError, check_gradients};
///
/// let device = Device::flex().autodiff();
/// let model: Linear = LinearConfig::new(2, 1).init(&device);
/// let x = Tensor::<2>::from_floats([[f32::INFINITY, 1.0]], &device);
/// let grads = GradientsParams::from_grads(model.forward(x).sum().backward(), &model);
/// match check_gradients(&model, &grads) {
///     Err(GcError::NonFiniteGradient { path, count }) => assert_eq!((path.as_str(), count), ("weight", 1)),
///     other => panic!("{other:?}"),
/// }
/// ```
pub fn check_gradients<M: Module>(module: &M, grads: &GradientsParams) -> Result<(), GcError> {
    let mut sums = Sums {
        grads,
        stack: Stack::default(),
        found: Vec::new(),
    };
    module.visit(&mut sums);
    if sums.found.is_empty() {
        return Ok(());
    }
    let totals: Vec<f64> = Tensor::cat(
        sums.found
            .iter()
            .map(|found| found.sum.clone().cast(FloatDType::F32))
            .collect(),
        0,
    )
    .into_data()
    .convert::<f64>()
    .try_to_vec::<f64>()
    .expect("floats convert to f64");
    for (found, total) in sums.found.iter().zip(totals) {
        if total.is_finite() {
            continue;
        }
        let count = (found.count)();
        if count > 0 {
            return Err(GcError::NonFiniteGradient {
                path: found.path.clone(),
                count,
            });
        }
    }
    Ok(())
}

/// A gradient's sum, and how to count its non-finite values should the sum not be finite.
struct Found {
    path: String,
    sum: Tensor<1>,
    count: Box<dyn Fn() -> usize>,
}

struct Sums<'a> {
    grads: &'a GradientsParams,
    stack: Stack,
    found: Vec<Found>,
}

impl ModuleVisitor for Sums<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let sum = grad.clone().sum();
            self.found.push(Found {
                path: self.stack.path(),
                sum,
                count: Box::new(move || {
                    grad.clone()
                        .is_finite()
                        .bool_not()
                        .int()
                        .sum()
                        .into_scalar::<i64>() as usize
                }),
            });
        }
    }
}
