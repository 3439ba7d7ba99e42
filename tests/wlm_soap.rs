//! The WLM SOAP services (address book, sharing, storage, client config)
//! over real HTTP against the real server, with MSNP12 clients over TCP
//! showing that both see one contact list.

mod common;

use common::*;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PW: &str = "s3cret!pw";

/// Sends raw HTTP bytes and returns (status line, body).
async fn http_raw(addr: SocketAddr, request: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect http");
    stream.write_all(request).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("http timeout")
        .expect("read");
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `POST path` with a SOAP body, as WLM 2009 sends it.
async fn post(addr: SocketAddr, path: &str, action: &str, body: &str) -> (String, String) {
    let request = format!(
        "POST {path} HTTP/1.1\r\nSOAPAction: \"{action}\"\r\nContent-Type: text/xml; charset=utf-8\r\n\
         Host: contacts.msn.com\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http_raw(addr, request.as_bytes()).await
}

/// The RST2.srf request WLM 2009 sends: a UsernameToken and one
/// RequestSecurityToken per service.
fn rst2(handle: &str, password: &str) -> String {
    let token = |n: usize, address: &str, policy: &str| {
        format!(
            "<wst:RequestSecurityToken Id=\"RST{n}\"><wst:RequestType>http://schemas.xmlsoap.org/ws/2005/02/trust/Issue</wst:RequestType>\
             <wsp:AppliesTo><wsa:EndpointReference><wsa:Address>{address}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>\
             {policy}</wst:RequestSecurityToken>"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" \
         xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\" \
         xmlns:wsp=\"http://schemas.xmlsoap.org/ws/2004/09/policy\" xmlns:wsa=\"http://www.w3.org/2005/08/addressing\" \
         xmlns:wst=\"http://schemas.xmlsoap.org/ws/2005/02/trust\" xmlns:ps=\"http://schemas.microsoft.com/Passport/SoapServices/PPCRL\">\
         <s:Header><wsa:Action s:mustUnderstand=\"1\">http://schemas.xmlsoap.org/ws/2005/02/trust/RST/Issue</wsa:Action>\
         <wsa:To s:mustUnderstand=\"1\">HTTPS://login.live.com:443//RST2.srf</wsa:To>\
         <ps:AuthInfo Id=\"PPAuthInfo\"><ps:HostingApp>{{3:B}}</ps:HostingApp><ps:BinaryVersion>5</ps:BinaryVersion></ps:AuthInfo>\
         <wsse:Security><wsse:UsernameToken wsu:Id=\"user\" xmlns:wsu=\"x\"><wsse:Username>{handle}</wsse:Username>\
         <wsse:Password>{password}</wsse:Password></wsse:UsernameToken></wsse:Security></s:Header><s:Body>\
         <ps:RequestMultipleSecurityTokens Id=\"RSTS\">{}{}{}{}</ps:RequestMultipleSecurityTokens></s:Body></s:Envelope>",
        token(0, "http://Passport.NET/tb", ""),
        token(
            1,
            "messengerclear.live.com",
            "<wsp:PolicyReference URI=\"MBI_KEY_OLD\"></wsp:PolicyReference>"
        ),
        token(
            2,
            "contacts.msn.com",
            "<wsp:PolicyReference URI=\"MBI\"></wsp:PolicyReference>"
        ),
        token(
            3,
            "storage.msn.com",
            "<wsp:PolicyReference URI=\"MBI\"></wsp:PolicyReference>"
        ),
    )
}

/// The text of the `BinarySecurityToken` answering `address`.
fn token_for(xml: &str, address: &str) -> String {
    let at = xml
        .find(&format!("<wsa:Address>{address}</wsa:Address>"))
        .unwrap_or_else(|| panic!("no token for {address} in {xml}"));
    let rest = &xml[at..];
    let open = rest.find("<wsse:BinarySecurityToken").unwrap();
    let start = open + rest[open..].find('>').unwrap() + 1;
    let end = start + rest[start..].find("</wsse:BinarySecurityToken>").unwrap();
    rest[start..end].to_string()
}

/// Signs in at RST2.srf; (messenger ticket, contacts token, storage token),
/// each still XML-escaped as the client keeps and sends them.
async fn tokens(server: &TestServer, handle: &str) -> (String, String, String) {
    let body = rst2(handle, PW);
    let (status, xml) = post(server.http(), "/RST2.srf", "", &body).await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{xml}");
    (
        token_for(&xml, "messengerclear.live.com"),
        token_for(&xml, "contacts.msn.com"),
        token_for(&xml, "storage.msn.com"),
    )
}

/// An ABCH/Sharing request envelope carrying `ticket` (already XML-escaped).
fn ab_request(ticket: &str, scenario: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" \
         xmlns:soapenc=\"http://schemas.xmlsoap.org/soap/encoding/\"><soap:Header>\
         <ABApplicationHeader xmlns=\"http://www.msn.com/webservices/AddressBook\"><ApplicationId>CFE80F9D-180F-4399-82AB-413F33A1FA11</ApplicationId>\
         <IsMigration>false</IsMigration><PartnerScenario>{scenario}</PartnerScenario></ABApplicationHeader>\
         <ABAuthHeader xmlns=\"http://www.msn.com/webservices/AddressBook\"><ManagedGroupRequest>false</ManagedGroupRequest>\
         <TicketToken>{ticket}</TicketToken></ABAuthHeader></soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

const AB: &str = "/abservice/abservice.asmx";
const SHARING: &str = "/abservice/SharingService.asmx";
const ACTION: &str = "http://www.msn.com/webservices/AddressBook/";

/// One ABCH/Sharing call; asserts `200` and returns the document.
async fn call_ok(
    server: &TestServer,
    path: &str,
    ticket: &str,
    operation: &str,
    inner: &str,
) -> String {
    let body = ab_request(
        ticket,
        "Initial",
        &format!(
            "<{operation} xmlns=\"http://www.msn.com/webservices/AddressBook\">{inner}</{operation}>"
        ),
    );
    let (status, xml) = post(server.http(), path, &format!("{ACTION}{operation}"), &body).await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{operation}: {xml}");
    assert!(!xml.contains("> <") && !xml.contains('\n'), "{xml}");
    xml
}

const FIND_MEMBERSHIP: &str = "<serviceFilter><Types><ServiceType>Messenger</ServiceType><ServiceType>Invitation</ServiceType>\
    <ServiceType>SocialNetwork</ServiceType><ServiceType>Space</ServiceType><ServiceType>Profile</ServiceType></Types></serviceFilter>";
const FIND_PAGED: &str = "<abView>Full</abView><extendedContent>AB AllGroups CircleResult</extendedContent>\
    <filterOptions><DeltasOnly>false</DeltasOnly><LastChanged>0001-01-01T00:00:00.0000000-08:00</LastChanged>\
    <PageNumber>0</PageNumber><PageSize>0</PageSize></filterOptions>";

/// The text between `<{tag}>` and `</{tag}>` of every element `tag` in `xml`.
fn all<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

/// The single text of `<tag>` in `xml`.
fn one<'a>(xml: &'a str, tag: &str) -> &'a str {
    let found = all(xml, tag);
    assert_eq!(found.len(), 1, "<{tag}> in {xml}");
    found[0]
}

/// (role, passport names) of every Membership of a FindMembership answer.
fn memberships(xml: &str) -> Vec<(String, Vec<String>)> {
    all(xml, "Membership")
        .into_iter()
        .map(|m| {
            (
                one(m, "MemberRole").to_string(),
                all(m, "PassportName")
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            )
        })
        .collect()
}

/// (passportName, contactId, CID, groupIds) of every Contact of a find answer.
fn contacts(xml: &str) -> Vec<(String, String, String, Vec<String>)> {
    all(xml, "Contact")
        .into_iter()
        .map(|c| {
            (
                one(c, "passportName").to_string(),
                one(c, "contactId").to_string(),
                one(c, "CID").to_string(),
                all(c, "guid").into_iter().map(str::to_string).collect(),
            )
        })
        .collect()
}

/// Sends `PNG` and returns every line before `QNG`.
async fn drain(c: &mut Client) -> Vec<String> {
    c.send("PNG").await;
    let mut seen = Vec::new();
    loop {
        let cmd = c.recv().await;
        if cmd.name == "QNG" {
            return seen;
        }
        seen.push(render(&cmd));
    }
}

/// A command with the next TrID (`{t}`), and its reply lines.
async fn cmd(c: &mut Client, line: &str) -> Vec<String> {
    let t = c.next();
    c.send(&line.replace("{t}", &t.to_string())).await;
    drain(c).await
}

/// The field after `prefix` in a line (`C=` → the GUID).
fn field(line: &str, prefix: &str) -> String {
    line.split(' ')
        .find_map(|f| f.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {line}"))
        .to_string()
}

async fn cid(server: &TestServer, handle: &str) -> String {
    let account = server
        .hub()
        .store()
        .account_by_handle(handle)
        .await
        .unwrap()
        .unwrap();
    account.id.to_string()
}

#[tokio::test]
async fn wlm_reads_and_edits_the_lists_msnp12_clients_use() {
    let server = start().await;
    let (alice, bob, carol, dave) = (
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    );
    for (handle, nick) in [
        (alice, "Alice"),
        (bob, "Bob"),
        (carol, "Carol"),
        (dave, "Dave"),
    ] {
        server.add_user(handle, PW, nick).await;
    }

    // Earlier, with MSNP12: alice makes a group, adds bob to FL/AL and the
    // group, blocks dave; bob adds alice back (her RL).
    let mut a12 = sign_in(&server, 12, alice, PW).await;
    cmd(&mut a12, "SYN {t} 0 0").await;
    let got = cmd(&mut a12, "ADG {t} Friends").await;
    let friends = got[0].split(' ').nth(3).unwrap().to_string();
    let got = cmd(&mut a12, &format!("ADC {{t}} FL N={bob} F=Bobby")).await;
    let bob_id = field(&got[0], "C=");
    cmd(&mut a12, &format!("ADC {{t}} FL C={bob_id} {friends}")).await;
    cmd(&mut a12, &format!("ADC {{t}} AL N={bob}")).await;
    cmd(&mut a12, &format!("ADC {{t}} BL N={dave}")).await;
    a12.send("OUT").await;
    let mut b12 = sign_in(&server, 12, bob, PW).await;
    cmd(&mut b12, "SYN {t} 0 0").await;
    cmd(&mut b12, &format!("ADC {{t}} FL N={alice} F=Alice")).await;
    let mut c12 = sign_in(&server, 12, carol, PW).await;
    cmd(&mut c12, "SYN {t} 0 0").await;

    // WLM 2009 signs in at RST2.srf and reads both lists.
    let (_, ticket, _) = tokens(&server, alice).await;
    assert!(ticket.contains("&amp;p="), "{ticket}");
    let xml = call_ok(&server, SHARING, &ticket, "FindMembership", FIND_MEMBERSHIP).await;
    assert_eq!(
        memberships(&xml),
        vec![
            ("Allow".to_string(), vec![bob.to_string()]),
            ("Block".to_string(), vec![dave.to_string()]),
            ("Reverse".to_string(), vec![bob.to_string()]),
            ("Pending".to_string(), vec![]),
        ]
    );
    let bob_cid = cid(&server, bob).await;
    let alice_cid = cid(&server, alice).await;
    assert_eq!(
        all(&xml, "CID").iter().filter(|c| **c == bob_cid).count(),
        2
    );
    assert_eq!(one(&xml, "CreatorPassportName"), alice);
    assert_eq!(one(&xml, "CreatorCID"), alice_cid);

    let xml = call_ok(&server, AB, &ticket, "ABFindContactsPaged", FIND_PAGED).await;
    let listed = contacts(&xml);
    assert_eq!(listed.len(), 2, "{xml}");
    assert_eq!(
        (listed[0].0.as_str(), listed[0].2.as_str()),
        (alice, alice_cid.as_str())
    );
    assert!(xml.contains("<contactType>Me</contactType>"));
    assert_eq!(
        listed[1],
        (
            bob.to_string(),
            bob_id.clone(),
            bob_cid.clone(),
            vec![friends.clone()]
        )
    );
    assert!(
        xml.contains(&format!("<groupId>{friends}</groupId>")),
        "{xml}"
    );
    assert!(xml.contains("<name>Friends</name>"));
    assert!(xml.contains("<displayName>Bobby</displayName>"));
    assert!(xml.contains("<CircleResult><CircleTicket>"));
    assert_eq!(one(&xml, "ownerEmail"), alice);
    // ABFindAll (MSNP13–15) spells the same book in lower case.
    let all_xml = call_ok(
        &server,
        AB,
        &ticket,
        "ABFindAll",
        "<abId>00000000-0000-0000-0000-000000000000</abId><abView>Full</abView><deltasOnly>false</deltasOnly>\
         <lastChange>0001-01-01T00:00:00.0000000-08:00</lastChange>",
    )
    .await;
    assert!(
        all_xml.contains("<ABFindAllResult><groups><Group>"),
        "{all_xml}"
    );
    assert_eq!(contacts(&all_xml), listed);

    // WLM adds carol: her MSNP12 client is told at once, in its dialect.
    let xml = call_ok(
        &server,
        AB,
        &ticket,
        "ABContactAdd",
        &format!(
            "<abId>00000000-0000-0000-0000-000000000000</abId><contacts><Contact xmlns=\"http://www.msn.com/webservices/AddressBook\">\
             <contactInfo><contactType>LivePending</contactType><passportName>{carol}</passportName>\
             <isMessengerUser>true</isMessengerUser><MessengerMemberInfo><DisplayName>{carol}</DisplayName></MessengerMemberInfo>\
             </contactInfo></Contact></contacts><options><EnableAllowListManagement>true</EnableAllowListManagement></options>"
        ),
    )
    .await;
    let carol_id = one(&xml, "guid").to_string();
    c12.expect(&format!("ADC 0 RL N={alice} F=Alice")).await;
    // Adding her again is the reference's fault.
    let again = ab_request(
        &ticket,
        "ContactSave",
        &format!(
            "<ABContactAdd><contacts><Contact><contactInfo><passportName>{carol}</passportName></contactInfo></Contact></contacts></ABContactAdd>"
        ),
    );
    let (status, xml) = post(server.http(), AB, &format!("{ACTION}ABContactAdd"), &again).await;
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    assert!(xml.contains(">ContactAlreadyExists</errorcode>"), "{xml}");
    // An address nobody has.
    let nobody = again.replace(carol, "nobody@example.com");
    let (_, xml) = post(server.http(), AB, &format!("{ACTION}ABContactAdd"), &nobody).await;
    assert!(xml.contains(">InvalidPassportUser</errorcode>"), "{xml}");

    // A group, and carol in it.
    let xml = call_ok(
        &server,
        AB,
        &ticket,
        "ABGroupAdd",
        "<abId>00000000-0000-0000-0000-000000000000</abId><groupAddOptions><fRenameOnMsgrConflict>false</fRenameOnMsgrConflict>\
         </groupAddOptions><groupInfo><GroupInfo><name>Work</name><groupType>C8529CE2-6EAD-434d-881F-341E17DB3FF8</groupType>\
         <fMessenger>false</fMessenger><annotations><Annotation><Name>MSN.IM.Display</Name><Value>1</Value></Annotation>\
         </annotations></GroupInfo></groupInfo>",
    )
    .await;
    let work = one(&xml, "guid").to_string();
    let xml = call_ok(
        &server,
        AB,
        &ticket,
        "ABGroupContactAdd",
        &format!(
            "<abId>00000000-0000-0000-0000-000000000000</abId><groupFilter><groupIds><guid>{work}</guid></groupIds></groupFilter>\
             <contacts><Contact><contactId>{carol_id}</contactId></Contact></contacts>"
        ),
    )
    .await;
    assert_eq!(one(&xml, "guid"), carol_id);

    // WLM deletes bob and unblocks dave: bob's MSNP12 client sees it at once.
    call_ok(
        &server,
        AB,
        &ticket,
        "ABContactDelete",
        &format!(
            "<abId>00000000-0000-0000-0000-000000000000</abId><contacts><Contact><contactId>{bob_id}</contactId></Contact></contacts>"
        ),
    )
    .await;
    b12.expect(&format!("REM 0 RL {alice}")).await;
    call_ok(
        &server,
        SHARING,
        &ticket,
        "DeleteMember",
        &format!(
            "<serviceHandle><Id>0</Id><Type>Messenger</Type><ForeignId></ForeignId></serviceHandle><memberships><Membership>\
             <MemberRole>Block</MemberRole><Members><Member xsi:type=\"PassportMember\"><Type>Passport</Type><State>Accepted</State>\
             <PassportName>{dave}</PassportName></Member></Members></Membership></memberships>"
        ),
    )
    .await;
    // AddMember Allow for carol (what WLM sends after ABContactAdd).
    call_ok(
        &server,
        SHARING,
        &ticket,
        "AddMember",
        &format!(
            "<serviceHandle><Id>0</Id><Type>Messenger</Type><ForeignId></ForeignId></serviceHandle><memberships><Membership>\
             <MemberRole>Allow</MemberRole><Members><Member xsi:type=\"PassportMember\"><Type>Passport</Type><State>Accepted</State>\
             <PassportName>{carol}</PassportName></Member></Members></Membership></memberships>"
        ),
    )
    .await;

    // alice's next MSNP12 sign-in shows the lists WLM left.
    let mut a12 = sign_in(&server, 12, alice, PW).await;
    let dump = cmd(&mut a12, "SYN {t} 0 0").await;
    let lsg: Vec<&String> = dump.iter().filter(|l| l.starts_with("LSG ")).collect();
    assert_eq!(
        lsg,
        [
            &format!("LSG Friends {friends}"),
            &format!("LSG Work {work}")
        ]
    );
    let lst: Vec<&String> = dump.iter().filter(|l| l.starts_with("LST ")).collect();
    assert_eq!(
        lst,
        [
            // bob stays allowed (WLM sends DeleteMember Allow if it wants that).
            &format!("LST N={bob} F=Bobby 10 1"),
            &format!("LST N={carol} F={carol} C={carol_id} 3 1 {work}"),
        ],
        "{dump:?}"
    );
    // And the address book agrees.
    let xml = call_ok(&server, SHARING, &ticket, "FindMembership", FIND_MEMBERSHIP).await;
    assert_eq!(
        memberships(&xml),
        vec![
            (
                "Allow".to_string(),
                vec![bob.to_string(), carol.to_string()]
            ),
            ("Block".to_string(), vec![]),
            ("Reverse".to_string(), vec![bob.to_string()]),
            ("Pending".to_string(), vec![]),
        ]
    );
}

#[tokio::test]
async fn bad_tickets_get_the_fault_and_big_bodies_413() {
    let server = start().await;
    server.add_user("alice@example.com", PW, "Alice").await;
    let (messenger, ticket, _) = tokens(&server, "alice@example.com").await;
    let forged = "t=0123456789abcdef&amp;p=0123456789abcdef";
    for bad in [forged, "", messenger.as_str()] {
        let body = ab_request(
            bad,
            "Initial",
            &format!("<FindMembership>{FIND_MEMBERSHIP}</FindMembership>"),
        );
        let (status, xml) = post(
            server.http(),
            SHARING,
            &format!("{ACTION}FindMembership"),
            &body,
        )
        .await;
        assert_eq!(status, "HTTP/1.1 500 Internal Server Error", "{bad}");
        assert!(xml.contains(">q0:BadContextToken</faultcode>"), "{xml}");
        assert!(!xml.contains("alice@example.com"));
    }
    // The real token works, also on retro-prpl's doubled-slash path.
    let body = ab_request(
        &ticket,
        "Initial",
        &format!("<FindMembership>{FIND_MEMBERSHIP}</FindMembership>"),
    );
    let (status, xml) = post(
        server.http(),
        "//abservice/SharingService.asmx",
        &format!("{ACTION}FindMembership"),
        &body,
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{xml}");
    // A delta request is told to sync fully.
    let delta = ab_request(
        &ticket,
        "Initial",
        &format!(
            "<FindMembership>{FIND_MEMBERSHIP}<View>Full</View><deltasOnly>true</deltasOnly><lastChange>2025-01-01T00:00:00Z</lastChange></FindMembership>"
        ),
    );
    let (status, xml) = post(
        server.http(),
        SHARING,
        &format!("{ACTION}FindMembership"),
        &delta,
    )
    .await;
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    assert!(
        xml.contains(
            "<faultstring>Full sync required.  Details: Delta syncs disabled.</faultstring>"
        ),
        "{xml}"
    );
    // Bodies beyond the limit, declared or not.
    let big = ab_request(
        &ticket,
        "Initial",
        &format!("<FindMembership>{}</FindMembership>", "x".repeat(70 * 1024)),
    );
    let (status, _) = post(
        server.http(),
        SHARING,
        &format!("{ACTION}FindMembership"),
        &big,
    )
    .await;
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    let chunked = format!(
        "POST {AB} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let (status, _) = http_raw(server.http(), chunked.as_bytes()).await;
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    // A token outlives nothing: once the account is deleted it is refused.
    server.add_user("gone@example.com", PW, "Gone").await;
    let (_, gone_ticket, _) = tokens(&server, "gone@example.com").await;
    let gone = ab_request(
        &gone_ticket,
        "Initial",
        &format!("<FindMembership>{FIND_MEMBERSHIP}</FindMembership>"),
    );
    let (status, _) = post(
        server.http(),
        SHARING,
        &format!("{ACTION}FindMembership"),
        &gone,
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    server
        .hub()
        .accounts
        .delete("gone@example.com")
        .await
        .unwrap();
    let (status, xml) = post(
        server.http(),
        SHARING,
        &format!("{ACTION}FindMembership"),
        &gone,
    )
    .await;
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    assert!(xml.contains(">q0:BadContextToken</faultcode>"), "{xml}");
    // An operation nobody implements is a fault, not a hang.
    let circle = ab_request(
        &ticket,
        "Initial",
        "<CreateCircle><properties/></CreateCircle>",
    );
    let (status, xml) = post(
        server.http(),
        SHARING,
        &format!("{ACTION}CreateCircle"),
        &circle,
    )
    .await;
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    assert!(xml.contains("<faultcode xmlns:q0=\"http://www.msn.com/webservices/AddressBook\">soap:Client</faultcode>"), "{xml}");
}

#[tokio::test]
async fn storage_profile_and_client_config_are_answered() {
    let server = start().await;
    let alice = "alice@example.com";
    server.add_user(alice, PW, "Alice").await;
    let (_, _, storage) = tokens(&server, alice).await;
    let envelope = |action: &str, body: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Header>\
             <StorageApplicationHeader xmlns=\"http://www.msn.com/webservices/storage/w10\"><ApplicationID>Messenger Client 9.0</ApplicationID>\
             <Scenario>{action}</Scenario></StorageApplicationHeader><StorageUserHeader xmlns=\"http://www.msn.com/webservices/storage/w10\">\
             <Puid>0</Puid><TicketToken>{storage}</TicketToken></StorageUserHeader></soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
        )
    };
    let path = "/storageservice/SchematizedStore.asmx";
    let get = envelope(
        "Initial",
        "<GetProfile xmlns=\"http://www.msn.com/webservices/storage/w10\"><profileHandle><Alias><Name>0</Name>\
         <NameSpace>MyCidStuff</NameSpace></Alias><RelationshipName>MyProfile</RelationshipName></profileHandle>\
         <profileAttributes><ResourceID>true</ResourceID><DateModified>true</DateModified><ExpressionProfileAttributes>\
         <DisplayName>true</DisplayName><PersonalStatus>true</PersonalStatus></ExpressionProfileAttributes></profileAttributes></GetProfile>",
    );
    let action = "http://www.msn.com/webservices/storage/w10/GetProfile";
    let (status, xml) = post(server.http(), path, action, &get).await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{xml}");
    assert!(
        xml.contains("<GetProfileResponse xmlns=\"http://www.msn.com/webservices/storage/w10\">"),
        "{xml}"
    );
    assert_eq!(one(&xml, "DisplayName"), "Alice");
    let alice_cid = cid(&server, alice).await;
    assert_eq!(one(&xml, "Cid"), alice_cid);

    // UpdateProfile renames her; a later MSNP12 sign-in sees the name.
    let update = envelope(
        "RoamingIdentityChanged",
        "<UpdateProfile xmlns=\"http://www.msn.com/webservices/storage/w10\"><profile><ResourceID>x!106</ResourceID>\
         <ExpressionProfile><FreeText>Update</FreeText><DisplayName>Alice in WLM</DisplayName><Flags>0</Flags></ExpressionProfile>\
         </profile></UpdateProfile>",
    );
    let (status, xml) = post(
        server.http(),
        path,
        "http://www.msn.com/webservices/storage/w10/UpdateProfile",
        &update,
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{xml}");
    let (_, xml) = post(server.http(), path, action, &get).await;
    assert_eq!(one(&xml, "DisplayName"), "Alice in WLM");
    let mut a12 = sign_in(&server, 12, alice, PW).await;
    let dump = cmd(&mut a12, "SYN {t} 0 0").await;
    assert!(
        dump.contains(&"PRP MFN Alice%20in%20WLM".to_string()),
        "{dump:?}"
    );

    // A forged storage ticket.
    let forged = get.replace(&storage, "t=1&amp;p=2");
    let (status, xml) = post(server.http(), path, action, &forged).await;
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    assert!(xml.contains("BadContextToken"), "{xml}");

    // The client configuration, as WLM 2009 fetches it.
    let (status, body) = http_get(
        server.http(),
        "/Config/MsgrConfig.asmx?op=GetClientConfig&ver=14.0.8117.416&Country=US&lc=1033",
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        body,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><MsgrConfig><Simple><Config><ExpiresInDays>0</ExpiresInDays></Config></Simple></MsgrConfig>"
    );
}

#[tokio::test]
async fn group_renames_deletes_and_privacy_reach_the_older_dialects() {
    let server = start().await;
    let (alice, bob) = ("alice@example.com", "bob@example.com");
    server.add_user(alice, PW, "Alice").await;
    server.add_user(bob, PW, "Bob").await;
    // bob (MSNP12) adds alice before she ever used WLM: she has not
    // decided on him, so WLM finds him pending (and asks her).
    let mut b12 = sign_in(&server, 12, bob, PW).await;
    cmd(&mut b12, "SYN {t} 0 0").await;
    cmd(&mut b12, &format!("ADC {{t}} FL N={alice} F=Alice")).await;
    let (_, ticket, _) = tokens(&server, alice).await;
    let xml = call_ok(&server, SHARING, &ticket, "FindMembership", FIND_MEMBERSHIP).await;
    assert_eq!(
        memberships(&xml),
        vec![
            ("Allow".to_string(), vec![]),
            ("Block".to_string(), vec![]),
            ("Reverse".to_string(), vec![]),
            ("Pending".to_string(), vec![bob.to_string()]),
        ]
    );
    // She accepts as WLM does: AddMember Allow, then DeleteMember Pending
    // by the MembershipId it was given.
    let pending_id = one(&xml, "MembershipId").to_string();
    let member = |role: &str, who: &str| {
        format!(
            "<serviceHandle><Id>0</Id><Type>Messenger</Type><ForeignId></ForeignId></serviceHandle><memberships><Membership>\
             <MemberRole>{role}</MemberRole><Members><Member xsi:type=\"PassportMember\"><Type>Passport</Type><State>Accepted</State>\
             {who}</Member></Members></Membership></memberships>"
        )
    };
    call_ok(
        &server,
        SHARING,
        &ticket,
        "AddMember",
        &member("Allow", &format!("<PassportName>{bob}</PassportName>")),
    )
    .await;
    call_ok(
        &server,
        SHARING,
        &ticket,
        "DeleteMember",
        &member(
            "Pending",
            &format!("<MembershipId>{pending_id}</MembershipId>"),
        ),
    )
    .await;
    let xml = call_ok(&server, SHARING, &ticket, "FindMembership", FIND_MEMBERSHIP).await;
    assert_eq!(
        memberships(&xml),
        vec![
            ("Allow".to_string(), vec![bob.to_string()]),
            ("Block".to_string(), vec![]),
            ("Reverse".to_string(), vec![bob.to_string()]),
            ("Pending".to_string(), vec![]),
        ]
    );
    // An unknown MembershipId is the reference's fault.
    let unknown = ab_request(
        &ticket,
        "BlockUnblock",
        &format!(
            "<DeleteMember>{}</DeleteMember>",
            member("Block", "<MembershipId>Block/999</MembershipId>")
        ),
    );
    let (_, xml) = post(
        server.http(),
        SHARING,
        &format!("{ACTION}DeleteMember"),
        &unknown,
    )
    .await;
    assert!(xml.contains(">MemberDoesNotExist</errorcode>"), "{xml}");

    let xml = call_ok(
        &server,
        AB,
        &ticket,
        "ABGroupAdd",
        "<groupInfo><GroupInfo><name>Old</name></GroupInfo></groupInfo>",
    )
    .await;
    let old = one(&xml, "guid").to_string();
    let xml = call_ok(
        &server,
        AB,
        &ticket,
        "ABGroupAdd",
        "<groupInfo><GroupInfo><name>Gone</name></GroupInfo></groupInfo>",
    )
    .await;
    let gone = one(&xml, "guid").to_string();
    // The same name twice, and a name too long for the older dialects.
    let twice = ab_request(
        &ticket,
        "GroupSave",
        "<ABGroupAdd><groupInfo><GroupInfo><name>Old</name></GroupInfo></groupInfo></ABGroupAdd>",
    );
    let (_, xml) = post(server.http(), AB, &format!("{ACTION}ABGroupAdd"), &twice).await;
    assert!(xml.contains(">GroupAlreadyExists</errorcode>"), "{xml}");
    let long = twice.replace(">Old<", &format!(">{}<", "n".repeat(62)));
    let (_, xml) = post(server.http(), AB, &format!("{ACTION}ABGroupAdd"), &long).await;
    assert!(xml.contains(">GroupNameTooLong</errorcode>"), "{xml}");

    call_ok(
        &server,
        AB,
        &ticket,
        "ABGroupUpdate",
        &format!("<groups><Group><groupId>{old}</groupId><groupInfo><name>New</name></groupInfo><propertiesChanged>GroupName</propertiesChanged></Group></groups>"),
    )
    .await;
    call_ok(
        &server,
        AB,
        &ticket,
        "ABGroupDelete",
        &format!("<groupFilter><groupIds><guid>{gone}</guid></groupIds></groupFilter>"),
    )
    .await;
    // Adding bob straight into a group, then renaming him.
    let xml = call_ok(
        &server,
        AB,
        &ticket,
        "ABGroupContactAdd",
        &format!("<groupFilter><groupIds><guid>{old}</guid></groupIds></groupFilter><contacts><Contact><contactInfo><passportName>{bob}</passportName></contactInfo></Contact></contacts>"),
    )
    .await;
    let bob_id = one(&xml, "guid").to_string();
    call_ok(
        &server,
        AB,
        &ticket,
        "ABContactUpdate",
        &format!(
            "<contacts><Contact><contactId>{bob_id}</contactId><contactInfo><annotations><Annotation><Name>AB.NickName</Name>\
             <Value>Bobby</Value></Annotation></annotations></contactInfo><propertiesChanged>Annotation</propertiesChanged></Contact></contacts>"
        ),
    )
    .await;
    // The owner's own entry: only-allowed-contacts privacy, and a new name.
    call_ok(
        &server,
        AB,
        &ticket,
        "ABContactUpdate",
        "<contacts><Contact><contactInfo><contactType>Me</contactType><displayName>Alice W</displayName><annotations>\
         <Annotation><Name>MSN.IM.BLP</Name><Value>2</Value></Annotation></annotations></contactInfo>\
         <propertiesChanged>DisplayName Annotation</propertiesChanged></Contact></contacts>",
    )
    .await;
    // The book shows it all, and so does an MSNP12 sign-in.
    let xml = call_ok(&server, AB, &ticket, "ABFindContactsPaged", FIND_PAGED).await;
    assert!(
        xml.contains("<Annotation><Name>MSN.IM.BLP</Name><Value>2</Value></Annotation>"),
        "{xml}"
    );
    assert_eq!(all(&xml, "displayName"), ["Alice W", "Bobby"]);
    let mut a12 = sign_in(&server, 12, alice, PW).await;
    let dump = cmd(&mut a12, "SYN {t} 0 0").await;
    let interesting: Vec<&String> = dump
        .iter()
        .filter(|l| {
            ["BLP", "PRP MFN", "LSG", "LST"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert_eq!(
        interesting,
        [
            "BLP BL",
            "PRP MFN Alice%20W",
            &format!("LSG New {old}"),
            &format!("LST N={bob} F=Bobby C={bob_id} 11 1 {old}"),
        ],
        "{dump:?}"
    );
}
