//! What representation a read answers in, from its `Accept` header, as
//! kube-apiserver negotiates it: a Kubernetes `Table` when the client asks
//! for `application/json;as=Table;g=meta.k8s.io;v=v1` (kubectl get), a watch
//! as Server-Sent Events when it asks for `text/event-stream` (browsers,
//! berth's own CLI), else JSON. A client that accepts none of these gets
//! 406 naming what berth serves, never a body it cannot read.

use axum::http::{header, HeaderMap, StatusCode};

use super::error::ApiError;

/// The answer's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    /// The objects as JSON (a watch: the Kubernetes JSON event stream).
    Json,
    /// A `meta.k8s.io` Table of this version (`v1` or `v1beta1`).
    Table(&'static str),
    /// A watch as Server-Sent Events.
    EventStream,
}

/// The representation `headers` ask for.
pub fn representation(headers: &HeaderMap) -> Result<Representation, ApiError> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Representation::Json);
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_string()))
            .collect();
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        match media.as_str() {
            "application/json" | "application/*" | "*/*" => match (param("as"), param("g"), param("v")) {
                (None, _, _) => return Ok(Representation::Json),
                (Some("Table"), Some("meta.k8s.io"), Some("v1")) => return Ok(Representation::Table("v1")),
                (Some("Table"), Some("meta.k8s.io"), Some("v1beta1")) => return Ok(Representation::Table("v1beta1")),
                // Another `as=` (PartialObjectMetadata, aggregated
                // discovery): not served; a later range may be.
                _ => {}
            },
            "text/event-stream" => return Ok(Representation::EventStream),
            _ => {}
        }
    }
    Err(ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        format!(
            "none of the media types in `Accept: {}` is served here; berth answers application/json, \
             application/json;as=Table;g=meta.k8s.io;v=v1 and, for watches, text/event-stream",
            accept.chars().take(200).collect::<String>()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(accept: &str) -> Result<Representation, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, accept.parse().unwrap());
        representation(&headers)
    }

    #[test]
    fn kubectl_gets_tables_browsers_get_events_and_the_rest_json() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(of(kubectl).unwrap(), Representation::Table("v1"));
        assert_eq!(of("application/json;as=Table;v=v1beta1;g=meta.k8s.io").unwrap(), Representation::Table("v1beta1"));
        assert_eq!(of("text/event-stream").unwrap(), Representation::EventStream);
        assert_eq!(of("application/json, */*").unwrap(), Representation::Json);
        assert_eq!(representation(&HeaderMap::new()).unwrap(), Representation::Json);
        let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        assert_eq!(of(aggregated).unwrap(), Representation::Json);
        let refused = of("application/vnd.kubernetes.protobuf").unwrap_err();
        assert_eq!(refused.status, StatusCode::NOT_ACCEPTABLE);
        assert!(refused.message.contains("application/json"), "{}", refused.message);
    }
}
