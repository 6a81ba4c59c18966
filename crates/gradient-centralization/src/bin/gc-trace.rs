//! `gc-trace FILE|-`: replay a trace document (docs/TRACE-FORMAT.md) through the named optimizer
//! and print the parameters after every step as JSON.

use std::io::{Read, Write};
use std::process::ExitCode;

use burn::tensor::Device;
use gradient_centralization::trace::Trace;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source] = args.as_slice() else {
        eprintln!("usage: gc-trace FILE   (or `-` to read the document from standard input)");
        return ExitCode::from(2);
    };
    let text = if source == "-" {
        let mut text = String::new();
        if let Err(err) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("gc-trace: cannot read standard input: {err}");
            return ExitCode::FAILURE;
        }
        text
    } else {
        match std::fs::read_to_string(source) {
            Ok(text) => text,
            Err(err) => {
                eprintln!("gc-trace: cannot read {source}: {err}");
                return ExitCode::FAILURE;
            }
        }
    };
    let answer = Trace::parse(&text).and_then(|trace| trace.run(&device()));
    match answer {
        Ok(answer) => {
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{answer}").and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                // A reader that stopped early (`| head`) is not our failure.
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("gc-trace: cannot write the answer: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(err) => {
            eprintln!("gc-trace: {source}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// burn's CPU backend when this build has it, unless `BURN_DEVICE` names another; otherwise the
/// device burn picks (`BURN_DEVICE` or the first backend built in).
fn device() -> Device {
    #[cfg(feature = "flex")]
    if std::env::var_os("BURN_DEVICE").is_none() {
        return Device::flex();
    }
    Device::default()
}
