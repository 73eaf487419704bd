//! Where the Foundry services are: the resolved base URL of each [`Service`].

use crate::discovery::Service;

/// The resolved base URLs of the Foundry services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FoundryUrls {
    pub(super) api_gateway: Option<String>,
    stream_proxy: Option<String>,
    pub(super) media: Option<String>,
    pub(super) multipass: Option<String>,
}

impl FoundryUrls {
    pub(super) fn get(&self, service: Service) -> Option<&str> {
        match service {
            Service::ApiGateway => self.api_gateway.as_deref(),
            Service::StreamProxy => self.stream_proxy.as_deref(),
            Service::Media => self.media.as_deref(),
            Service::Multipass => self.multipass.as_deref(),
            _ => None,
        }
    }

    /// The origins (`https://host:port`) of the configured services, de-duplicated.
    pub(super) fn origins(&self) -> Vec<String> {
        let mut origins: Vec<String> = URL_SERVICES
            .iter()
            .filter_map(|s| self.get(*s))
            .filter_map(|u| reqwest::Url::parse(u).ok())
            .map(|u| u.origin())
            .filter(|o| o.is_tuple())
            .map(|o| o.ascii_serialization())
            .collect();
        origins.sort();
        origins.dedup();
        origins
    }

    pub(super) fn slot(&mut self, service: Service) -> Option<&mut Option<String>> {
        match service {
            Service::ApiGateway => Some(&mut self.api_gateway),
            Service::StreamProxy => Some(&mut self.stream_proxy),
            Service::Media => Some(&mut self.media),
            Service::Multipass => Some(&mut self.multipass),
            _ => None,
        }
    }
}

pub(super) const URL_SERVICES: [Service; 4] = [
    Service::ApiGateway,
    Service::StreamProxy,
    Service::Media,
    Service::Multipass,
];

/// `https://host` from `host`, `host:port`, `https://host/` …
pub(super) fn normalize_base(value: &str) -> String {
    let v = value.trim().trim_end_matches('/');
    if v.starts_with("https://") || v.starts_with("http://") {
        v.to_owned()
    } else {
        format!("https://{v}")
    }
}
