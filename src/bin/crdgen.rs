//! Prints the `Echo` CustomResourceDefinition as YAML; `crd/echo.yaml` is its committed output.

use std::process::ExitCode;

fn main() -> ExitCode {
    match echo_operator::crd::crd_yaml() {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("crdgen: cannot serialise the CRD: {err}");
            ExitCode::FAILURE
        }
    }
}
