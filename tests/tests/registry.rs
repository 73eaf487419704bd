//! Registration: automatic (every linked `#[compute_function]`) and explicit (the builder), and
//! the startup error for two functions with one wire name.

use cmod_runtime::RegistryError;
use cmod_runtime::{Registry, compute_function, function};

mod billing {
    use super::*;

    /// Totals an invoice.
    #[compute_function(name = "total")]
    pub(crate) fn total(amounts: Vec<i64>) -> i64 {
        amounts.iter().sum()
    }
}

mod shipping {
    use super::*;

    /// Totals a shipment (same wire name as `billing::total`: a mistake).
    #[compute_function(name = "total")]
    pub(crate) fn total(weights: Vec<f64>) -> f64 {
        weights.iter().sum()
    }
}

/// A function with a unique name.
#[compute_function]
fn ping() -> String {
    "pong".to_owned()
}

#[test]
fn two_functions_with_one_wire_name_fail_startup_naming_both() {
    let err = Registry::from_linked().unwrap_err();
    let RegistryError::DuplicateName {
        name,
        first,
        second,
    } = &err
    else {
        panic!("expected DuplicateName, got {err}");
    };
    assert_eq!(name, "total");
    let both = format!("{first} {second}");
    assert!(
        both.contains("billing::total") && both.contains("shipping::total"),
        "{both}"
    );
    assert!(
        both.contains("tests/registry.rs:"),
        "locations name the file: {both}"
    );
    let message = err.to_string();
    assert!(
        message.contains("`total`") && message.contains("name = "),
        "{message}"
    );
}

#[test]
fn explicit_registration_picks_functions_and_counts_each_once() {
    let registry = Registry::builder()
        .function(function!(ping))
        .function(function!(billing::total))
        .function(function!(ping))
        .build()
        .unwrap();
    assert_eq!(registry.len(), 2);
    assert_eq!(registry.get("total").unwrap().rust_name, "total");
    assert!(registry.get("ping").is_some());
    let names: Vec<&str> = registry.functions().iter().map(|d| d.name).collect();
    assert_eq!(names, ["ping", "total"], "sorted by wire name");
}

#[test]
fn explicit_registration_also_rejects_duplicate_names() {
    let err = Registry::builder()
        .function(function!(billing::total))
        .function(function!(shipping::total))
        .build()
        .unwrap_err();
    assert!(matches!(err, RegistryError::DuplicateName { .. }), "{err}");
}

#[test]
fn annotated_functions_stay_plain_functions() {
    assert_eq!(billing::total(vec![1, 2, 3]), 6);
    assert_eq!(ping(), "pong");
}
