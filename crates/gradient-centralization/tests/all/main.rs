//! One integration-test binary (each binary links all of burn): modules by concept.

mod centralize;
mod errors;
mod layouts;
mod loading;
mod module_optimizer;
mod parity;
mod plan;
mod properties;
