//! Properties of the framing decoder for every dialect and direction
//! (framing.md §4, wlm/notification.md): it never panics, TCP segmentation
//! does not change what it decodes, and the resuming [`StreamDecoder`]
//! agrees with the stateless [`Decoder::decode`].

use bytes::BytesMut;
use msnp::codec::{Command, Decoder, Direction, FrameError, StreamDecoder, payload_commands};
use msnp::dialect::Dialect;
use proptest::prelude::*;

type Outcome = (Vec<Command>, Option<FrameError>);

fn decoder_for(dialect: u8, to_server: bool, max_line: usize, max_payload: usize) -> Decoder {
    let dialect = Dialect::new(dialect).unwrap_or(Dialect::MIN);
    let decoder = if to_server {
        Decoder::client_to_server_for(dialect, max_payload)
    } else {
        Decoder::server_to_client_for(dialect).with_max_payload(max_payload)
    };
    decoder.with_max_line(max_line)
}

/// The whole stream in one read, stateless decoder.
fn whole(decoder: &Decoder, input: &[u8]) -> Outcome {
    let mut buf = BytesMut::from(input);
    let mut commands = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(command)) => commands.push(command),
            Ok(None) => return (commands, None),
            Err(error) => return (commands, Some(error)),
        }
    }
}

/// The stream cut at `cuts`, resuming decoder.
fn in_reads(decoder: &mut StreamDecoder, input: &[u8], cuts: &[usize]) -> Outcome {
    let mut buf = BytesMut::new();
    let mut commands = Vec::new();
    let mut start = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|cut| cut % (input.len() + 1)).collect();
    ends.push(input.len());
    ends.sort_unstable();
    for end in ends {
        if end < start {
            continue;
        }
        buf.extend_from_slice(&input[start..end]);
        start = end;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(command)) => commands.push(command),
                Ok(None) => break,
                Err(error) => return (commands, Some(error)),
            }
        }
    }
    (commands, None)
}

/// Bytes that look like MSNP often enough to reach payload framing.
fn msnp_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"ADL 1 ".to_vec()),
        Just(b"UUN 2 OK".to_vec()),
        Just(b"241 8 ".to_vec()),
        Just(b"MSG 1 D ".to_vec()),
        Just(b"PUT 3 OK ".to_vec()),
        Just(b"NFY PUT ".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b" ".to_vec()),
        (0usize..40).prop_map(|n| n.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn stream_decoder_matches_stateless_decoder(
        input in prop_oneof![msnp_like(), proptest::collection::vec(any::<u8>(), 0..300)],
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        dialect in 2u8..=18,
        to_server in any::<bool>(),
        max_line in 4usize..64,
        max_payload in 0usize..64,
    ) {
        let decoder = decoder_for(dialect, to_server, max_line, max_payload);
        let expected = whole(&decoder, &input);
        let mut stream = decoder.clone().into_stream();
        let got = in_reads(&mut stream, &input, &cuts);
        prop_assert_eq!(&got, &expected);
        for command in &got.0 {
            if let Some(payload) = &command.payload {
                let length = command.args.last().and_then(|l| l.parse::<usize>().ok());
                prop_assert_eq!(length, Some(payload.len()));
            }
        }
    }

    #[test]
    fn encoded_commands_decode_back_in_any_segmentation(
        dialect in 2u8..=18,
        to_server in any::<bool>(),
        picks in proptest::collection::vec((any::<proptest::sample::Index>(), proptest::collection::vec(any::<u8>(), 0..50), any::<bool>()), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let dialect = Dialect::new(dialect).unwrap_or(Dialect::MIN);
        let direction = if to_server { Direction::ClientToServer } else { Direction::ServerToClient };
        let names = payload_commands(direction, dialect);
        let mut wire = BytesMut::new();
        let mut sent = Vec::new();
        for (index, payload, with_payload) in picks {
            let command = if with_payload {
                Command { name: names[index.index(names.len())].to_owned(), args: vec!["7".into(), payload.len().to_string()], payload: Some(payload.into()) }
            } else {
                Command { name: "PNG".into(), args: vec![], payload: None }
            };
            command.encode(&mut wire);
            sent.push(command);
        }
        let decoder = if to_server {
            Decoder::client_to_server_for(dialect, 64)
        } else {
            Decoder::server_to_client_for(dialect)
        };
        let mut stream = decoder.into_stream();
        let got = in_reads(&mut stream, &wire, &cuts);
        prop_assert_eq!(got, (sent, None));
    }
}
