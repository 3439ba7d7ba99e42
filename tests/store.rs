//! The store on both backends: SQLite always, PostgreSQL when
//! `MSNGATE_TEST_POSTGRES_URL` is set (scripts/test.sh sets it; under CI its
//! absence is a failure, not a skip).

use msngate::store::{AccountField, AccountRow, Change, GroupRow, Store, StoreError};

fn account(id: i64, handle: &str) -> AccountRow {
    AccountRow {
        id,
        handle: handle.into(),
        friendly_name: "Name ✓".into(),
        password_hash: "$argon2id$x".into(),
        legacy_salt: Some("1.2".into()),
        legacy_digest: Some("abc".into()),
        blp: "AL".into(),
        gtc: "A".into(),
        list_version: 1,
        personal_message: String::new(),
        created_at: 5,
    }
}

async fn exercise(store: &Store) {
    let (a, b) = (account(1, "a@example.com"), account(2, "b@example.com"));
    store.create_account(&a).await.unwrap();
    store.create_account(&b).await.unwrap();
    assert!(matches!(
        store.create_account(&a).await,
        Err(StoreError::Conflict)
    ));
    let loaded = store
        .account_by_handle("a@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.friendly_name, "Name ✓");
    assert_eq!(loaded.legacy_salt.as_deref(), Some("1.2"));

    // Bits are OR-ed and cleared independently: two writers never overwrite each other.
    store
        .apply(&[
            Change::AddLists {
                account_id: 1,
                handle: "b@example.com".into(),
                guid: "g1".into(),
                stored_name: "B".into(),
                bits: 1,
            },
            Change::AddLists {
                account_id: 1,
                handle: "b@example.com".into(),
                guid: "ignored".into(),
                stored_name: "x".into(),
                bits: 2,
            },
            Change::UpsertGroup {
                account_id: 1,
                group: GroupRow {
                    number: 1,
                    guid: "gg".into(),
                    name: "Friends".into(),
                },
            },
            Change::AddMembership {
                account_id: 1,
                handle: "b@example.com".into(),
                group: 1,
            },
            Change::AddMembership {
                account_id: 1,
                handle: "b@example.com".into(),
                group: 1,
            },
            Change::SetField {
                account_id: 1,
                field: AccountField::Blp,
                value: "BL".into(),
            },
            Change::SetProperty {
                account_id: 1,
                name: "PHH".into(),
                value: "555 1234".into(),
            },
            Change::BumpListVersion { account_id: 1 },
            Change::BumpListVersion { account_id: 1 },
        ])
        .await
        .unwrap();
    let roster = store.load_roster(1).await.unwrap();
    assert_eq!(roster.contacts.len(), 1);
    assert_eq!(roster.contacts[0].lists, 3);
    assert_eq!(roster.contacts[0].guid, "g1");
    assert_eq!(roster.memberships, vec![("b@example.com".to_string(), 1)]);
    assert_eq!(
        roster.properties,
        vec![("PHH".to_string(), "555 1234".to_string())]
    );
    let a = store
        .account_by_handle("a@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.blp.as_str(), a.list_version), ("BL", 3));

    // A failing batch leaves nothing behind (atomicity).
    let bad = store
        .apply(&[
            Change::SetField {
                account_id: 1,
                field: AccountField::FriendlyName,
                value: "Half".into(),
            },
            Change::UpsertGroup {
                account_id: 999,
                group: GroupRow {
                    number: 1,
                    guid: "x".into(),
                    name: "x".into(),
                },
            },
        ])
        .await;
    assert!(
        bad.is_err(),
        "a change for a missing account must violate the foreign key"
    );
    assert_eq!(
        store
            .account_by_handle("a@example.com")
            .await
            .unwrap()
            .unwrap()
            .friendly_name,
        "Name ✓"
    );

    // Removing the last list deletes the row and its memberships.
    store
        .apply(&[Change::RemoveLists {
            account_id: 1,
            handle: "b@example.com".into(),
            bits: 3,
        }])
        .await
        .unwrap();
    let roster = store.load_roster(1).await.unwrap();
    assert!(roster.contacts.is_empty() && roster.memberships.is_empty());

    assert!(store.delete_account("b@example.com").await.unwrap());
    assert!(!store.delete_account("b@example.com").await.unwrap());
    assert_eq!(store.list_accounts().await.unwrap().len(), 1);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    // The folder does not exist yet: first start creates it and the file.
    let url = format!("sqlite://{}/nested/data/msngate.db", dir.path().display());
    let store = Store::connect(&url, 4).await.unwrap();
    exercise(&store).await;
    // Migrations run again harmlessly on the next start.
    drop(store);
    let again = Store::connect(&url, 4).await.unwrap();
    assert_eq!(again.list_accounts().await.unwrap().len(), 1);
}

#[tokio::test]
async fn store_on_postgres() {
    if std::env::var("MSNGATE_TEST_POSTGRES_URL").is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must provide PostgreSQL (scripts/test.sh starts one)"
        );
        eprintln!(
            "MSNGATE_TEST_POSTGRES_URL not set: PostgreSQL store test not run (run scripts/test.sh)"
        );
        return;
    }
    // SAFETY-free: only this test reads the variable in this process.
    let dir = tempfile::tempdir().unwrap();
    let url = {
        // database_url() honours MSNGATE_TEST_BACKEND; ask for PostgreSQL explicitly.
        let admin = std::env::var("MSNGATE_TEST_POSTGRES_URL").unwrap();
        let name = format!("msngate_store_{}", msngate::core::tickets::random_hex());
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap();
        let _ = dir;
        format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
    };
    let store = Store::connect(&url, 4).await.unwrap();
    assert_eq!(store.backend(), msngate::store::Backend::Postgres);
    exercise(&store).await;
}
