//! The `weir` command line, run in-process.

use clap::Parser as _;
use weir_host::cli::Cli;
use weir_tests::bundle_tools::sign_policy;
use weir_tests::policy_dir;

fn run(args: &[&str]) -> anyhow::Result<()> {
    Cli::try_parse_from(std::iter::once("weir").chain(args.iter().copied()))?.run()
}

#[test]
fn eval_runs_a_chain_over_ndjson() {
    let dir = std::env::temp_dir().join(format!("weir-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("readings.ndjson");
    std::fs::write(
        &input,
        "{\"temp_f\": 212}\n{\"t℃\": 21.5, \"extra\": true}\n",
    )
    .unwrap();
    let (bundle, public) = sign_policy(&dir, "sensor-normalize");
    run(&[
        "eval",
        "--policy",
        bundle.to_str().unwrap(),
        "--trust",
        public.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ])
    .unwrap();
    // Unsigned, or signed by a key not trusted: refused with the code.
    let wasm = policy_dir().join("sensor-normalize.wasm");
    let err = run(&[
        "eval",
        "--policy",
        wasm.to_str().unwrap(),
        "--trust",
        public.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(format!("{err:#}").contains("malformed"), "{err:#}");
    let other = dir.join("other");
    let (_, stranger) = weir_tests::bundle_tools::keygen(&other, "stranger");
    let err = run(&[
        "eval",
        "--policy",
        bundle.to_str().unwrap(),
        "--trust",
        stranger.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(format!("{err:#}").contains("untrusted_key"), "{err:#}");
    run(&["inspect", wasm.to_str().unwrap()]).unwrap();
    run(&["inspect", bundle.to_str().unwrap()]).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_errors_name_the_input_and_the_cause() {
    let missing = "/nonexistent/readings.ndjson";
    let dir = std::env::temp_dir().join(format!("weir-cli-err-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (bundle, public) = sign_policy(&dir, "sensor-normalize");
    let err = run(&[
        "eval",
        "--policy",
        bundle.to_str().unwrap(),
        "--trust",
        public.to_str().unwrap(),
        "--input",
        missing,
    ])
    .unwrap_err();
    assert!(format!("{err:#}").contains(missing), "{err:#}");
    let err = run(&["inspect", "/nonexistent/p.wasm"]).unwrap_err();
    assert!(
        format!("{err:#}").contains("/nonexistent/p.wasm"),
        "{err:#}"
    );
    let err = run(&[
        "eval",
        "--policy",
        bundle.to_str().unwrap(),
        "--trust",
        public.to_str().unwrap(),
        "--params",
        "{\"x\": 1}",
    ])
    .unwrap_err();
    assert!(format!("{err:#}").contains("--input"), "{err:#}");
    std::fs::remove_dir_all(&dir).unwrap();
}
