//! The topics of one berth on a broker, all under `berth/<node>/`:
//! commands on `cmd/<verb>[/<id>]`, replies (for clients without an
//! MQTT 5 response topic) on `reply[/<id>]`, retained object status on
//! `status/<namespace>/<kind>/<name>`, and the retained `online` flag.

use crate::api::ObjectKey;
use crate::ingress::message::Verb;

/// The topic layout under `berth/<node>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Topics {
    root: String,
}

/// What a command topic names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Command {
    pub verb: Verb,
    pub id: Option<String>,
}

/// Checks that `node` can be one topic level.
pub(crate) fn check_node(node: &str) -> Result<(), String> {
    if node.is_empty() || node.contains(['/', '+', '#', '\0']) || node.len() > 128 {
        return Err(format!(
            "--node `{node}`: a node name is one MQTT topic level: 1 to 128 characters without `/`, `+`, `#`"
        ));
    }
    Ok(())
}

impl Topics {
    /// The topics of `node` (checked with [`check_node`]).
    pub fn new(node: &str) -> Topics {
        Topics { root: format!("berth/{node}") }
    }

    /// The filter berth subscribes to.
    pub fn commands(&self) -> String {
        format!("{}/cmd/#", self.root)
    }

    /// The retained online/offline flag.
    pub fn online(&self) -> String {
        format!("{}/online", self.root)
    }

    /// Where a command without a response topic is answered.
    pub fn reply(&self, id: Option<&str>) -> String {
        match id {
            Some(id) => format!("{}/reply/{id}", self.root),
            None => format!("{}/reply", self.root),
        }
    }

    /// The retained status of one object.
    pub fn status(&self, key: &ObjectKey) -> String {
        format!("{}/status/{}/{}/{}", self.root, key.namespace, key.kind.as_str().to_ascii_lowercase(), key.name)
    }

    /// The filter of every retained status, to clear what is gone.
    pub fn statuses(&self) -> String {
        format!("{}/status/#", self.root)
    }

    /// The id a command topic ends in (`cmd/<verb>/<id>`), even when its
    /// verb is wrong: the refusal is answered where the sender listens.
    pub fn reply_id(&self, topic: &str) -> Option<String> {
        let rest = topic.strip_prefix(&format!("{}/cmd/", self.root))?;
        match rest.split('/').collect::<Vec<_>>()[..] {
            [_, id] if !id.is_empty() => Some(id.to_string()),
            _ => None,
        }
    }

    /// The command `topic` names, or why it names none.
    pub fn command(&self, topic: &str) -> Result<Command, String> {
        let prefix = format!("{}/cmd/", self.root);
        let rest = topic.strip_prefix(&prefix).ok_or_else(|| format!("`{topic}` is not under {prefix}"))?;
        let mut levels = rest.split('/');
        let verb_text = levels.next().unwrap_or_default();
        let verb = Verb::parse(verb_text).ok_or_else(|| {
            format!("`{topic}`: `{verb_text}` is not a verb; publish to {prefix}<apply|plan|delete|get|status>[/<id>]")
        })?;
        let id = levels.next().map(str::to_string);
        if levels.next().is_some() || id.as_deref() == Some("") {
            return Err(format!("`{topic}`: a command topic is {prefix}<verb> or {prefix}<verb>/<id>"));
        }
        Ok(Command { verb, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Kind;

    #[test]
    fn command_topics_name_a_verb_and_an_optional_id() {
        let topics = Topics::new("box");
        assert_eq!(topics.commands(), "berth/box/cmd/#");
        assert_eq!(topics.command("berth/box/cmd/apply").unwrap(), Command { verb: Verb::Apply, id: None });
        assert_eq!(
            topics.command("berth/box/cmd/delete/42").unwrap(),
            Command { verb: Verb::Delete, id: Some("42".into()) }
        );
        for bad in ["berth/box/cmd/launch", "berth/box/cmd/apply/1/2", "berth/box/cmd/apply/", "berth/other/cmd/apply"]
        {
            assert!(topics.command(bad).is_err(), "{bad}");
        }
        assert!(topics.command("berth/box/cmd/launch").unwrap_err().contains("not a verb"));
        assert_eq!(topics.reply_id("berth/box/cmd/launch/9").as_deref(), Some("9"));
        assert_eq!(topics.reply_id("berth/box/cmd/apply"), None);
    }

    #[test]
    fn replies_status_and_online_have_fixed_places() {
        let topics = Topics::new("box");
        assert_eq!(topics.reply(Some("7")), "berth/box/reply/7");
        assert_eq!(topics.reply(None), "berth/box/reply");
        assert_eq!(topics.online(), "berth/box/online");
        let key = ObjectKey::new(Kind::Container, "default", "web");
        assert_eq!(topics.status(&key), "berth/box/status/default/container/web");
    }

    #[test]
    fn a_node_is_one_topic_level() {
        assert!(check_node("box-1").is_ok());
        for bad in ["", "a/b", "a+", "#", &"x".repeat(129)] {
            assert!(check_node(bad).is_err(), "{bad}");
        }
    }
}
