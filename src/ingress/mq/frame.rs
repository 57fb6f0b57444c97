//! The frames of the POSIX message-queue transport: one header line,
//! then payload bytes.
//!
//! ```text
//! berth/1 <verb> [reply=/queue] [id=ID] [chunk=I/N] [type=MEDIA] [dryRun=true] [force=true] [source=NAME]\n<payload>
//! berth/1 reply code=200 type=application/json [id=ID] [chunk=I/N]\n<payload>
//! ```
//!
//! A request larger than the queue's message size is sent as N numbered
//! chunks sharing an `id` (the header of chunk 1 names the verb, reply
//! queue and options); a reply larger than the reply queue's message size
//! comes back the same way. [`Assembler`] joins chunks, within bounds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ingress::message::{ApplyOptions, Verb};

/// The first word of every frame.
pub(crate) const MAGIC: &str = "berth/1";

/// The longest header line.
pub(crate) const MAX_HEADER: usize = 1024;

/// The most chunks one request may have.
pub(crate) const MAX_CHUNKS: usize = 4096;

/// What a request frame's header says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestHeader {
    pub verb: Option<Verb>,
    pub reply: Option<String>,
    pub id: Option<String>,
    /// (index from 1, count).
    pub chunk: Option<(usize, usize)>,
    pub content_type: Option<String>,
    pub options: ApplyOptions,
}

/// Splits a frame into its header line and payload.
fn split(frame: &[u8]) -> Result<(&str, &[u8]), String> {
    let end = frame.iter().take(MAX_HEADER + 1).position(|b| *b == b'\n').ok_or_else(|| {
        format!("a message starts with a header line of at most {MAX_HEADER} bytes ending in a newline: `{MAGIC} <verb> [key=value ...]`")
    })?;
    let line = std::str::from_utf8(&frame[..end]).map_err(|_| "the header line is not UTF-8".to_string())?;
    Ok((line, &frame[end + 1..]))
}

fn flag(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("`{key}={other}`: give true or false")),
    }
}

/// A reply queue name: `/name`, one path level.
pub(crate) fn check_queue_name(name: &str) -> Result<(), String> {
    let valid = name.len() > 1 && name.len() <= 255 && name.starts_with('/') && !name[1..].contains('/');
    if valid {
        Ok(())
    } else {
        Err(format!("`{name}` is not a queue name; give /NAME (one level, at most 255 bytes)"))
    }
}

/// Parses a request frame: its header and payload. The verb may be
/// wrong (then `verb` is `None` and the error says why) only after the
/// reply queue is known, so the refusal can be answered.
pub(crate) fn parse_request(frame: &[u8]) -> (RequestHeader, Result<Vec<u8>, String>) {
    let mut header = RequestHeader::default();
    let (line, payload) = match split(frame) {
        Ok(parts) => parts,
        Err(error) => return (header, Err(error)),
    };
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    if words.next() != Some(MAGIC) {
        return (
            header,
            Err(format!("the header line starts with `{MAGIC}`, not `{}`", line.chars().take(40).collect::<String>())),
        );
    }
    let verb = words.next().unwrap_or_default().to_string();
    let mut problem = None;
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            problem.get_or_insert(format!("`{word}` is not key=value"));
            continue;
        };
        let result = match key {
            "reply" => check_queue_name(value).map(|()| header.reply = Some(value.to_string())),
            "id" if !value.is_empty() && value.len() <= 128 => {
                header.id = Some(value.to_string());
                Ok(())
            }
            "id" => Err("`id` is 1 to 128 bytes".to_string()),
            "chunk" => parse_chunk(value).map(|chunk| header.chunk = Some(chunk)),
            "type" => {
                header.content_type = Some(value.to_string());
                Ok(())
            }
            "dryRun" => flag(key, value).map(|v| header.options.dry_run = v),
            "force" => flag(key, value).map(|v| header.options.force = v),
            "source" => {
                header.options.source = Some(value.to_string());
                Ok(())
            }
            other => Err(format!(
                "`{other}` is not a header key berth reads; use reply, id, chunk, type, dryRun, force or source"
            )),
        };
        if let Err(error) = result {
            problem.get_or_insert(error);
        }
    }
    header.verb = Verb::parse(&verb);
    if header.verb.is_none() {
        problem.get_or_insert(format!("`{verb}` is not a verb; use apply, plan, delete, get or status"));
    }
    if header.chunk.is_some() && header.id.is_none() {
        problem.get_or_insert("a chunked request needs `id=` (the same in every chunk)".to_string());
    }
    match problem {
        Some(problem) => (header, Err(problem)),
        None => (header, Ok(payload.to_vec())),
    }
}

fn parse_chunk(value: &str) -> Result<(usize, usize), String> {
    let wrong = || format!("`chunk={value}`: give I/N, 1 <= I <= N <= {MAX_CHUNKS}");
    let (index, count) = value.split_once('/').ok_or_else(wrong)?;
    let (index, count): (usize, usize) = (index.parse().map_err(|_| wrong())?, count.parse().map_err(|_| wrong())?);
    if index == 0 || index > count || count > MAX_CHUNKS {
        return Err(wrong());
    }
    Ok((index, count))
}

/// The reply frames of `payload`, each at most `max` bytes.
pub(crate) fn reply_frames(
    code: u16,
    content_type: &str,
    id: Option<&str>,
    payload: &[u8],
    max: usize,
) -> Vec<Vec<u8>> {
    let header = |chunk: Option<(usize, usize)>| {
        let mut line = format!("{MAGIC} reply code={code} type={content_type}");
        if let Some(id) = id {
            line.push_str(&format!(" id={id}"));
        }
        if let Some((index, count)) = chunk {
            line.push_str(&format!(" chunk={index}/{count}"));
        }
        line.push('\n');
        line.into_bytes()
    };
    let single = header(None);
    if single.len() + payload.len() <= max {
        return vec![[single, payload.to_vec()].concat()];
    }
    // Room for the longest chunk header; at least one payload byte each.
    let room = max.saturating_sub(header(Some((MAX_CHUNKS * 1000, MAX_CHUNKS * 1000))).len()).max(1);
    let pieces: Vec<&[u8]> = payload.chunks(room).collect();
    let count = pieces.len();
    pieces.iter().enumerate().map(|(i, piece)| [header(Some((i + 1, count))), piece.to_vec()].concat()).collect()
}

/// Requests being assembled from chunks, by id.
pub(crate) struct Assembler {
    partial: HashMap<String, Partial>,
    /// Bytes held by every partial request together.
    held: usize,
    max_bytes: usize,
    max_partial: usize,
    timeout: Duration,
}

struct Partial {
    first: Option<RequestHeader>,
    pieces: Vec<Option<Vec<u8>>>,
    bytes: usize,
    started: Instant,
}

/// What a chunk completes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Assembled {
    /// More chunks to come.
    Waiting,
    /// The whole request: chunk 1's header and the joined payload.
    Complete(RequestHeader, Vec<u8>),
}

impl Assembler {
    /// At most `max_partial` requests in assembly, each at most
    /// `max_bytes` and all together at most twice that, each given up
    /// after `timeout`.
    pub fn new(max_bytes: usize, max_partial: usize, timeout: Duration) -> Assembler {
        Assembler { partial: HashMap::new(), held: 0, max_bytes, max_partial, timeout }
    }

    /// Adds one chunk (its header has `chunk` and `id`).
    pub fn add(&mut self, header: RequestHeader, payload: Vec<u8>, now: Instant) -> Result<Assembled, String> {
        let (Some((index, count)), Some(id)) = (header.chunk, header.id.clone()) else {
            return Ok(Assembled::Complete(header, payload));
        };
        if !self.partial.contains_key(&id) && self.partial.len() >= self.max_partial {
            return Err(format!(
                "{} chunked requests are being assembled already; send the chunks of one request before the next",
                self.max_partial
            ));
        }
        let partial = self.partial.entry(id.clone()).or_insert_with(|| Partial {
            first: None,
            pieces: vec![None; count],
            bytes: 0,
            started: now,
        });
        let problem = if partial.pieces.len() != count {
            Some(format!("request `{id}`: chunks disagree on their count; send every chunk with the same N"))
        } else if partial.pieces[index - 1].is_some() {
            return Err(format!("request `{id}`: chunk {index}/{count} came twice"));
        } else if partial.bytes + payload.len() > self.max_bytes {
            Some(format!("request `{id}`: over {} bytes in chunks; send a smaller request", self.max_bytes))
        } else if self.held + payload.len() > 2 * self.max_bytes {
            Some(format!(
                "request `{id}`: the requests in assembly hold {} bytes already; send one request's chunks at a time",
                self.held
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.drop_partial(&id);
            return Err(problem);
        }
        partial.bytes += payload.len();
        self.held += payload.len();
        partial.pieces[index - 1] = Some(payload);
        if index == 1 {
            partial.first = Some(header);
        }
        if partial.pieces.iter().any(Option::is_none) {
            return Ok(Assembled::Waiting);
        }
        let partial = self.drop_partial(&id).expect("present");
        let first = partial.first.expect("chunk 1 is among the pieces");
        Ok(Assembled::Complete(first, partial.pieces.into_iter().flatten().flatten().collect()))
    }

    fn drop_partial(&mut self, id: &str) -> Option<Partial> {
        let partial = self.partial.remove(id)?;
        self.held -= partial.bytes;
        Some(partial)
    }

    /// Drops requests whose chunks stopped coming; their headers (to answer).
    pub fn expire(&mut self, now: Instant) -> Vec<(String, Option<RequestHeader>)> {
        let expired: Vec<String> = self
            .partial
            .iter()
            .filter(|(_, p)| now.duration_since(p.started) > self.timeout)
            .map(|(id, _)| id.clone())
            .collect();
        expired
            .into_iter()
            .map(|id| {
                let first = self.drop_partial(&id).and_then(|p| p.first);
                (id, first)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(header: &str, payload: &str) -> Vec<u8> {
        format!("{header}\n{payload}").into_bytes()
    }

    #[test]
    fn a_request_header_names_verb_reply_id_chunk_type_and_options() {
        let (header, payload) = parse_request(&frame(
            "berth/1 apply reply=/r1 id=a chunk=1/2 type=application/json dryRun=true source=s",
            "x: 1",
        ));
        assert_eq!(payload.unwrap(), b"x: 1");
        assert_eq!(header.verb, Some(Verb::Apply));
        assert_eq!(header.reply.as_deref(), Some("/r1"));
        assert_eq!(header.chunk, Some((1, 2)));
        assert_eq!(header.options, ApplyOptions { dry_run: true, force: false, source: Some("s".into()) });
    }

    #[test]
    fn bad_headers_say_what_is_wrong_and_keep_the_reply_queue() {
        let cases = [
            ("berth/1 launch reply=/r", "not a verb"),
            ("berth/1 apply reply=/r prune=true", "not a header key"),
            ("berth/1 apply reply=/r chunk=3/2 id=a", "chunk=3/2"),
            ("berth/1 apply reply=/r chunk=1/2", "needs `id=`"),
            ("berth/1 apply reply=/r force=yes", "true or false"),
            ("berth/2 apply reply=/r", "starts with `berth/1`"),
        ];
        for (line, expected) in cases {
            let (header, result) = parse_request(&frame(line, ""));
            let error = result.expect_err(line);
            assert!(error.contains(expected), "{line}: {error}");
            if line.starts_with("berth/1") {
                assert_eq!(header.reply.as_deref(), Some("/r"), "{line}");
            }
        }
        assert!(parse_request(b"no newline at all").1.unwrap_err().contains("header line"));
        assert!(parse_request(&frame("berth/1 apply reply=a/b", "")).1.unwrap_err().contains("not a queue name"));
    }

    #[test]
    fn replies_split_into_numbered_chunks_that_fit() {
        let payload = vec![b'x'; 1000];
        let frames = reply_frames(200, "application/json", Some("a"), &payload, 256);
        assert!(frames.len() > 1 && frames.iter().all(|f| f.len() <= 256));
        let mut joined = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let (line, body) = split(frame).unwrap();
            assert!(line.ends_with(&format!("chunk={}/{}", i + 1, frames.len())), "{line}");
            joined.extend_from_slice(body);
        }
        assert_eq!(joined, payload);
        assert_eq!(reply_frames(200, "application/json", None, b"{}", 256).len(), 1);
    }

    #[test]
    fn chunks_assemble_in_any_order_within_bounds() {
        let now = Instant::now();
        let mut assembler = Assembler::new(100, 2, Duration::from_secs(30));
        let chunk = |i: usize, n: usize, id: &str| RequestHeader {
            verb: (i == 1).then_some(Verb::Apply),
            id: Some(id.into()),
            chunk: Some((i, n)),
            ..RequestHeader::default()
        };
        assert_eq!(assembler.add(chunk(2, 2, "a"), b"world".to_vec(), now).unwrap(), Assembled::Waiting);
        match assembler.add(chunk(1, 2, "a"), b"hello ".to_vec(), now).unwrap() {
            Assembled::Complete(header, payload) => {
                assert_eq!(header.verb, Some(Verb::Apply));
                assert_eq!(payload, b"hello world");
            }
            other => panic!("{other:?}"),
        }
        assert!(assembler.add(chunk(1, 2, "big"), vec![0; 101], now).unwrap_err().contains("over 100 bytes"));
        assembler.add(chunk(1, 2, "b"), vec![], now).unwrap();
        assembler.add(chunk(1, 2, "c"), vec![], now).unwrap();
        assert!(assembler.add(chunk(1, 2, "d"), vec![], now).unwrap_err().contains("being assembled"));
        let expired = assembler.expire(now + Duration::from_secs(31));
        assert_eq!(assembler.held, 0);

        // Together, requests in assembly hold at most twice one's limit.
        let mut assembler = Assembler::new(100, 4, Duration::from_secs(30));
        assembler.add(chunk(1, 2, "x"), vec![0; 90], now).unwrap();
        assembler.add(chunk(1, 2, "y"), vec![0; 90], now).unwrap();
        assert!(assembler.add(chunk(1, 2, "z"), vec![0; 30], now).unwrap_err().contains("hold 180 bytes"));
        assert_eq!(assembler.held, 180);
        assert_eq!(expired.len(), 2);
        assert!(assembler.add(chunk(1, 2, "d"), vec![], now).is_ok());
    }
}
