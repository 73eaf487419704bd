//! [`FileReader`]: a file's bytes as they arrive, never held whole in memory.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::Stream;
use futures_util::stream::BoxStream;
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

use super::error::PipelineError;

/// The content of a dataset file or media item, streamed from Foundry.
///
/// Use it as
/// * a [`Stream`] of [`Bytes`] chunks,
/// * [`FileReader::chunk`] in a loop,
/// * a Tokio [`AsyncRead`] / [`AsyncBufRead`] (e.g. `reader.lines()` from
///   `tokio::io::AsyncBufReadExt`, or `tokio::io::copy`); read errors are then `io::Error`s
///   wrapping the [`PipelineError`].
///
/// Only the current chunk is buffered, so memory stays bounded whatever the file size.
pub struct FileReader {
    stream: BoxStream<'static, Result<Bytes, PipelineError>>,
    current: Bytes,
    path: String,
}

impl fmt::Debug for FileReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileReader")
            .field("path", &self.path)
            .field("buffered", &self.current.len())
            .finish_non_exhaustive()
    }
}

impl FileReader {
    pub(crate) fn new(
        path: impl Into<String>,
        stream: BoxStream<'static, Result<Bytes, PipelineError>>,
    ) -> Self {
        Self {
            stream,
            current: Bytes::new(),
            path: path.into(),
        }
    }

    /// The path of the file being read.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The next chunk of bytes; `None` at the end of the file.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, PipelineError> {
        use futures_util::StreamExt;
        if !self.current.is_empty() {
            return Ok(Some(std::mem::take(&mut self.current)));
        }
        self.stream.next().await.transpose()
    }

    /// Reads the rest of the file into memory. Only for files known to be small.
    pub async fn read_to_end(mut self) -> Result<Bytes, PipelineError> {
        let mut out = bytes::BytesMut::new();
        while let Some(c) = self.chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out.freeze())
    }
}

impl Stream for FileReader {
    type Item = Result<Bytes, PipelineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if !this.current.is_empty() {
            return Poll::Ready(Some(Ok(std::mem::take(&mut this.current))));
        }
        this.stream.as_mut().poll_next(cx)
    }
}

impl AsyncBufRead for FileReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        while this.current.is_empty() {
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => this.current = chunk,
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                None => return Poll::Ready(Ok(&[])),
            }
        }
        Poll::Ready(Ok(&this.current[..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.current.advance(amt.min(this.current.len()));
    }
}

impl AsyncRead for FileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let available = ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::AsyncBufReadExt;

    fn reader(chunks: &[&'static str]) -> FileReader {
        let items: Vec<Result<Bytes, PipelineError>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        FileReader::new("f.csv", futures_util::stream::iter(items).boxed())
    }

    #[tokio::test]
    async fn lines_span_chunk_boundaries() {
        let r = reader(&["a,1\nb", ",2\n", "", "c,3"]);
        let mut lines = r.lines();
        let mut got = Vec::new();
        while let Some(l) = lines.next_line().await.unwrap() {
            got.push(l);
        }
        assert_eq!(got, ["a,1", "b,2", "c,3"]);
    }

    #[tokio::test]
    async fn read_to_end_and_chunks() {
        assert_eq!(
            &reader(&["ab", "cd"]).read_to_end().await.unwrap()[..],
            b"abcd"
        );
        let mut r = reader(&["x"]);
        assert_eq!(r.chunk().await.unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(r.chunk().await.unwrap(), None);
    }
}
