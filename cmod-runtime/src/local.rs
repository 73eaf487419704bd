//! The embedded local runtime (`CMOD_LOCAL=1`).

pub(crate) async fn run_local(_flags: crate::run::Flags) -> crate::Result<()> {
    Err(crate::Error::Local(
        "the embedded local runtime is being wired up".into(),
    ))
}
