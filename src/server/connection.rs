//! One client TCP connection: buffered reads that reassemble split lines,
//! batched writes, and no per-connection memory while idle.

use bytes::{Buf, BytesMut};
use msnp::codec::{Command, Decoder, FrameError};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
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
    /// Bytes written to the socket over the connection's life.
    written: u64,
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
            written: 0,
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

    /// Where the output queued so far ends, counted from the connection's
    /// first byte: once [`Connection::written_position`] reaches it, all of
    /// it is on the socket.
    pub fn output_position(&self) -> u64 {
        self.written + self.output.len() as u64
    }

    /// How many bytes have been written to the socket so far.
    pub fn written_position(&self) -> u64 {
        self.written
    }

    /// Writes everything queued, in as few system calls as the socket
    /// allows, then lets go of buffers that an idle connection does not
    /// need. Fails with [`io::ErrorKind::TimedOut`] when the client accepts
    /// no byte for `stall_limit` (it stopped reading). Progress is kept
    /// across cancellation: what was written is gone from the buffer.
    pub async fn flush(&mut self, stall_limit: Duration) -> io::Result<()> {
        while !self.output.is_empty() {
            match tokio::time::timeout(stall_limit, self.stream.write(&self.output)).await {
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client accepted nothing within the write deadline",
                    ));
                }
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => {
                    self.output.advance(n);
                    self.written += n as u64;
                }
                Ok(Err(e)) => return Err(e),
            }
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

    /// Writes what is queued (within `stall_limit` per write) and closes
    /// the sending side.
    pub async fn shutdown(&mut self, stall_limit: Duration) {
        let _ = self.flush(stall_limit).await;
        let _ = self.stream.shutdown().await;
    }
}
