//! `allegro-bridge submit` against the real RabbitMQ: application files reach
//! the intake queue persistent, as JSON, with their antragId as message_id;
//! a bad file is named, skipped, and makes the exit code 1.

use allegro_testkit as support;

use std::path::Path;

use support::*;

/// Writes `msg`'s body to `dir/name`; returns its antragId.
fn write(dir: &Path, name: &str, msg: &Msg) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), &msg.body).unwrap();
    msg.antrag_id.unwrap().to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_publishes_each_file_with_its_antrag_id() {
    let env = TestEnv::new(Db::Sqlite, "submit").await;
    let apps = env.dir.path().join("apps");
    let a = write(&apps, "a.json", &accepted());
    let b = write(&apps, "b.json", &rejected());
    std::fs::write(apps.join("notes.txt"), "not an application").unwrap();

    // The queues do not exist yet: submit declares them as the daemon would.
    let out = env.cli(&["submit", apps.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for (file, id) in [("a.json", &a), ("b.json", &b)] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(file) && l.ends_with(id.as_str())),
            "no line for {file} {id}:\n{stdout}"
        );
    }
    assert!(stderr.contains("2 file(s) submitted"), "{stderr}");
    assert_eq!(env.queue_len(&env.intake).await, 2);

    let mut got = env.take(&env.intake).await;
    got.sort_by_key(|(p, _)| p.message_id().as_ref().map(|m| m.to_string()));
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    for ((props, body), id) in got.iter().zip(&want) {
        assert_eq!(
            props.message_id().as_ref().map(|m| m.as_str()),
            Some(id.as_str())
        );
        assert_eq!(*props.delivery_mode(), Some(2), "persistent");
        assert_eq!(
            props.content_type().as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["antragId"], id.as_str(), "body unchanged");
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_names_and_skips_bad_files() {
    let env = TestEnv::new(Db::Sqlite, "submit-bad").await;
    let dir = env.dir.path();
    let good = write(dir, "good.json", &accepted());
    std::fs::write(dir.join("broken.json"), "{\"antragId\": ").unwrap();
    std::fs::write(dir.join("no-id.json"), r#"{"formular": {"id": "x"}}"#).unwrap();
    let path = |n: &str| dir.join(n).display().to_string();

    let out = env.cli(&[
        "submit",
        &path("broken.json"),
        &path("good.json"),
        &path("no-id.json"),
        &path("missing.json"),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("{}: not JSON", path("broken.json"))),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}: no antragId", path("no-id.json"))),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}: cannot read", path("missing.json"))),
        "{stderr}"
    );
    assert!(stderr.contains("1 file(s) submitted"), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains(&good), "{stdout}");

    assert_eq!(env.queue_len(&env.intake).await, 1);
    let got = env.take(&env.intake).await;
    assert_eq!(
        got[0].0.message_id().as_ref().map(|m| m.to_string()),
        Some(good)
    );
    env.cleanup().await;
}
