use super::*;
use crate::cid::Cid;

/// 2025-01-01T00:00:00Z.
const T0: u64 = 1_735_689_600;

/// A request envelope as retro-prpl / WLM 2009 write them (header, then `body`).
fn request(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\n  <soap:Header>\n\
         <ABApplicationHeader xmlns=\"http://www.msn.com/webservices/AddressBook\"><ApplicationId>CFE80F9D-180F-4399-82AB-413F33A1FA11</ApplicationId>\
         <IsMigration>false</IsMigration><PartnerScenario>Initial</PartnerScenario></ABApplicationHeader>\n\
         <ABAuthHeader xmlns=\"http://www.msn.com/webservices/AddressBook\"><ManagedGroupRequest>false</ManagedGroupRequest>\
         <TicketToken>t=abc&amp;p=def</TicketToken></ABAuthHeader></soap:Header>\n  <soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

#[test]
fn the_operation_is_the_first_body_element_and_the_ticket_is_unescaped() {
    let xml = request(
        "<!-- x --><FindMembership xmlns=\"http://www.msn.com/webservices/AddressBook\"><serviceFilter><Types>\
         <ServiceType>Messenger</ServiceType><ServiceType>Invitation</ServiceType></Types></serviceFilter></FindMembership>",
    );
    let (envelope, parsed) = parse(
        Some("\"http://www.msn.com/webservices/AddressBook/ABFindAll\""),
        &xml,
    )
    .unwrap();
    assert_eq!(envelope.ticket_token.as_deref(), Some("t=abc&p=def"));
    assert_eq!(envelope.operation, "FindMembership");
    assert_eq!(parsed, Request::FindMembership { deltas_only: false });
    // No body element: the SOAPAction decides.
    let (envelope, _) = parse(
        Some("http://www.msn.com/webservices/AddressBook/ABAdd"),
        "<Envelope><Body></Body></Envelope>",
    )
    .unwrap();
    assert_eq!(envelope.operation, "ABAdd");
    assert_eq!(envelope.ticket_token, None);
    assert_eq!(parse(None, "no xml"), Err(ParseError::NoBody));
    assert_eq!(
        parse(None, &request("<CreateCircle/>")),
        Err(ParseError::Unsupported("CreateCircle".into()))
    );
}

#[test]
fn find_requests_say_whether_they_want_deltas() {
    let paged = request(
        "<ABFindContactsPaged xmlns=\"http://www.msn.com/webservices/AddressBook\"><abView>Full</abView>\
         <extendedContent>AB AllGroups CircleResult</extendedContent><filterOptions><DeltasOnly>false</DeltasOnly>\
         <deltasOnly>true</deltasOnly><lastChange>2025-01-01T00:00:00Z</lastChange></filterOptions></ABFindContactsPaged>",
    );
    assert_eq!(
        parse(None, &paged).unwrap().1,
        Request::AbFindContactsPaged {
            deltas_only: true,
            other_book: None
        }
    );
    let circle = request(
        "<ABFindContactsPaged><abHandle><ABId>00000000-0000-0000-0009-000000000001</ABId></abHandle></ABFindContactsPaged>",
    );
    assert_eq!(
        parse(None, &circle).unwrap().1,
        Request::AbFindContactsPaged {
            deltas_only: false,
            other_book: Some("00000000-0000-0000-0009-000000000001".into())
        }
    );
    let capital = request(
        "<ABFindContactsPaged><filterOptions><DeltasOnly>true</DeltasOnly></filterOptions></ABFindContactsPaged>",
    );
    assert_eq!(
        parse(None, &capital).unwrap().1,
        Request::AbFindContactsPaged {
            deltas_only: true,
            other_book: None
        }
    );
    let all = request(
        "<ABFindAll><abId>00000000-0000-0000-0000-000000000000</abId><abView>Full</abView><deltasOnly>false</deltasOnly></ABFindAll>",
    );
    assert_eq!(
        parse(None, &all).unwrap().1,
        Request::AbFindAll { deltas_only: false }
    );
}

#[test]
fn contact_edits_are_read() {
    let add = request(
        "<ABContactAdd xmlns=\"http://www.msn.com/webservices/AddressBook\"><abId>00000000-0000-0000-0000-000000000000</abId>\
         <contacts><Contact xmlns=\"http://www.msn.com/webservices/AddressBook\"><contactInfo><contactType>LivePending</contactType>\
         <passportName> bob@example.com </passportName><isMessengerUser>true</isMessengerUser>\
         <annotations><Annotation><Name>AB.NickName</Name><Value>Bobby &amp; co</Value></Annotation></annotations>\
         </contactInfo></Contact></contacts><options><EnableAllowListManagement>true</EnableAllowListManagement></options></ABContactAdd>",
    );
    assert_eq!(
        parse(None, &add).unwrap().1,
        Request::ContactAdd(vec![NewContact {
            address: "bob@example.com".into(),
            name: Some("Bobby & co".into())
        }])
    );
    let delete = request(
        "<ABContactDelete><abId>00000000-0000-0000-0000-000000000000</abId><contacts><Contact><contactId>{6b1a0f6e-0000-0000-0000-000000000002}</contactId></Contact>\
         <Contact><contactId>6b1a0f6e-0000-0000-0000-000000000003</contactId></Contact></contacts></ABContactDelete>",
    );
    assert_eq!(
        parse(None, &delete).unwrap().1,
        Request::ContactDelete(vec![
            "6b1a0f6e-0000-0000-0000-000000000002".into(),
            "6b1a0f6e-0000-0000-0000-000000000003".into()
        ])
    );
    assert_eq!(
        parse(
            None,
            &request("<ABContactDelete><contacts/></ABContactDelete>")
        ),
        Err(ParseError::Missing("contacts/Contact/contactId"))
    );
    let update = request(
        "<ABContactUpdate><contacts><Contact><contactInfo><contactType>Me</contactType><displayName>Alice W</displayName>\
         <annotations><Annotation><Name>MSN.IM.BLP</Name><Value>2</Value></Annotation></annotations></contactInfo>\
         <propertiesChanged>DisplayName Annotation</propertiesChanged></Contact></contacts></ABContactUpdate>",
    );
    assert_eq!(
        parse(None, &update).unwrap().1,
        Request::ContactUpdate(vec![ContactUpdate {
            contact_id: None,
            is_me: true,
            display_name: Some("Alice W".into()),
            nickname: None,
            annotations: vec![("MSN.IM.BLP".into(), "2".into())],
            properties_changed: vec!["DisplayName".into(), "Annotation".into()],
        }])
    );
}

#[test]
fn group_edits_are_read() {
    let add = request(
        "<ABGroupAdd><abId>00000000-0000-0000-0000-000000000000</abId><groupAddOptions><fRenameOnMsgrConflict>false</fRenameOnMsgrConflict></groupAddOptions>\
         <groupInfo><GroupInfo><name>Work &lt;3</name><groupType>C8529CE2-6EAD-434d-881F-341E17DB3FF8</groupType>\
         <fMessenger>false</fMessenger><annotations><Annotation><Name>MSN.IM.Display</Name><Value>1</Value></Annotation></annotations></GroupInfo></groupInfo></ABGroupAdd>",
    );
    assert_eq!(
        parse(None, &add).unwrap().1,
        Request::GroupAdd {
            name: "Work <3".into()
        }
    );
    let delete = request(
        "<ABGroupDelete><groupFilter><groupIds><guid>g-1</guid></groupIds></groupFilter></ABGroupDelete>",
    );
    assert_eq!(
        parse(None, &delete).unwrap().1,
        Request::GroupDelete(vec!["g-1".into()])
    );
    let update = request(
        "<ABGroupUpdate><groups><Group><groupId>g-1</groupId><groupInfo><name>Mates</name></groupInfo>\
         <propertiesChanged>GroupName</propertiesChanged></Group></groups></ABGroupUpdate>",
    );
    assert_eq!(
        parse(None, &update).unwrap().1,
        Request::GroupUpdate(vec![("g-1".into(), "Mates".into())])
    );
    let contact_add = request(
        "<ABGroupContactAdd><groupFilter><groupIds><guid>g-1</guid></groupIds></groupFilter><contacts>\
         <Contact><contactId>c-1</contactId></Contact><Contact><contactInfo><passportName>carol@example.com</passportName>\
         </contactInfo></Contact></contacts><groupContactAddOptions><fGenerateMissingQuickName>true</fGenerateMissingQuickName></groupContactAddOptions></ABGroupContactAdd>",
    );
    assert_eq!(
        parse(None, &contact_add).unwrap().1,
        Request::GroupContactAdd {
            group_ids: vec!["g-1".into()],
            contacts: vec![
                ContactRef::Id("c-1".into()),
                ContactRef::Address(NewContact {
                    address: "carol@example.com".into(),
                    name: None
                })
            ]
        }
    );
    let contact_delete = request(
        "<ABGroupContactDelete><contacts><Contact><contactId>c-1</contactId></Contact></contacts>\
         <groupFilter><groupIds><guid>g-1</guid></groupIds></groupFilter></ABGroupContactDelete>",
    );
    assert_eq!(
        parse(None, &contact_delete).unwrap().1,
        Request::GroupContactDelete {
            group_ids: vec!["g-1".into()],
            contact_ids: vec!["c-1".into()]
        }
    );
}

#[test]
fn member_edits_are_read() {
    let add = request(
        "<AddMember xmlns=\"http://www.msn.com/webservices/AddressBook\"><serviceHandle><Id>0</Id><Type>Messenger</Type><ForeignId></ForeignId></serviceHandle>\
         <memberships><Membership><MemberRole>Block</MemberRole><Members><Member xsi:type=\"PassportMember\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\
         <Type>Passport</Type><State>Accepted</State><PassportName>bob@example.com</PassportName></Member></Members></Membership>\
         <Membership><MemberRole>ProfileExpression</MemberRole><Members><Member><PassportName>x@y.z</PassportName></Member></Members></Membership>\
         </memberships></AddMember>",
    );
    assert_eq!(
        parse(None, &add).unwrap().1,
        Request::AddMember(vec![MembershipEdit {
            role: Role::Block,
            members: vec![MemberRef::Address("bob@example.com".into())]
        }])
    );
    let delete = request(
        "<DeleteMember><serviceHandle><Id>0</Id><Type>Messenger</Type></serviceHandle><memberships>\
         <Membership><MemberRole>Pending</MemberRole><Members><Member><Type>Passport</Type><MembershipId>12</MembershipId></Member>\
         <Member><MembershipId>Pending/34</MembershipId></Member><Member><Email>eve@example.com</Email></Member></Members></Membership>\
         </memberships></DeleteMember>",
    );
    assert_eq!(
        parse(None, &delete).unwrap().1,
        Request::DeleteMember(vec![MembershipEdit {
            role: Role::Pending,
            members: vec![
                MemberRef::MembershipId(12),
                MemberRef::MembershipId(34),
                MemberRef::Address("eve@example.com".into())
            ]
        }])
    );
}

#[test]
fn requests_are_bounded() {
    let mut body = String::from("<ABContactDelete><contacts>");
    for n in 0..500 {
        body.push_str(&format!("<Contact><contactId>c-{n}</contactId></Contact>"));
    }
    body.push_str("</contacts></ABContactDelete>");
    let Request::ContactDelete(ids) = parse(None, &request(&body)).unwrap().1 else {
        panic!("a delete");
    };
    assert_eq!(ids.len(), MAX_ITEMS);
    let long = "x".repeat(10_000);
    let add = request(&format!(
        "<ABGroupAdd><groupInfo><GroupInfo><name>{long}</name></GroupInfo></groupInfo></ABGroupAdd>"
    ));
    let Request::GroupAdd { name } = parse(None, &add).unwrap().1 else {
        panic!("a group add");
    };
    assert_eq!(name.len(), MAX_TEXT);
    for hostile in [
        "<".repeat(65_536),
        "<Body>".repeat(10_000),
        "<Body><ABContactAdd><Contact>".repeat(2_000),
    ] {
        let _ = parse(None, &hostile);
    }
}

const HEADER: ServiceHeader<'static> = ServiceHeader {
    host: "contacts.example.com",
    session_id: "11111111-2222-3333-4444-555555555555",
};

fn owner() -> Owner<'static> {
    Owner {
        handle: "alice@example.com",
        cid: Cid(42),
        friendly_name: "Alice & co",
        allow_unlisted: true,
        auto_allow: false,
    }
}

#[test]
fn edit_answers_are_exact() {
    assert_eq!(
        answer(&HEADER, &guid_response("ABContactAdd", &["c-1".into()])),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">\
         <soap:Header><ServiceHeader xmlns=\"http://www.msn.com/webservices/AddressBook\"><Version>15.01.1408.0000</Version>\
         <CacheKey>12r1:msngate</CacheKey><CacheKeyChanged>true</CacheKeyChanged><PreferredHostName>contacts.example.com</PreferredHostName>\
         <SessionId>11111111-2222-3333-4444-555555555555</SessionId></ServiceHeader></soap:Header><soap:Body>\
         <ABContactAddResponse xmlns=\"http://www.msn.com/webservices/AddressBook\"><ABContactAddResult><guid>c-1</guid></ABContactAddResult>\
         </ABContactAddResponse></soap:Body></soap:Envelope>"
    );
    assert_eq!(
        empty_response("DeleteMember"),
        "<DeleteMemberResponse xmlns=\"http://www.msn.com/webservices/AddressBook\"/>"
    );
    assert_eq!(
        ab_add_response(),
        "<ABAddResponse xmlns=\"http://www.msn.com/webservices/AddressBook\"><ABAddResult>00000000-0000-0000-0000-000000000000</ABAddResult></ABAddResponse>"
    );
}

#[test]
fn faults_are_exact() {
    assert_eq!(
        fault(
            "soap:Client",
            "Contact Already Exists",
            "ContactAlreadyExists"
        ),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><soap:Body><soap:Fault>\
         <faultcode xmlns:q0=\"http://www.msn.com/webservices/AddressBook\">soap:Client</faultcode><faultstring>Contact Already Exists</faultstring>\
         <faultactor>http://www.msn.com/webservices/AddressBook/abservice.asmx</faultactor><detail>\
         <errorcode xmlns=\"http://www.msn.com/webservices/AddressBook\">ContactAlreadyExists</errorcode>\
         <errorstring xmlns=\"http://www.msn.com/webservices/AddressBook\">Contact Already Exists</errorstring>\
         <machineName xmlns=\"http://www.msn.com/webservices/AddressBook\">msngate</machineName></detail></soap:Fault></soap:Body></soap:Envelope>"
    );
    assert!(bad_context_token().contains("<faultcode xmlns:q0=\"http://www.msn.com/webservices/AddressBook\">q0:BadContextToken</faultcode>"));
    assert!(full_sync_required().contains(
        "<faultstring>Full sync required.  Details: Delta syncs disabled.</faultstring>"
    ));
    assert!(full_sync_required().contains(">FullSyncRequired</errorcode>"));
}

#[test]
fn find_membership_is_exact() {
    let members = [MemberEntry {
        role: Role::Allow,
        membership_id: 7,
        handle: "bob@example.com".into(),
        cid: Cid(86_462_192_878_292_122),
    }];
    let body = find_membership_response(&owner(), &members, T0);
    let allow = "<Membership><MemberRole>Allow</MemberRole><Members><Member xsi:type=\"PassportMember\"><MembershipId>7</MembershipId>\
        <Type>Passport</Type><State>Accepted</State><Deleted>false</Deleted><LastChanged>2025-01-01T00:00:00Z</LastChanged>\
        <JoinedDate>2025-01-01T00:00:00Z</JoinedDate><ExpirationDate>0001-01-01T00:00:00</ExpirationDate><Changes/>\
        <PassportName>bob@example.com</PassportName><IsPassportNameHidden>false</IsPassportNameHidden><PassportId>0</PassportId>\
        <CID>86462192878292122</CID><PassportChanges/><LookedupByCID>false</LookedupByCID></Member></Members>\
        <MembershipIsComplete>true</MembershipIsComplete></Membership>";
    let empty = |role: &str| {
        format!(
            "<Membership><MemberRole>{role}</MemberRole><Members/><MembershipIsComplete>true</MembershipIsComplete></Membership>"
        )
    };
    let expected = format!(
        "<FindMembershipResponse xmlns=\"http://www.msn.com/webservices/AddressBook\"><FindMembershipResult><Services><Service>\
         <Memberships>{allow}{}{}{}</Memberships><Info><Handle><Id>1</Id><Type>Messenger</Type><ForeignId/></Handle>\
         <InverseRequired>false</InverseRequired><AuthorizationCriteria>Everyone</AuthorizationCriteria><IsBot>false</IsBot></Info>\
         <Changes/><LastChange>2025-01-01T00:00:00Z</LastChange><Deleted>false</Deleted></Service></Services>\
         <OwnerNamespace><Info><Handle><Id>00000000-0000-0000-0000-000000000000</Id><IsPassportNameHidden>false</IsPassportNameHidden>\
         <CID>0</CID></Handle><CreatorPuid>0</CreatorPuid><CreatorCID>42</CreatorCID><CreatorPassportName>alice@example.com</CreatorPassportName>\
         <CircleAttributes><IsPresenceEnabled>false</IsPresenceEnabled><Domain>WindowsLive</Domain></CircleAttributes>\
         <MessengerApplicationServiceCreated>false</MessengerApplicationServiceCreated></Info><Changes/>\
         <CreateDate>2025-01-01T00:00:00Z</CreateDate><LastChange>2025-01-01T00:00:00Z</LastChange></OwnerNamespace>\
         </FindMembershipResult></FindMembershipResponse>",
        empty("Block"),
        empty("Reverse"),
        empty("Pending"),
    );
    assert_eq!(body, expected);
}

#[test]
fn find_contacts_is_exact_in_both_spellings() {
    let groups = [AbGroup {
        group_id: "g-1".into(),
        name: "Friends".into(),
    }];
    let contacts = [AbContact {
        contact_id: "6b1a0f6e-0000-0000-0000-000000000002".into(),
        handle: "bob@example.com".into(),
        cid: Cid(u64::MAX),
        display_name: "Bob".into(),
        group_ids: vec!["g-1".into()],
    }];
    let tail = "<isMessengerUser>true</isMessengerUser><isFavorite>false</isFavorite><isSmtp>false</isSmtp><hasSpace>false</hasSpace>\
        <spotWatchState>NoDevice</spotWatchState><birthdate>0001-01-01T00:00:00</birthdate><primaryEmailType>ContactEmailPersonal</primaryEmailType>\
        <PrimaryLocation>ContactLocationPersonal</PrimaryLocation><PrimaryPhone>ContactPhonePersonal</PrimaryPhone><IsPrivate>false</IsPrivate>\
        <Gender>Unspecified</Gender><TimeZone>None</TimeZone>";
    let group = "<Group><groupId>g-1</groupId><groupInfo><annotations><Annotation><Name>MSN.IM.Display</Name><Value>1</Value></Annotation>\
        </annotations><groupType>c8529ce2-6ead-434d-881f-341e17db3ff8</groupType><name>Friends</name><IsNotMobileVisible>false</IsNotMobileVisible>\
        <IsPrivate>false</IsPrivate><IsFavorite>false</IsFavorite></groupInfo><propertiesChanged/><fDeleted>false</fDeleted>\
        <lastChange>2025-01-01T00:00:00Z</lastChange></Group>";
    let me = format!(
        "<Contact><contactId>00000000-0000-0000-0000-00000000002a</contactId><contactInfo><annotations>\
         <Annotation><Name>MSN.IM.MBEA</Name><Value>0</Value></Annotation><Annotation><Name>MSN.IM.GTC</Name><Value>1</Value>\
         </Annotation><Annotation><Name>MSN.IM.BLP</Name><Value>1</Value></Annotation></annotations><contactType>Me</contactType>\
         <quickName>Alice &amp; co</quickName><passportName>alice@example.com</passportName><IsPassportNameHidden>false</IsPassportNameHidden>\
         <displayName>Alice &amp; co</displayName><puid>0</puid><CID>42</CID>{tail}</contactInfo><propertiesChanged/>\
         <fDeleted>false</fDeleted><lastChange>2025-01-01T00:00:00Z</lastChange></Contact>"
    );
    let bob = format!(
        "<Contact><contactId>6b1a0f6e-0000-0000-0000-000000000002</contactId><contactInfo><contactType>Regular</contactType>\
         <quickName>Bob</quickName><passportName>bob@example.com</passportName><IsPassportNameHidden>false</IsPassportNameHidden>\
         <displayName>Bob</displayName><puid>0</puid><groupIds><guid>g-1</guid></groupIds><CID>-1</CID>{tail}</contactInfo>\
         <propertiesChanged/><fDeleted>false</fDeleted><lastChange>2025-01-01T00:00:00Z</lastChange></Contact>"
    );
    let ab = "<abId>00000000-0000-0000-0000-000000000000</abId><abInfo><ownerPuid>0</ownerPuid><OwnerCID>42</OwnerCID>\
        <ownerEmail>alice@example.com</ownerEmail><fDefault>true</fDefault><joinedNamespace>false</joinedNamespace><IsBot>false</IsBot>\
        <IsParentManaged>false</IsParentManaged><SubscribeExternalPartner>false</SubscribeExternalPartner>\
        <NotifyExternalPartner>false</NotifyExternalPartner><AddressBookType>Individual</AddressBookType></abInfo>\
        <lastChange>2025-01-01T00:00:00Z</lastChange><DynamicItemLastChanged>0001-01-01T00:00:00</DynamicItemLastChanged>\
        <createDate>2025-01-01T00:00:00Z</createDate><propertiesChanged/>";
    assert_eq!(
        find_contacts_response(FindKind::Paged, &owner(), &groups, &contacts, T0),
        format!(
            "<ABFindContactsPagedResponse xmlns=\"http://www.msn.com/webservices/AddressBook\"><ABFindContactsPagedResult>\
             <Groups>{group}</Groups><Contacts>{me}{bob}</Contacts><CircleResult><CircleTicket>msngate-no-circles</CircleTicket>\
             </CircleResult><Ab>{ab}</Ab></ABFindContactsPagedResult></ABFindContactsPagedResponse>"
        )
    );
    assert_eq!(
        find_contacts_response(FindKind::All, &owner(), &groups, &contacts, T0),
        format!(
            "<ABFindAllResponse xmlns=\"http://www.msn.com/webservices/AddressBook\"><ABFindAllResult>\
             <groups>{group}</groups><contacts>{me}{bob}</contacts><ab>{ab}</ab></ABFindAllResult></ABFindAllResponse>"
        )
    );
}

#[test]
fn answers_have_no_whitespace_between_elements() {
    let body = find_contacts_response(FindKind::Paged, &owner(), &[], &[], T0);
    let doc = answer(&HEADER, &body);
    assert!(!doc.contains('\n') && !doc.contains("> <"), "{doc}");
    let profile = storage_answer(
        "http://www.msn.com/webservices/storage/w10",
        Cid(42),
        &get_profile_response(
            "http://www.msn.com/webservices/storage/w10",
            Cid(42),
            "A",
            "",
            T0,
        ),
    );
    assert!(
        !profile.contains('\n') && !profile.contains("> <"),
        "{profile}"
    );
}

#[test]
fn storage_documents() {
    let ns = storage_namespace(
        Some("http://www.msn.com/webservices/storage/2008/GetProfile"),
        "",
    );
    assert_eq!(ns, "http://www.msn.com/webservices/storage/2008");
    assert_eq!(
        storage_namespace(None, "<x/>"),
        "http://www.msn.com/webservices/storage/w10"
    );
    assert_eq!(
        get_profile_response("urn:s", Cid(0x2a), "Alice <3", "hi", T0),
        "<GetProfileResponse xmlns=\"urn:s\"><GetProfileResult><ResourceID>000000000000002A!106</ResourceID>\
         <DateModified>2025-01-01T00:00:00Z</DateModified><ExpressionProfile><ResourceID>000000000000002A!118</ResourceID>\
         <DateModified>2025-01-01T00:00:00Z</DateModified><Version>1</Version><Flags>0</Flags><PersonalStatus>hi</PersonalStatus>\
         <PersonalStatusLastModified>2025-01-01T00:00:00Z</PersonalStatusLastModified><DisplayName>Alice &lt;3</DisplayName>\
         <DisplayNameLastModified>2025-01-01T00:00:00Z</DisplayNameLastModified><StaticUserTilePublicURL></StaticUserTilePublicURL>\
         </ExpressionProfile></GetProfileResult></GetProfileResponse>"
    );
    let update = "<UpdateProfile><profile><ResourceID>x</ResourceID><ExpressionProfile><FreeText>Update</FreeText>\
        <DisplayName>New &amp; name</DisplayName></ExpressionProfile></profile></UpdateProfile>";
    assert_eq!(update_profile(update), (Some("New & name".into()), None));
}

#[test]
fn me_contact_ids_are_guids_made_of_the_cid() {
    assert_eq!(
        me_contact_id(Cid(0x0123_4567_89ab_cdef)),
        "00000000-0000-0000-0123-456789abcdef"
    );
}

proptest::proptest! {
    #[test]
    fn any_text_is_read_without_panicking(text in ".{0,400}", action in "[ -~]{0,40}") {
        let _ = parse(Some(&action), &text);
        let _ = update_profile(&text);
        let _ = storage_namespace(Some(&action), &text);
    }

    #[test]
    fn names_survive_escaping(name in "[!-~]([ -~é€]{0,40}[!-~])?") {
        let xml = request(&format!(
            "<ABGroupAdd><groupInfo><GroupInfo><name>{}</name></GroupInfo></groupInfo></ABGroupAdd>",
            escape(&name)
        ));
        proptest::prop_assert_eq!(parse(None, &xml).unwrap().1, Request::GroupAdd { name: name.clone() });
        let body = find_contacts_response(
            FindKind::All,
            &owner(),
            &[AbGroup { group_id: "g".into(), name: name.clone() }],
            &[],
            T0,
        );
        let expected = format!("<name>{}</name>", escape(&name));
        proptest::prop_assert!(body.contains(&expected));
    }
}
