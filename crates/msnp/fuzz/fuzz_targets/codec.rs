//! Fuzzes the framing decoder (`msnp::codec::Decoder`).
//!
//! Input layout: byte 0 picks the limits, byte 1 the direction and how the
//! rest is cut into reads, byte 2 the dialect (0 = the pre-`VER` P2–P12
//! constructors, otherwise MSNP2..=MSNP18 cycling), the rest is the byte
//! stream. Small limits make the line/payload boundaries reachable with
//! short inputs.
//!
//! Checked besides "never panics":
//! * decoding the stream in one piece and in arbitrary reads gives the same
//!   commands and the same error (TCP segmentation must not matter), both
//!   with the stateless `Decoder::decode` and with the resuming
//!   `StreamDecoder`;
//! * every command is well-formed: a 3-character alphanumeric name,
//!   non-empty space-free arguments, and for payload commands a last
//!   argument equal to the payload's byte length;
//! * re-encoding a command and decoding it again gives the same command.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use msnp::codec::{Command, Decoder, FrameError, MAX_LINE, StreamDecoder};
use msnp::dialect::Dialect;

/// What decoding a stream produced: the commands, then the error if any.
type Outcome = (Vec<Command>, Option<FrameError>);

/// Decodes as many commands as `buf` holds; `Err` ends the stream.
fn drain(decoder: &Decoder, buf: &mut BytesMut, out: &mut Vec<Command>) -> Result<(), FrameError> {
    while let Some(command) = decoder.decode(buf)? {
        out.push(command);
    }
    Ok(())
}

/// The whole stream in a single read.
fn decode_whole(decoder: &Decoder, input: &[u8]) -> Outcome {
    let mut buf = BytesMut::from(input);
    let mut commands = Vec::new();
    let error = drain(decoder, &mut buf, &mut commands).err();
    (commands, error)
}

/// The same stream in reads of 1..=16 bytes, the sizes cycling from `seed`.
fn decode_in_reads(decoder: &Decoder, input: &[u8], seed: u8) -> Outcome {
    let mut buf = BytesMut::new();
    let mut commands = Vec::new();
    let mut rest = input;
    let mut size_seed = seed;
    while !rest.is_empty() {
        let size = (1 + usize::from(size_seed & 0x0F)).min(rest.len());
        size_seed = size_seed.rotate_left(3).wrapping_add(7);
        let (read, remaining) = rest.split_at(size);
        rest = remaining;
        buf.extend_from_slice(read);
        if let Err(error) = drain(decoder, &mut buf, &mut commands) {
            return (commands, Some(error));
        }
    }
    (commands, None)
}

/// The same stream in reads of 1..=16 bytes through a `StreamDecoder`.
fn stream_in_reads(decoder: &Decoder, input: &[u8], seed: u8) -> Outcome {
    let mut stream = StreamDecoder::new(decoder.clone());
    let mut buf = BytesMut::new();
    let mut commands = Vec::new();
    let mut rest = input;
    let mut size_seed = seed;
    while !rest.is_empty() {
        let size = (1 + usize::from(size_seed & 0x0F)).min(rest.len());
        size_seed = size_seed.rotate_left(3).wrapping_add(7);
        let (read, remaining) = rest.split_at(size);
        rest = remaining;
        buf.extend_from_slice(read);
        loop {
            match stream.decode(&mut buf) {
                Ok(Some(command)) => commands.push(command),
                Ok(None) => break,
                Err(error) => return (commands, Some(error)),
            }
        }
    }
    (commands, None)
}

/// Checks the shape of one decoded command and that it survives a
/// re-encode/decode cycle.
fn check_command(decoder: &Decoder, command: &Command) {
    assert_eq!(command.name.len(), 3, "{command:?}");
    assert!(
        command.name.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{command:?}"
    );
    for arg in &command.args {
        assert!(!arg.is_empty() && !arg.contains([' ', '\n']), "{command:?}");
    }
    let _ = command.trid();
    let _ = command.is_error();

    // `Command::encode` drops a payload command's last argument (the
    // decoded length) and writes the payload's length anew, so the command
    // is encoded as decoded. The decoder accepts leading zeros ("008"); the
    // re-encoded form has none.
    let to_encode = command.clone();
    let mut expected = command.clone();
    if let Some(payload) = &command.payload {
        let parsed = command
            .args
            .last()
            .and_then(|digits| digits.parse::<usize>().ok());
        assert_eq!(parsed, Some(payload.len()), "{command:?}");
        if let Some(last) = expected.args.last_mut() {
            *last = payload.len().to_string();
        }
    }
    let mut wire = BytesMut::new();
    to_encode.encode(&mut wire);
    // Invalid UTF-8 on the line was replaced by U+FFFD (3 bytes each), so the
    // re-encoded line may be up to three times longer than the limit allowed.
    let roomy = decoder.clone().with_max_line(3 * MAX_LINE.max(64));
    let again = roomy.decode(&mut wire);
    assert_eq!(again, Ok(Some(expected)), "re-encoded {command:?}");
    assert!(wire.is_empty(), "re-encoded {command:?} left bytes behind");
}

fuzz_target!(|data: &[u8]| {
    let [limits, mode, dialect, input @ ..] = data else {
        return;
    };
    // 0 keeps the built-in MAX_LINE; otherwise 1..=63 bytes.
    let max_line = usize::from(limits & 0x3F);
    let max_payload = usize::from(limits >> 6) * 40;
    let dialect = match dialect {
        0 => None,
        n => Dialect::new(2 + (n - 1) % 17),
    };
    let decoder = match (mode & 0x80 == 0, dialect) {
        (true, None) => Decoder::client_to_server(max_payload),
        (true, Some(dialect)) => Decoder::client_to_server_for(dialect, max_payload),
        (false, None) => Decoder::server_to_client(),
        (false, Some(dialect)) => Decoder::server_to_client_for(dialect),
    };
    let decoder = if max_line == 0 {
        decoder
    } else {
        decoder.with_max_line(max_line)
    };

    let whole = decode_whole(&decoder, input);
    let in_reads = decode_in_reads(&decoder, input, *mode);
    assert_eq!(
        whole, in_reads,
        "result depends on how the stream was split"
    );
    let streamed = stream_in_reads(&decoder, input, mode.rotate_left(1));
    assert_eq!(whole, streamed, "StreamDecoder disagrees with Decoder");

    for command in &whole.0 {
        check_command(&decoder, command);
    }
});
