//! The initial weights a recipe asks for: burn's defaults (which are PyTorch's), or the seed's
//! ImageNet and Mini-ImageNet initializations drawn over them.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Distribution, Tensor};
use serde::{Deserialize, Serialize};

/// How a model's weights start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// burn's defaults, which are PyTorch's: convolution and linear weights and biases
    /// U(±1/√fan_in), norms γ = 1, β = 0 (the seed's CIFAR models, which set no initialization).
    #[default]
    Torch,
    /// Every convolution weight N(0, 2/(k·k·out)) (He, fan-out), as torchvision's ResNet and the
    /// seed's ImageNet ResNets (`GC_code/ImageNet/myresnet.py`, lines 116-122); norms γ = 1, β = 0;
    /// biases and linear layers as [`Init::Torch`].
    HeFanOut,
    /// [`Init::HeFanOut`] with every BatchNorm and GroupNorm γ drawn from U(0, 1), as the seed's
    /// Mini-ImageNet runs (`GC_code/Mini_ImageNet/main.py`, lines 161-167).
    HeFanOutUniformGamma,
}

impl Init {
    /// Draw this initialization over `module`'s weights (burn's defaults are left where it asks
    /// for them). Uses the device's generator: call it where the model is built, under the same
    /// seed.
    pub fn apply<M: Module>(self, module: M) -> M {
        match self {
            Init::Torch => module,
            Init::HeFanOut | Init::HeFanOutUniformGamma => module.map(&mut Draw {
                uniform_gamma: self == Init::HeFanOutUniformGamma,
                stack: Vec::new(),
            }),
        }
    }
}

/// Walks the module and redraws what the initialization names, by field and owning layer.
struct Draw {
    uniform_gamma: bool,
    /// The fields entered, each with the type of the struct that owns it.
    stack: Vec<(String, String)>,
}

impl ModuleMapper for Draw {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let distribution = match self.stack.last().map(|(f, o)| (f.as_str(), o.as_str())) {
            Some(("weight", "Struct:Conv2d")) => {
                let shape = param.val().dims();
                let n = shape[0] * shape[2..].iter().product::<usize>();
                Distribution::Normal(0.0, (2.0 / n as f64).sqrt())
            }
            Some(("gamma", "Struct:BatchNorm" | "Struct:GroupNorm")) if self.uniform_gamma => {
                Distribution::Uniform(0.0, 1.0)
            }
            _ => return param,
        };
        param.map(|tensor| {
            let require_grad = tensor.is_require_grad();
            Tensor::random(tensor.shape(), distribution, &tensor.device())
                .set_require_grad(require_grad)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ModelName, Net};
    use burn::tensor::Device;
    use gradient_centralization::GcPlan;

    /// Every parameter's values (BatchNorm's running statistics included), in the walk's order.
    fn values(net: &Net) -> Vec<(burn::module::ParamId, Vec<f32>)> {
        struct Collect(Vec<(burn::module::ParamId, Vec<f32>)>);
        impl burn::module::ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let data = param.val().into_data().convert::<f32>();
                self.0.push((param.id, data.try_to_vec().unwrap()));
            }
        }
        let mut collect = Collect(Vec::new());
        net.visit(&mut collect);
        collect.0
    }

    /// One trained parameter's shape and the mean and standard deviation of its values.
    struct Moments {
        path: String,
        shape: Vec<usize>,
        mean: f64,
        std: f64,
    }

    /// The moments of every trained parameter whose path ends in `suffix`.
    fn moments(net: &Net, suffix: &str) -> Vec<Moments> {
        let plan = GcPlan::new(net, gradient_centralization::Scope::None);
        let values: std::collections::HashMap<_, _> = values(net).into_iter().collect();
        plan.entries()
            .iter()
            .filter(|e| e.path.ends_with(suffix))
            .map(|e| {
                let v = &values[&e.id];
                let n = v.len() as f64;
                let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
                let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
                Moments {
                    path: e.path.clone(),
                    shape: e.shape.clone(),
                    mean,
                    std: var.sqrt(),
                }
            })
            .collect()
    }

    /// ResNet-50 from the seed's ImageNet code: every conv weight has standard deviation
    /// √(2/(k·k·out)) (to sampling error: the smallest conv, the 7x7 stem, holds 9,408 weights, so
    /// 5% is over 6 standard errors), γ = 1; with the Mini-ImageNet init γ lies in [0, 1) with
    /// mean 1/2. Linear layers and conv biases keep burn's U(±1/√fan_in).
    #[test]
    fn he_fan_out_and_uniform_gamma_draw_what_the_seed_draws() {
        let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
        let device = Device::flex();
        let name: ModelName = "r50bn".parse().unwrap();
        let he = Net::seeded(name, Init::HeFanOut, 3, 224, 1000, 1, &device);
        let convs = moments(&he, ".weight")
            .into_iter()
            .filter(|m| !m.path.contains("fc") && !m.path.contains("bn"))
            .collect::<Vec<_>>();
        assert_eq!(convs.len(), 53);
        for Moments {
            path,
            shape,
            mean,
            std,
        } in &convs
        {
            let fan_out = shape[0] * shape[2] * shape[3];
            let expected = (2.0 / fan_out as f64).sqrt();
            let n: usize = shape.iter().product();
            assert!(
                (std / expected - 1.0).abs() < 0.05,
                "{path}: std {std} vs {expected}"
            );
            assert!(
                mean.abs() < 5.0 * expected / (n as f64).sqrt(),
                "{path}: mean {mean}"
            );
        }
        for Moments {
            path, mean, std, ..
        } in moments(&he, ".gamma")
        {
            assert_eq!((mean, std), (1.0, 0.0), "{path}");
        }
        // The fc layer: U(±1/√2048) has standard deviation 1/√(3·2048).
        let fc = moments(&he, "fc.weight")[0].std;
        assert!(
            (fc * (3.0f64 * 2048.0).sqrt() - 1.0).abs() < 0.01,
            "fc std {fc}"
        );

        let uniform = Net::seeded(name, Init::HeFanOutUniformGamma, 3, 224, 1000, 1, &device);
        let gammas = moments(&uniform, ".gamma");
        assert_eq!(gammas.len(), 53);
        let all: Vec<f32> = gammas.iter().map(|m| m.mean as f32).collect();
        let mean = all.iter().sum::<f32>() / all.len() as f32;
        assert!((mean - 0.5).abs() < 0.05, "mean of the gamma means {mean}");
        for Moments { path, std, .. } in &gammas {
            assert!(
                *std > 0.2 && *std < 0.4,
                "{path}: std {std} (U(0,1): 0.289)"
            );
        }
    }

    /// Every value of every parameter, in the walk's order.
    fn weights(net: &Net) -> Vec<f32> {
        values(net).into_iter().flat_map(|(_, v)| v).collect()
    }

    /// The initial weights depend on the seed alone, GroupNorm's γ included (U(0, 1) on the seed's
    /// Mini-ImageNet, `main.py` line 165, which names GroupNorm with BatchNorm).
    #[test]
    fn the_same_seed_draws_the_same_weights() {
        let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
        let device = Device::flex();
        let name: ModelName = "imagenet-r18-gn".parse().unwrap();
        let net = |seed| Net::seeded(name, Init::HeFanOutUniformGamma, 3, 32, 10, seed, &device);
        let (a, b, c) = (net(5), net(5), net(6));
        assert_eq!(weights(&a), weights(&b));
        assert_ne!(weights(&a), weights(&c));
        let gammas = moments(&a, ".gamma");
        assert_eq!(gammas.len(), 20);
        for Moments {
            path, mean, std, ..
        } in gammas
        {
            assert!(
                mean > 0.2 && mean < 0.8 && std > 0.15,
                "{path}: {mean} {std}"
            );
        }
    }

    /// The redrawn weights are still trained: they keep their ids and their gradients.
    #[test]
    fn redrawn_weights_keep_their_gradients() {
        let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
        let device = Device::flex().autodiff();
        let net = Net::seeded(
            "imagenet-r18".parse().unwrap(),
            Init::HeFanOutUniformGamma,
            3,
            32,
            10,
            3,
            &device,
        );
        let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &device);
        let grads = net.forward(x).sum().backward();
        let grads = burn::optim::GradientsParams::from_grads(grads, &net);
        let plan = GcPlan::new(&net, gradient_centralization::Scope::None);
        for entry in plan.entries() {
            let found = match entry.shape.len() {
                1 => grads.get::<1>(entry.id).is_some(),
                2 => grads.get::<2>(entry.id).is_some(),
                _ => grads.get::<4>(entry.id).is_some(),
            };
            assert!(found, "{} has no gradient", entry.path);
        }
    }
}
