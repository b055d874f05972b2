//! Every input under `tests/fixtures/fuzz-regressions/<target>/` replayed through the same
//! checks as the cargo-fuzz target of that name (`tests/fuzz_support/mod.rs`): crash
//! reproducers the fuzzer found, and inputs that once broke a property, so they stay fixed.

mod fuzz_support;

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz-regressions")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n != "README.md" && n != ".gitkeep")
        })
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes,
            )
        })
        .collect();
    out.sort();
    out
}

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let inputs = inputs(target);
    for (name, bytes) in &inputs {
        let outcome = std::panic::catch_unwind(|| check(bytes));
        assert!(outcome.is_ok(), "{target}/{name} fails again");
    }
    inputs.len()
}

#[test]
fn review_regressions() {
    replay("review", fuzz_support::review);
}

#[test]
fn decide_regressions() {
    assert!(replay("decide", fuzz_support::decide_json) > 0);
}

#[test]
fn selector_regressions() {
    replay("selector", fuzz_support::selector);
}

#[test]
fn parsers_regressions() {
    replay("parsers", fuzz_support::parsers);
}

#[test]
fn cost_regressions() {
    replay("cost", |data| {
        fuzz_support::cost(data);
    });
}
