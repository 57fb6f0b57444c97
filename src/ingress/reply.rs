//! The answer to a request, in the form it was asked in: the JSON the REST
//! API answers (the plan, the object, a `meta/v1 Status`), or for a
//! protobuf request a `berth.ingress.v1.Reply` carrying the same JSON and
//! the plan and error typed.

use prost::Message as _;
use serde_json::Value;

use crate::server::{ApiError, ApplyResponse, ErrorBody};

use super::proto;
use super::request::Format;

/// What a request produced.
pub(crate) enum Outcome {
    /// The plan of an apply or a plan.
    Applied(ApplyResponse),
    /// An object, or a status report.
    Value(Value),
}

/// A rendered reply: success, HTTP-equivalent code, media type, bytes.
pub(crate) struct Rendered {
    pub ok: bool,
    pub code: u16,
    pub content_type: &'static str,
    pub payload: Vec<u8>,
}

impl From<Rendered> for super::message::Answer {
    fn from(rendered: Rendered) -> Self {
        super::message::Answer {
            ok: rendered.ok,
            code: rendered.code,
            content_type: rendered.content_type.to_string(),
            payload: rendered.payload,
        }
    }
}

/// Renders `result` as `format` asks.
pub(crate) fn render(result: Result<Outcome, ApiError>, format: Format, request_id: &str) -> Rendered {
    let (ok, code, json, reply) = match result {
        Ok(Outcome::Applied(applied)) => {
            let json = serde_json::to_vec(&applied).unwrap_or_default();
            let reply = proto::Reply {
                items: applied.items.iter().map(plan_item).collect(),
                resource_version: applied.resource_version,
                dry_run: applied.dry_run,
                ..Default::default()
            };
            (true, 200, json, reply)
        }
        Ok(Outcome::Value(value)) => {
            (true, 200, serde_json::to_vec(&value).unwrap_or_default(), proto::Reply::default())
        }
        Err(error) => {
            let body = error.into_body(request_id.to_string());
            let reply = proto::Reply { error: Some(typed_error(&body)), ..Default::default() };
            (false, body.code, serde_json::to_vec(&body).unwrap_or_default(), reply)
        }
    };
    match format {
        Format::Text => Rendered { ok, code, content_type: "application/json", payload: json },
        Format::Protobuf => {
            let reply = proto::Reply { ok, code: u32::from(code), json, ..reply };
            Rendered { ok, code, content_type: "application/x-protobuf", payload: reply.encode_to_vec() }
        }
    }
}

fn plan_item(item: &crate::controller::plan::PlanItem) -> proto::PlanItem {
    let action = serde_json::to_value(item.action).ok().and_then(|v| v.as_str().map(str::to_string));
    proto::PlanItem {
        object: item.object.clone(),
        action: action.unwrap_or_default(),
        changed_fields: item.changed_fields.clone(),
        operations: item
            .operations
            .iter()
            .map(|o| proto::Operation { operation: o.operation.clone(), reason: o.reason.clone() })
            .collect(),
    }
}

fn typed_error(body: &ErrorBody) -> proto::Error {
    let text = |cause: &Value, key: &str| cause.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let number = |cause: &Value, key: &str| {
        cause.get(key).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).unwrap_or_default()
    };
    proto::Error {
        reason: body.reason.clone(),
        message: body.message.clone(),
        causes: body
            .details
            .causes
            .iter()
            .map(|cause| proto::Cause {
                reason: text(cause, "reason"),
                message: text(cause, "message"),
                field: text(cause, "field"),
                document: number(cause, "document"),
                line: number(cause, "line"),
                column: number(cause, "column"),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_keeps_its_positions_in_both_forms() {
        let error = || {
            ApiError::invalid("bad").detail(serde_json::json!({
                "reason": "FieldValueInvalid", "message": "must be 1..65535", "field": "spec.ports[0].hostPort",
                "document": 2, "line": 7, "column": 13,
            }))
        };
        let text = render(Err(error()), Format::Text, "r1");
        assert!(!text.ok);
        assert_eq!(text.code, 422);
        let body: ErrorBody = serde_json::from_slice(&text.payload).expect("a Status");
        assert_eq!(body.request_id, "r1");
        let binary = render(Err(error()), Format::Protobuf, "r1");
        let reply = proto::Reply::decode(binary.payload.as_slice()).expect("a Reply");
        assert_eq!(reply.code, 422);
        let error = reply.error.expect("typed error");
        assert_eq!(error.reason, "Invalid");
        assert_eq!((error.causes[0].document, error.causes[0].line, error.causes[0].column), (2, 7, 13));
        assert_eq!(error.causes[0].field, "spec.ports[0].hostPort");
    }
}
