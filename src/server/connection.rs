//! One client TCP connection: buffered reads that reassemble split lines,
//! batched writes, and no per-connection memory while idle.

use bytes::BytesMut;
use msnp::codec::{Command, Decoder, FrameError};
use std::io;
use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub enum ReadOutcome {
    Data,
    WouldBlock,
    Eof,
}

pub struct Connection {
    stream: TcpStream,
    pub peer: SocketAddr,
    input: BytesMut,
    output: BytesMut,
    decoder: Decoder,
}

impl Connection {
    pub fn new(stream: TcpStream, peer: SocketAddr, decoder: Decoder) -> Connection {
        // Request/reply traffic must not wait for Nagle + delayed ACK (~40 ms steps).
        let _ = stream.set_nodelay(true);
        Connection {
            stream,
            peer,
            input: BytesMut::new(),
            output: BytesMut::new(),
            decoder,
        }
    }

    /// The next complete command already received, if any.
    pub fn next_command(&mut self) -> Result<Option<Command>, FrameError> {
        if self.input.is_empty() {
            return Ok(None);
        }
        self.decoder.decode(&mut self.input)
    }

    /// The command decoder, for a dialect agreed after the connection
    /// opened (payload commands and size limits differ per dialect).
    pub fn decoder_mut(&mut self) -> &mut Decoder {
        &mut self.decoder
    }

    /// Waits until the socket has bytes (or EOF) to read.
    pub async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// Reads what is available without waiting. The scratch buffer lives on
    /// this function's stack, not in the connection, so an idle connection
    /// holds no read buffer.
    pub fn read_available(&mut self) -> io::Result<ReadOutcome> {
        let mut chunk = [0u8; 8192];
        match self.stream.try_read(&mut chunk) {
            Ok(0) => Ok(ReadOutcome::Eof),
            Ok(n) => {
                self.input.extend_from_slice(&chunk[..n]);
                Ok(ReadOutcome::Data)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadOutcome::WouldBlock),
            Err(e) => Err(e),
        }
    }

    pub fn send_line(&mut self, line: &str) {
        msnp::codec::write_line(&mut self.output, line);
    }

    pub fn send_payload(&mut self, head: &str, payload: &[u8]) {
        msnp::codec::write_payload_command(&mut self.output, head, payload);
    }

    pub fn send_error(&mut self, code: msnp::error::ErrorCode, trid: u32) {
        self.send_line(&format!("{} {trid}", code.code()));
    }

    pub fn has_pending_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Writes everything queued in one go, then lets go of buffers that an
    /// idle connection does not need.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.output.is_empty() {
            self.stream.write_all(&self.output).await?;
            self.output.clear();
        }
        if self.output.capacity() > 16 * 1024
            || (self.input.is_empty() && self.output.capacity() > 0)
        {
            self.output = BytesMut::new();
        }
        if self.input.is_empty() && self.input.capacity() > 0 {
            self.input = BytesMut::new();
        }
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }
}
