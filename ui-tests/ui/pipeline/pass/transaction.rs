use cmod_runtime::pipeline::TransactionType;
use cmod_runtime::{DatasetInput, DatasetOutput, pipeline};

/// `log` gets an APPEND transaction, `latest` an UPDATE one, `report` the default SNAPSHOT.
#[pipeline(
    input = "raw",
    output = "log",
    output = "latest",
    output = "report",
    transaction(log = "append", latest = "UPDATE")
)]
async fn incremental(
    _raw: DatasetInput,
    _log: DatasetOutput,
    _latest: DatasetOutput,
    _report: DatasetOutput,
) {
}

fn main() {
    assert_eq!(
        cmod_runtime::pipeline_def!(incremental).transactions,
        [
            ("log", TransactionType::Append),
            ("latest", TransactionType::Update)
        ]
    );
}
