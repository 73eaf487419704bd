//! Compile-time checks of `#[pipeline]`: misuse fails with the snapshotted messages
//! (`ui/pipeline/fail/*.stderr`), correct uses compile. Bless changed snapshots with
//! `TRYBUILD=overwrite cargo test -p cmod-tests --test ui_pipeline`, then read every `.stderr`.

#[test]
fn pipeline_ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pipeline/pass/*.rs");
    t.compile_fail("ui/pipeline/fail/*.rs");
}
