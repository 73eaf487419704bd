fn plain(x: i64) -> i64 {
    x
}

fn main() {
    let _ = plain(1);
    let _registry = cmod_runtime::Registry::builder()
        .function(cmod_runtime::function!(plain))
        .build();
}
