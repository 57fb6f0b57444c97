//! Engines send container output in chunks as the process wrote it, not in
//! lines; clients want lines. One splitter for every engine.

use futures::stream::{self, BoxStream, Stream, StreamExt};

/// Cuts a stream of output chunks into lines (without their `\n` or `\r\n`);
/// a last line without a newline comes out when the stream ends. Bytes that
/// are not UTF-8 are replaced, never dropped.
pub fn lines_of<S, B, E>(chunks: S) -> BoxStream<'static, Result<String, E>>
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]>,
    E: Send + 'static,
{
    let state = (Box::pin(chunks), Vec::<u8>::new(), false);
    stream::unfold(state, |(mut chunks, mut pending, mut ended)| async move {
        loop {
            if let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = pending.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Some((Ok(String::from_utf8_lossy(&line).into_owned()), (chunks, pending, ended)));
            }
            if ended {
                if pending.is_empty() {
                    return None;
                }
                let line = String::from_utf8_lossy(&std::mem::take(&mut pending)).into_owned();
                return Some((Ok(line), (chunks, pending, ended)));
            }
            match chunks.next().await {
                Some(Ok(chunk)) => pending.extend_from_slice(chunk.as_ref()),
                Some(Err(error)) => return Some((Err(error), (chunks, pending, true))),
                None => ended = true,
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    #[tokio::test]
    async fn chunks_become_lines() {
        let chunks = stream::iter(["one\ntw", "o\r\n", "", "three\nfour"].map(|c| Ok::<_, ()>(c.as_bytes().to_vec())));
        let lines: Vec<String> = lines_of(chunks).try_collect().await.unwrap();
        assert_eq!(lines, ["one", "two", "three", "four"]);
    }
}
