//! Compile-time behaviour of the macros (trybuild): every supported form compiles, every misuse
//! fails with the committed message (`ui/**/*.stderr`). Bless with
//! `TRYBUILD=overwrite cargo test -p cmod-tests --test ui`, then read each `.stderr`.

#[test]
fn compute_function() {
    let t = trybuild::TestCases::new();
    t.pass("ui/compute_function/pass/*.rs");
    t.compile_fail("ui/compute_function/fail/*.rs");
}
