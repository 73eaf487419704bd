//! Failures described as readable text: the kind of a reqwest error plus its cause chain (where
//! the TLS or DNS reason is), never its URL (whose query could hold a credential).

use super::watchdog::SendError;

/// A reqwest error as its kind plus its causes, without the URL. A cause whose text an earlier
/// one already contains is left out.
pub(crate) fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let mut out = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() {
        "request or response body failed"
    } else if e.is_decode() {
        "response could not be decoded"
    } else {
        "request failed"
    }
    .to_owned();
    push_causes(&mut out, e);
    out
}

/// Appends the causes of `e` to `out`, each as `: cause`, leaving out a cause whose text `out`
/// already contains.
pub(crate) fn push_causes(out: &mut String, e: &dyn std::error::Error) {
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
}

/// A failed [`super::watchdog::send_tracked`], described without the URL.
pub(crate) fn describe_send_error(e: &SendError) -> String {
    match e {
        SendError::Transport(e) => describe_reqwest_error(e),
        SendError::Stalled(stall) => stall.to_string(),
    }
}
