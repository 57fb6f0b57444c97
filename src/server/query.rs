//! Query strings, read strictly.
//!
//! A parameter berth does not understand is an error, never ignored: a
//! client sending `?dryRun=All` to a server that ignored it would really
//! write. [`StrictQuery`] rejects unknown parameters with a 400 that names
//! the parameter and the ones the endpoint accepts; every query struct is
//! `deny_unknown_fields`, and endpoints without parameters take
//! [`StrictQuery<NoParams>`]. [`DryRun`] reads the dry-run flag as berth
//! (`true`) and Kubernetes clients (`All`) send it.

use aide::generate::GenContext;
use aide::openapi::Operation;
use aide::OperationInput;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::ApiError;

/// A query string whose every parameter the endpoint understands.
pub struct StrictQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match Query::<T>::try_from_uri(&parts.uri) {
            Ok(Query(value)) => Ok(StrictQuery(value)),
            Err(rejection) => Err(ApiError::bad_request(explain(&rejection.body_text()))),
        }
    }
}

impl<T: JsonSchema> OperationInput for StrictQuery<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        Query::<T>::operation_input(ctx, operation);
    }
}

/// serde's words for a bad query, in the API's: a parameter, not a field.
fn explain(text: &str) -> String {
    let text = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(text);
    // serde_path_to_error puts the parameter's name first: `name: message`.
    if let Some((_, rest)) = text.split_once("unknown field ") {
        if let Some(name) = rest.strip_suffix(", there are no fields") {
            return format!("unknown query parameter {name}: this endpoint takes no parameters");
        }
        let (name, accepted) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let accepted = accepted.strip_prefix("one of ").unwrap_or(accepted);
        return format!("unknown query parameter {name}; this endpoint accepts {accepted}");
    }
    match text.split_once(": ") {
        Some((name, why)) if !name.contains(' ') => format!("invalid query parameter `{name}`: {why}"),
        _ => format!("invalid query parameter: {text}"),
    }
}

/// The parameters of an endpoint that takes none.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// `dryRun`: `true` (berth) or `All` (Kubernetes) plans without writing;
/// `false` or empty writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(with = "DryRunValue")]
pub struct DryRun(pub bool);

/// The values [`DryRun`] accepts, for the OpenAPI document.
#[derive(JsonSchema)]
#[allow(dead_code)]
enum DryRunValue {
    #[serde(rename = "true")]
    True,
    #[serde(rename = "false")]
    False,
    All,
}

impl<'de> Deserialize<'de> for DryRun {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        match value.as_str() {
            "true" | "All" => Ok(DryRun(true)),
            "false" | "" => Ok(DryRun(false)),
            other => Err(serde::de::Error::custom(format!(
                "dryRun must be `true`, `false` or `All` (Kubernetes' name for a dry run), not `{other}`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_become_parameter_messages() {
        assert_eq!(
            explain("Failed to deserialize query string: unknown field `foo`, expected one of `dryRun`, `force`"),
            "unknown query parameter `foo`; this endpoint accepts `dryRun`, `force`"
        );
        assert_eq!(
            explain("Failed to deserialize query string: unknown field `foo`, there are no fields"),
            "unknown query parameter `foo`: this endpoint takes no parameters"
        );
        assert_eq!(
            explain("Failed to deserialize query string: bogus: unknown field `bogus`, expected `watch`"),
            "unknown query parameter `bogus`; this endpoint accepts `watch`"
        );
        assert_eq!(
            explain("Failed to deserialize query string: tail: invalid digit found in string"),
            "invalid query parameter `tail`: invalid digit found in string"
        );
    }
}
