//! Compile-time behaviour of the macros (trybuild), `#[compute_function]` and `#[pipeline]` in
//! one run (one build of the dependencies): every supported form compiles, every misuse fails
//! with the committed message (`ui/**/fail/*.stderr`). Bless with
//! `TRYBUILD=overwrite cargo test -p cmod-ui-tests --test ui`, then read each changed `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/compute_function/pass/*.rs");
    t.compile_fail("ui/compute_function/fail/*.rs");
    t.pass("ui/pipeline/pass/*.rs");
    t.compile_fail("ui/pipeline/fail/*.rs");
}
