//! Old request lines: a first line without an HTTP version gets one
//! before hyper sees it (see the module docs of [`super`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An acceptor that wraps each connection in [`LegacyRequestLine`] after
/// the inner acceptor (TLS) is done.
#[derive(Clone, Debug)]
pub(super) struct LegacyAcceptor<A>(pub(super) A);

impl<A, I, S> axum_server::accept::Accept<I, S> for LegacyAcceptor<A>
where
    A: axum_server::accept::Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = LegacyRequestLine<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.0.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = inner.await?;
            Ok((LegacyRequestLine::new(stream), service))
        })
    }
}

/// Longest first line examined by [`LegacyRequestLine`].
const FIRST_LINE_LIMIT: usize = 8 * 1024;

/// Passes a connection through, except that a first request line without an
/// HTTP version (`GET /rdr/pprdr.asp`, as Gaim sent it) gets ` HTTP/1.0`.
pub struct LegacyRequestLine<S> {
    inner: S,
    state: FirstLine,
}

enum FirstLine {
    Reading(Vec<u8>),
    Replaying(Vec<u8>, usize),
    Done,
}

impl<S> LegacyRequestLine<S> {
    pub fn new(inner: S) -> Self {
        LegacyRequestLine {
            inner,
            state: FirstLine::Reading(Vec::new()),
        }
    }
}

/// `seen` with ` HTTP/1.0` added to its first line (which ends at
/// `newline`) if that line is `METHOD target` and nothing more.
fn add_missing_version(mut seen: Vec<u8>, newline: usize) -> Vec<u8> {
    let line_end = if newline > 0 && seen.get(newline - 1) == Some(&b'\r') {
        newline - 1
    } else {
        newline
    };
    let line = &seen[..line_end];
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let (Some(method), Some(target), None) = (parts.next(), parts.next(), parts.next()) else {
        return seen;
    };
    if method.iter().all(u8::is_ascii_uppercase) && target.first() == Some(&b'/') {
        seen.splice(line_end..line_end, b" HTTP/1.0".iter().copied());
    }
    seen
}

impl<S: AsyncRead + Unpin> AsyncRead for LegacyRequestLine<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                FirstLine::Done => return Pin::new(&mut this.inner).poll_read(cx, buf),
                FirstLine::Replaying(data, position) => {
                    let n = buf.remaining().min(data.len() - *position);
                    buf.put_slice(&data[*position..*position + n]);
                    *position += n;
                    if *position >= data.len() {
                        this.state = FirstLine::Done;
                    }
                    return Poll::Ready(Ok(()));
                }
                FirstLine::Reading(seen) => {
                    let mut chunk = [0u8; 2048];
                    let mut chunk_buf = ReadBuf::new(&mut chunk);
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk_buf))?;
                    let got = chunk_buf.filled();
                    if got.is_empty() {
                        let seen = std::mem::take(seen);
                        this.state = if seen.is_empty() {
                            FirstLine::Done
                        } else {
                            FirstLine::Replaying(seen, 0)
                        };
                        if matches!(this.state, FirstLine::Done) {
                            return Poll::Ready(Ok(()));
                        }
                        continue;
                    }
                    seen.extend_from_slice(got);
                    if let Some(newline) = seen.iter().position(|&b| b == b'\n') {
                        let seen = add_missing_version(std::mem::take(seen), newline);
                        this.state = FirstLine::Replaying(seen, 0);
                    } else if seen.len() >= FIRST_LINE_LIMIT {
                        let seen = std::mem::take(seen);
                        this.state = FirstLine::Replaying(seen, 0);
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LegacyRequestLine<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versionless_request_lines_get_http_1_0() {
        let fixed = add_missing_version(b"GET /rdr/pprdr.asp\r\n\r\n".to_vec(), 18);
        assert_eq!(fixed, b"GET /rdr/pprdr.asp HTTP/1.0\r\n\r\n");
        let fixed = add_missing_version(b"GET /x\n\n".to_vec(), 6);
        assert_eq!(fixed, b"GET /x HTTP/1.0\n\n");
        let kept = b"GET /rdr/pprdr.asp HTTP/1.1\r\n".to_vec();
        assert_eq!(add_missing_version(kept.clone(), kept.len() - 1), kept);
        let kept = b"\x16\x03\x01 junk\n".to_vec();
        assert_eq!(add_missing_version(kept.clone(), kept.len() - 1), kept);
    }
}
