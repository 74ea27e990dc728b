//! The hostile inputs of issue #9, each against the real broker, each
//! followed by a valid application: every one ends where the contract says
//! (a record, a case, or a dead letter with its reason header), every valid
//! neighbour is accepted, and the daemon stays up.

use allegro_testkit as support;

use std::time::Duration;

use allegro_daemon::deadletter::{header_str, H_REASON};
use lapin::types::{AMQPValue, DecimalValue, FieldArray, FieldTable};
use lapin::BasicProperties;
use serde_json::Value;
use support::*;
use uuid::Uuid;

/// One hostile delivery: body, properties and where it must end.
struct Hostile {
    name: &'static str,
    body: Vec<u8>,
    props: BasicProperties,
    /// The antragId a record or case is stored under.
    antrag_id: Option<Uuid>,
    ends: Ends,
}

#[derive(Debug, PartialEq)]
enum Ends {
    Record,
    Case,
    DeadLetter(&'static str),
}

fn json_props() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}

fn hostile(name: &'static str, body: Vec<u8>, ends: Ends) -> Hostile {
    Hostile {
        name,
        body,
        props: json_props(),
        antrag_id: None,
        ends,
    }
}

/// A valid application, changed by `edit`, under its own antragId.
fn edited(name: &'static str, ends: Ends, edit: impl FnOnce(&mut Value)) -> Hostile {
    let m = accepted();
    let mut v: Value = serde_json::from_slice(&m.body).unwrap();
    edit(&mut v);
    Hostile {
        antrag_id: m.antrag_id,
        ..hostile(name, serde_json::to_vec(&v).unwrap(), ends)
    }
}

fn odd_headers() -> FieldTable {
    let mut h = FieldTable::default();
    h.insert("x-bool".into(), AMQPValue::Boolean(true));
    h.insert("x-i8".into(), AMQPValue::ShortShortInt(-8));
    h.insert("x-float".into(), AMQPValue::Float(1.5));
    h.insert("x-double".into(), AMQPValue::Double(f64::MAX));
    h.insert(
        "x-decimal".into(),
        AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 12345,
        }),
    );
    h.insert("x-time".into(), AMQPValue::Timestamp(0));
    h.insert("x-void".into(), AMQPValue::Void);
    h.insert(
        "x-bytes".into(),
        AMQPValue::ByteArray(vec![0, 255, 1].into()),
    );
    let mut arr = FieldArray::default();
    arr.push(AMQPValue::LongString("a".into()));
    arr.push(AMQPValue::LongLongInt(i64::MIN));
    h.insert("x-array".into(), AMQPValue::FieldArray(arr));
    let mut nested = FieldTable::default();
    nested.insert("deep".into(), AMQPValue::FieldTable(FieldTable::default()));
    h.insert("x-table".into(), AMQPValue::FieldTable(nested));
    h
}

fn inputs() -> Vec<Hostile> {
    let valid = accepted();
    let mut not_utf8 = valid.body.clone();
    not_utf8.insert(10, 0xff);
    let mut v: Value = serde_json::from_slice(&accepted().body).unwrap();
    v["padding"] = Value::String("x".repeat(2 * 1024 * 1024));
    let two_mb = serde_json::to_vec(&v).unwrap();
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)).into_bytes();

    let mut mismatch = hostile(
        "message_id differs from antragId",
        accepted().body,
        Ends::DeadLetter("message_id_mismatch"),
    );
    mismatch.props = json_props().with_message_id(Uuid::new_v4().to_string().into());

    let mut odd = edited("odd header types", Ends::Record, |_| {});
    odd.props = json_props().with_headers(odd_headers());
    let mut plain = edited("text/plain", Ends::Record, |_| {});
    plain.props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("text/plain".into());

    let huge_amount = {
        let mut h = edited("an amount of 1e400", Ends::Case, |v| {
            v["einkommen"][0]["nettoMonatlich"] = Value::String("AMOUNT".into());
        });
        let text = String::from_utf8(h.body).unwrap();
        h.body = text.replace("\"AMOUNT\"", "1e400").into_bytes();
        h
    };

    vec![
        hostile("not UTF-8", not_utf8, Ends::DeadLetter("not_utf8")),
        hostile("2 MB", two_mb, Ends::DeadLetter("too_large")),
        hostile("200,000-deep nesting", deep, Ends::DeadLetter("too_deep")),
        hostile("empty", vec![], Ends::DeadLetter("not_json")),
        hostile(
            "an array",
            b"[1, 2]".to_vec(),
            Ends::DeadLetter("not_object"),
        ),
        mismatch,
        edited(
            "antragId not a UUID",
            Ends::DeadLetter("bad_antrag_id"),
            |v| {
                v["antragId"] = Value::String("not-a-uuid".into());
            },
        ),
        edited(
            "unknown form version",
            Ends::DeadLetter("no_mapping"),
            |v| {
                v["formular"]["version"] = Value::String("9.9".into());
            },
        ),
        odd,
        edited("5,000 partners", Ends::Case, |v| {
            let people: Vec<Value> = (0..5000)
                .map(|i| serde_json::json!({"id": format!("x{i}"), "beziehung": "KIND"}))
                .collect();
            v["weiterePersonen"] = Value::Array(people);
        }),
        edited("a 900 KB string", Ends::Case, |v| {
            v["antragsteller"]["familienname"] = Value::String("x".repeat(900_000));
        }),
        huge_amount,
        plain,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_inputs_end_where_the_contract_says() {
    let env = TestEnv::new(Db::Sqlite, "hostile").await;
    env.declare().await;
    let mut daemon = env.spawn_daemon();
    let publisher = Publisher::new(&env).await;

    let mut hostiles = inputs();
    // A duplicate (the same body twice: one record) and a conflict (a known
    // antragId with another body: a dead letter).
    let dup = edited("duplicate", Ends::Record, |_| {});
    let mut conflict = edited("conflict", Ends::DeadLetter("conflict"), |v| {
        v["antragsteller"]["vornamen"] = Value::String("Anders".into());
    });
    let dup_id = dup.antrag_id.unwrap().to_string();
    conflict.body = String::from_utf8(conflict.body)
        .unwrap()
        .replace(&conflict.antrag_id.unwrap().to_string(), &dup_id)
        .into_bytes();
    conflict.antrag_id = None;
    let dup_again = Hostile {
        name: "duplicate, again",
        body: dup.body.clone(),
        props: json_props(),
        antrag_id: None,
        ends: Ends::Record,
    };
    hostiles.extend([dup, dup_again, conflict]);

    let mut neighbours = Vec::new();
    for h in &hostiles {
        publisher
            .publish_with(&env.intake, &h.body, h.props.clone())
            .await;
        let n = accepted();
        publisher
            .publish_all(&env.intake, std::slice::from_ref(&n))
            .await;
        neighbours.push(n);
    }
    let dead: Vec<&Hostile> = hostiles
        .iter()
        .filter(|h| matches!(h.ends, Ends::DeadLetter(_)))
        .collect();
    let kept: Vec<&Hostile> = hostiles
        .iter()
        .filter(|h| h.antrag_id.is_some() && !matches!(h.ends, Ends::DeadLetter(_)))
        .collect();
    let stored = kept.len() + neighbours.len();

    let store = env.store().await;
    env.wait_for("every input settled", Duration::from_secs(60), || async {
        store.counts().await.unwrap().applications == stored as i64
            && env.queue_len(&env.dlq).await as usize == dead.len()
            && env.queue_len(&env.intake).await == 0
    })
    .await;
    assert!(daemon.child.try_wait().unwrap().is_none(), "daemon is up");

    let rows = store.applications().await.unwrap();
    let row = |id: Uuid| rows.iter().find(|r| r.antrag_id == id);
    for h in &kept {
        let r = row(h.antrag_id.unwrap()).unwrap_or_else(|| panic!("{}: not stored", h.name));
        let got = if r.record.is_some() {
            Ends::Record
        } else {
            Ends::Case
        };
        assert_eq!(got, h.ends, "{}", h.name);
    }
    for n in &neighbours {
        let r = row(n.antrag_id.unwrap()).expect("neighbour stored");
        assert!(r.record.is_some(), "a valid neighbour is accepted");
    }
    let letters = env.take_dlq().await;
    for h in &dead {
        let (props, _) = letters
            .iter()
            .find(|(_, body)| body == &h.body)
            .unwrap_or_else(|| panic!("{}: not in the DLQ", h.name));
        let Ends::DeadLetter(reason) = h.ends else {
            unreachable!()
        };
        assert_eq!(
            header_str(props, H_REASON).as_deref(),
            Some(reason),
            "{}",
            h.name
        );
    }
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    store.close().await;
    env.cleanup().await;
}
