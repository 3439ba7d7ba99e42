//! Which TLS stack should answer a connection, read from its first bytes
//! (the ClientHello) before any TLS library sees them.
//!
//! A client that can do TLS 1.2 or 1.3 goes to rustls. One that offers
//! nothing newer than TLS 1.1 (Windows XP's SChannel: TLS 1.0, RSA key
//! exchange, 3DES/RC4, no extensions) goes to the legacy OpenSSL acceptor
//! ([`super::legacy_tls`]), and so does an SSL 2.0-format ClientHello, which
//! rustls cannot parse and old SChannel sends while SSL 2.0 is enabled.
//! Anything else (plain HTTP on the TLS port, garbage) goes to rustls,
//! which refuses it as before.

/// Which stack answers the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloKind {
    /// TLS 1.2 or newer is on offer, or it is not a TLS ClientHello at all.
    Modern,
    /// Nothing newer than TLS 1.1 is offered.
    Legacy,
}

/// What the bytes read so far tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified {
    /// Read until the connection has sent this many bytes in all, then ask again.
    NeedBytes(usize),
    Decided(HelloKind),
}

/// TLS record header: content type, version, length.
const RECORD_HEADER: usize = 5;
/// Content type of a handshake record.
const HANDSHAKE: u8 = 0x16;
/// Handshake message type of a ClientHello (and of an SSL 2.0 CLIENT-HELLO).
const CLIENT_HELLO: u8 = 0x01;
/// The largest record a client may send (2^14 plus expansion room): a larger
/// length is not a TLS record, and rustls gets to say so.
const MAX_RECORD: usize = 16384 + 2048;
/// TLS 1.2's version number; anything below is legacy.
const TLS1_2: u16 = 0x0303;
/// The `supported_versions` extension (RFC 8446 §4.2.1).
const SUPPORTED_VERSIONS: u16 = 43;

/// Classifies the first bytes a client sent. Reads at most one record
/// (the first), so a caller never buffers more than [`MAX_RECORD`] plus
/// the header.
pub fn classify(bytes: &[u8]) -> Classified {
    if bytes.len() < RECORD_HEADER {
        return Classified::NeedBytes(RECORD_HEADER);
    }
    if bytes[0] & 0x80 != 0 && bytes[2] == CLIENT_HELLO {
        // SSL 2.0 record header (two bytes, high bit set) around a
        // CLIENT-HELLO: only pre-TLS 1.2 stacks still send these.
        return Classified::Decided(HelloKind::Legacy);
    }
    if bytes[0] != HANDSHAKE {
        return Classified::Decided(HelloKind::Modern);
    }
    let record_len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
    if record_len > MAX_RECORD {
        return Classified::Decided(HelloKind::Modern);
    }
    let record_end = RECORD_HEADER + record_len;
    if bytes.len() < record_end {
        return Classified::NeedBytes(record_end);
    }
    Classified::Decided(classify_handshake(&bytes[RECORD_HEADER..record_end]))
}

/// Classifies the start of a handshake message (the first record's body).
fn classify_handshake(message: &[u8]) -> HelloKind {
    let mut reader = Reader(message);
    if reader.u8() != Some(CLIENT_HELLO) {
        return HelloKind::Modern;
    }
    // The message length; the message may go on in later records, which
    // only matters if its extensions are cut off (see below).
    if reader.take(3).is_none() {
        return HelloKind::Modern;
    }
    let Some(client_version) = reader.u16() else {
        return HelloKind::Modern;
    };
    if client_version >= TLS1_2 {
        return HelloKind::Modern;
    }
    // TLS 1.3 clients send 0x0303 here (RFC 8446 §4.1.2), so a lower value
    // is an old client; a `supported_versions` offering 1.2+ still wins.
    // A hello cut off before its extensions, or without any (XP's), offers
    // nothing newer than `client_version`.
    match offered_versions(&mut reader) {
        Some(versions) if versions.iter().any(|&v| v >= TLS1_2) => HelloKind::Modern,
        _ => HelloKind::Legacy,
    }
}

/// The versions listed in `supported_versions`, reading from just after
/// `client_version`; `None` without extensions or when cut off.
fn offered_versions(reader: &mut Reader<'_>) -> Option<Vec<u16>> {
    reader.take(32)?; // random
    let session_id = reader.u8()?;
    reader.take(usize::from(session_id))?;
    let suites = reader.u16()?;
    reader.take(usize::from(suites))?;
    let compressions = reader.u8()?;
    reader.take(usize::from(compressions))?;
    let extensions_len = reader.u16()?;
    let mut extensions = Reader(reader.take(usize::from(extensions_len))?);
    while let (Some(kind), Some(len)) = (extensions.u16(), extensions.u16()) {
        let mut body = Reader(extensions.take(usize::from(len))?);
        if kind == SUPPORTED_VERSIONS {
            let list_len = body.u8()?;
            let mut list = Reader(body.take(usize::from(list_len))?);
            let mut versions = Vec::new();
            while let Some(version) = list.u16() {
                versions.push(version);
            }
            return Some(versions);
        }
    }
    None
}

/// Big-endian reads off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// First records captured from real clients by a listener that only
    /// recorded them (no server answered), as hex.
    ///
    /// gnutls-cli with XP SChannel's offer, `NONE:+VERS-TLS1.0:+3DES-CBC:+RSA:+SHA1:+COMP-NULL:+SIGN-ALL:%NO_EXTENSIONS`.
    const XP_3DES: &str = "160301002d0100002903018888611470a0483154c0b1317b04b35a1461aa4d7dbb2b3bd308272247f1510f000002000a0100";
    /// The same with `+ARCFOUR-128:+MD5` in place of 3DES and SHA1.
    const XP_RC4_MD5: &str = "160301002d010000290301d2c92a0264cd50c442b9bc926e1eb908527f022b19e9e1c4907068554ec3d22500000200040100";
    /// `openssl s_client -tls1` (OpenSSL 3.0): TLS 1.0 with extensions.
    const OPENSSL_TLS1_0: &str = "16030100630100005f03015d878c0bf5f70c2523c543fa56d6bdb56eb13d6eb5e68b50a498a1b5da825c9e000012c00ac0140039c009c01300330035002f00ff01000024000b000403000102000a000c000a001d0017001e00190018002300000016000000170000";
    /// `openssl s_client` (OpenSSL 3.0) defaults: TLS 1.3 with `supported_versions`.
    const OPENSSL_TLS1_3: &str = "160301013601000132030301a55e8b3171b24a5c096c684fa789dee87edf5856ba9e11823ba908066e34b9203cfc59f2576ff901d24f724af2795c17154e9a43b98767d65e267e2be7f08f93003e130213031301c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000ab0000000e000c0000096c6f63616c686f7374000b000403000102000a00160014001d0017001e0019001801000101010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d0020650c1d5f0002bc4c37c3dfd95ee72299b909afe352e1ca805316ab51db677e16";
    /// gnutls-cli with `NORMAL:-VERS-ALL:+VERS-TLS1.2`.
    const GNUTLS_TLS1_2: &str = "16030300c5010000c1030319157074fe82e104d48f158c9971887a77b66006867581b4d82fae29bbf25dcd000032c02ccca9c0adc00ac02bc0acc009c030cca8c014c02fc013009dc09d0035009cc09c002f009fccaac09f0039009ec09e003301000066000500050100000000000a00160014001700180019001d001e01000101010201030104000b00020100000d00220020040108090804040308070501080a0805050308080601080b0806060302010203001600000017000000230000ff01000100001c00024000";

    fn bytes(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    fn decided(text: &str) -> HelloKind {
        match classify(&bytes(text)) {
            Classified::Decided(kind) => kind,
            other => panic!("undecided on a whole record: {other:?}"),
        }
    }

    #[test]
    fn captured_hellos_go_to_the_right_stack() {
        assert_eq!(decided(XP_3DES), HelloKind::Legacy);
        assert_eq!(decided(XP_RC4_MD5), HelloKind::Legacy);
        assert_eq!(decided(OPENSSL_TLS1_0), HelloKind::Legacy);
        assert_eq!(decided(OPENSSL_TLS1_3), HelloKind::Modern);
        assert_eq!(decided(GNUTLS_TLS1_2), HelloKind::Modern);
    }

    #[test]
    fn a_partial_record_asks_for_the_rest_of_it() {
        let whole = bytes(XP_3DES);
        assert_eq!(classify(&[]), Classified::NeedBytes(5));
        assert_eq!(classify(&whole[..3]), Classified::NeedBytes(5));
        for cut in 5..whole.len() {
            assert_eq!(classify(&whole[..cut]), Classified::NeedBytes(whole.len()));
        }
        // Bytes after the first record (the next one) change nothing.
        let mut more = whole.clone();
        more.extend_from_slice(&[0x16, 0x03, 0x01, 0x00, 0x01, 0x00]);
        assert_eq!(classify(&more), Classified::Decided(HelloKind::Legacy));
    }

    #[test]
    fn supported_versions_beats_an_old_client_version() {
        // The TLS 1.3 hello with its client_version lowered to TLS 1.0: its
        // supported_versions still offers 1.3, so rustls answers.
        let mut hello = bytes(OPENSSL_TLS1_3);
        hello[9..11].copy_from_slice(&[0x03, 0x01]);
        assert_eq!(classify(&hello), Classified::Decided(HelloKind::Modern));
    }

    #[test]
    fn a_hello_split_before_its_extensions_is_judged_by_its_version() {
        // TLS 1.0 hello whose first record holds only the start of the message.
        let whole = bytes(OPENSSL_TLS1_0);
        let mut first = whole[..5 + 40].to_vec();
        first[3..5].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(classify(&first), Classified::Decided(HelloKind::Legacy));
    }

    #[test]
    fn ssl2_format_hellos_are_legacy_and_other_bytes_go_to_rustls() {
        // SSL 2.0 record header, CLIENT-HELLO offering TLS 1.0.
        let ssl2 = [0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15];
        assert_eq!(classify(&ssl2), Classified::Decided(HelloKind::Legacy));
        for other in [
            &b"GET /rdr/pprdr.asp HTTP/1.1\r\n"[..],
            &[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28][..],
            // A handshake record that is not a ClientHello.
            &[0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00][..],
            // A record length no client sends.
            &[0x16, 0x03, 0x01, 0xff, 0xff][..],
            // A ClientHello record too short to hold a version.
            &[0x16, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00][..],
        ] {
            assert_eq!(
                classify(other),
                Classified::Decided(HelloKind::Modern),
                "{other:?}"
            );
        }
    }
}
