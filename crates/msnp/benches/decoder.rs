//! Time the stateless `Decoder::decode` against the resuming
//! `StreamDecoder` on streams that arrive in small reads.
//!
//! `cargo bench -p msnp --bench decoder` (release build). Prints one line
//! per case: total time, calls to `decode`, and for the stream decoder
//! how many bytes it searched and lines it parsed. Figures, not assertions:
//! the unit tests check the counts, this shows what they cost.

use bytes::BytesMut;
use msnp::codec::{Command, Decoder, FrameError, StreamDecoder};
use msnp::dialect::Dialect;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Feeds `input` in `chunk`-byte reads, decoding after each read.
fn feed(
    input: &[u8],
    chunk: usize,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<Command>, FrameError>,
) -> (usize, u64, Duration) {
    let mut buf = BytesMut::new();
    let mut commands = 0;
    let mut calls = 0;
    let start = Instant::now();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            calls += 1;
            match decode(&mut buf) {
                Ok(Some(command)) => {
                    black_box(&command);
                    commands += 1;
                }
                Ok(None) => break,
                Err(error) => panic!("{error}"),
            }
        }
    }
    (commands, calls, start.elapsed())
}

fn case(label: &str, decoder: &Decoder, input: &[u8], chunk: usize) {
    let (commands, calls, stateless) = feed(input, chunk, |buf| decoder.decode(buf));
    let mut stream = StreamDecoder::new(decoder.clone());
    let (stream_commands, _, resuming) = feed(input, chunk, |buf| stream.decode(buf));
    assert_eq!(commands, stream_commands);
    println!(
        "{label:<44} {:>6} KiB in {chunk:>5}-byte reads, {calls:>8} decode calls: \
         Decoder {:>9.3} ms, StreamDecoder {:>9.3} ms \
         (searched {} bytes, parsed {} lines)",
        input.len() / 1024,
        stateless.as_secs_f64() * 1e3,
        resuming.as_secs_f64() * 1e3,
        stream.bytes_examined(),
        stream.lines_parsed(),
    );
}

fn main() {
    let megabyte = 1 << 20;
    let mut big_payload = format!("MSG 1 D {megabyte}\r\n").into_bytes();
    big_payload.resize(big_payload.len() + megabyte, b'x');
    let decoder = Decoder::client_to_server(megabyte);
    case("1 MiB MSG payload", &decoder, &big_payload, 1024);
    case("1 MiB MSG payload", &decoder, &big_payload, 1);

    let mut long_line = b"CHG 1 NLN 0 ".to_vec();
    long_line.resize(msnp::codec::MAX_LINE, b'x');
    long_line.extend_from_slice(b"\r\n");
    let lines: Vec<u8> = long_line.repeat(16);
    case("16 lines of 8 KiB", &decoder, &lines, 1);
    case("16 lines of 8 KiB", &decoder, &lines, 64);

    let adl = b"ADL 8 138\r\n<ml l=\"1\"><d n=\"example.com\"><c n=\"bob\" l=\"3\" t=\"1\" /><c n=\"carol\" l=\"5\" t=\"1\" /></d><d n=\"yahoo.com\"><c n=\"dave\" l=\"1\" t=\"32\" /></d></ml>PNG\r\nCHG 9 NLN 2688340284:2550273040 0\r\n";
    let traffic: Vec<u8> = adl.repeat(2000);
    let p18 = Decoder::client_to_server_for(Dialect::MSNP18, 7500);
    case("P18 ADL/PNG/CHG traffic", &p18, &traffic, 8192);
    case("P18 ADL/PNG/CHG traffic", &p18, &traffic, 16);
}
