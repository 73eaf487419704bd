//! URL redaction: the one rule for what of a URL `Debug` output, logs and errors may show.
//! Without query string, fragment, user name or password, any of which may hold a credential
//! (a source's secret query parameters, a token in a pre-signed URL).

/// `url` without query string, fragment, user name or password.
pub(crate) fn scrubbed(mut url: reqwest::Url) -> reqwest::Url {
    url.set_query(None);
    url.set_fragment(None);
    // Fails only for URLs that cannot have credentials anyway.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url
}

/// [`scrubbed`], as text.
pub(crate) fn shown(url: &reqwest::Url) -> String {
    scrubbed(url.clone()).to_string()
}

/// `url` as `Debug` output, logs and errors may show it ([`scrubbed`]). A value that is not a
/// URL is cut at its first `?` or `#` and after its last `@`.
pub(crate) fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url.trim()) {
        Ok(u) => shown(&u),
        Err(_) => {
            let cut = url.split(['?', '#']).next().unwrap_or_default();
            match cut.rsplit_once('@') {
                Some((before, after)) => match before.split_once("://") {
                    Some((scheme, _)) => format!("{scheme}://{after}"),
                    None => after.to_owned(),
                },
                None => cut.to_owned(),
            }
        }
    }
}

/// A reqwest error with its URL [`scrubbed`].
pub(crate) fn scrub_error(mut e: reqwest::Error) -> reqwest::Error {
    if let Some(url) = e.url_mut() {
        *url = scrubbed(url.clone());
    }
    e
}

/// `response` with its URL [`scrubbed`], so `Response::url` and `Response::error_for_status`
/// cannot reveal a credential in the query.
pub(crate) fn scrub_response(response: reqwest::Response) -> reqwest::Response {
    use reqwest::ResponseBuilderExt as _;
    let url = scrubbed(response.url().clone());
    let (mut parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    // reqwest keeps the URL in a response extension that only its builder extension can set.
    if let Ok(marker) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(marker.into_parts().0.extensions);
    }
    reqwest::Response::from(http::Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_url_drops_query_fragment_and_user_info() {
        assert_eq!(
            shown_url("https://user:pw@example.com/a?key=s#frag"),
            "https://example.com/a"
        );
        assert_eq!(shown_url("not a url?key=s"), "not a url");
        assert_eq!(shown_url("x://user:pw@host?x"), "x://host");
    }
}
