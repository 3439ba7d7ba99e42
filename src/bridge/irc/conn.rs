//! One IRC connection's bytes: TCP or TLS, line framing, parsing.
//!
//! Lines are parsed here (tags skipped, prefix, command, parameters) with
//! irc-proto's `Prefix` and `Response` types; its typed `Command` is not
//! used because several commands we need (CAP, numerics with any number
//! of parameters) are easier to read from plain parameters.

use super::text;
use bytes::BytesMut;
use irc_proto::{Prefix, Response};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest line accepted from a server: 8191 bytes of tags plus 512 (IRCv3).
const MAX_LINE: usize = 8191 + 512;
/// Longest line we send, without CR LF (RFC 1459: 512 with CR LF).
pub const MAX_OUT: usize = 510;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct IrcConn {
    io: Box<dyn Io>,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
}

/// A parsed line from the server.
#[derive(Debug, Clone)]
pub struct Line {
    pub prefix: Option<Prefix>,
    pub command: String,
    pub params: Vec<String>,
}

impl Line {
    pub fn parse(raw: &str) -> Option<Line> {
        let mut rest = raw.trim_end_matches(['\r', '\n']);
        if let Some(tagged) = rest.strip_prefix('@') {
            rest = tagged.split_once(' ')?.1.trim_start_matches(' ');
        }
        let mut prefix = None;
        if let Some(p) = rest.strip_prefix(':') {
            let (p, r) = p.split_once(' ')?;
            prefix = Some(p.parse::<Prefix>().ok()?);
            rest = r.trim_start_matches(' ');
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_string());
                break;
            }
            let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(p.to_string());
            rest = r;
        }
        Some(Line {
            prefix,
            command: command.to_ascii_uppercase(),
            params,
        })
    }

    pub fn numeric(&self) -> Option<Response> {
        if self.command.len() == 3 && self.command.bytes().all(|b| b.is_ascii_digit()) {
            self.command.parse().ok()
        } else {
            None
        }
    }

    /// The nick of a user prefix (`nick!user@host`); `None` for servers.
    pub fn source_nick(&self) -> Option<&str> {
        match &self.prefix {
            Some(Prefix::Nickname(nick, user, host))
                if !(user.is_empty() && host.is_empty() && nick.contains('.')) =>
            {
                Some(nick)
            }
            _ => None,
        }
    }

    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map(String::as_str).unwrap_or("")
    }

    pub fn last(&self) -> &str {
        self.params.last().map(String::as_str).unwrap_or("")
    }
}

impl IrcConn {
    pub async fn connect(
        server: &str,
        port: u16,
        tls: Option<&Arc<tokio_rustls::rustls::ClientConfig>>,
        within: Duration,
    ) -> io::Result<IrcConn> {
        let connect = async {
            let tcp = TcpStream::connect((server, port)).await?;
            tcp.set_nodelay(true)?;
            let io: Box<dyn Io> = if let Some(tls) = tls {
                let name =
                    tokio_rustls::rustls::pki_types::ServerName::try_from(server.to_string())
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                Box::new(
                    tokio_rustls::TlsConnector::from(tls.clone())
                        .connect(name, tcp)
                        .await?,
                )
            } else {
                Box::new(tcp)
            };
            Ok::<_, io::Error>(io)
        };
        let io = tokio::time::timeout(within, connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        Ok(IrcConn {
            io,
            rbuf: BytesMut::with_capacity(4096),
            wbuf: Vec::with_capacity(1024),
        })
    }

    /// Queues one line; CR, LF and NUL are removed and it is cut to 510
    /// bytes (at a character boundary), so nothing can inject a command.
    pub fn queue(&mut self, line: &str) {
        let mut line = text::line_safe(line);
        if line.len() > MAX_OUT {
            let mut cut = MAX_OUT;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        tracing::trace!(line = %line, "irc >");
        self.wbuf.extend_from_slice(line.as_bytes());
        self.wbuf.extend_from_slice(b"\r\n");
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let write = async {
            self.io.write_all(&self.wbuf).await?;
            self.io.flush().await
        };
        tokio::time::timeout(Duration::from_secs(60), write)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "server not reading"))??;
        self.wbuf.clear();
        Ok(())
    }

    /// The next complete line already received, if any.
    pub fn next_line(&mut self) -> io::Result<Option<String>> {
        match self.rbuf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let raw = self.rbuf.split_to(i + 1);
                let line = text::decode_line(&raw);
                tracing::trace!(line = %line.trim_end(), "irc <");
                Ok(Some(line))
            }
            None if self.rbuf.len() > MAX_LINE => {
                Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"))
            }
            None => Ok(None),
        }
    }

    /// Reads what the server sent (cancel-safe). `Ok(false)` at end of stream.
    pub async fn read_more(&mut self) -> io::Result<bool> {
        Ok(self.io.read_buf(&mut self.rbuf).await? > 0)
    }

    /// The next line, reading as needed, until `deadline`.
    pub async fn line_until(&mut self, deadline: tokio::time::Instant) -> io::Result<String> {
        loop {
            if let Some(line) = self.next_line()? {
                return Ok(line);
            }
            match tokio::time::timeout_at(deadline, self.read_more()).await {
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "registration timed out",
                    ));
                }
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed the connection",
                    ));
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    pub async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.io.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let l = Line::parse("@time=x :bob!b@host PRIVMSG #c :hello there\r\n").unwrap();
        assert_eq!(l.source_nick(), Some("bob"));
        assert_eq!(
            (l.command.as_str(), l.params.as_slice()),
            (
                "PRIVMSG",
                &["#c".to_string(), "hello there".to_string()][..]
            )
        );
        let l = Line::parse(":irc.test 001 alice :Welcome").unwrap();
        assert_eq!(l.numeric(), Some(Response::RPL_WELCOME));
        assert_eq!(l.source_nick(), None);
        let l = Line::parse("PING :x").unwrap();
        assert_eq!(l.params, ["x"]);
        let l = Line::parse(":s CAP * LS * :sasl multi-prefix").unwrap();
        assert_eq!(l.params, ["*", "LS", "*", "sasl multi-prefix"]);
        assert!(Line::parse("").is_none());
    }
}
