#![deny(warnings)]
//! Every handle kind, several inputs and outputs, keys in any order matching the parameters,
//! qualified paths and type aliases, a `()` return, a public pipeline in a module.

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub struct Reading {
    pub celsius: f64,
}

#[derive(Serialize)]
pub struct Alert {
    pub celsius: f64,
}

type Images = cmod_runtime::MediaSetInput;

pub mod jobs {
    use super::{Alert, Images, Reading};
    use cmod_runtime::pipeline;

    /// Reads everything, writes everything.
    #[pipeline(
        input = "readings",
        output = "alerts",
        input = "images",
        input = "lookup-table",
        output = "thumbnails",
        output = "report"
    )]
    pub async fn run_all(
        readings: cmod_runtime::StreamInput<Reading>,
        alerts: cmod_runtime::pipeline::StreamOutput<Alert>,
        _images: Images,
        _lookup: cmod_runtime::DatasetInput,
        _thumbnails: cmod_runtime::MediaSetOutput,
        report: cmod_runtime::DatasetOutput,
    ) {
        let mut cursor = readings.cursor();
        while let Ok(Some(batch)) = cursor.next_batch().await {
            let hot: Vec<Alert> = batch
                .into_iter()
                .filter(|r| r.value.celsius > 30.0)
                .map(|r| Alert { celsius: r.value.celsius })
                .collect();
            let _ = alerts.publish(&hot).await;
        }
        let _ = report.write("report.txt", "done").await;
    }
}

fn main() {
    let def = cmod_runtime::pipeline_def!(jobs::run_all);
    let inputs: Vec<_> = def.inputs.iter().map(|a| a.alias).collect();
    let outputs: Vec<_> = def.outputs.iter().map(|a| a.alias).collect();
    assert_eq!(inputs, ["readings", "images", "lookup-table"]);
    assert_eq!(outputs, ["alerts", "thumbnails", "report"]);
}
