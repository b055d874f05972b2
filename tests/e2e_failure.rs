//! Failure and TLS on a real control plane: spreadguard down or slower than `timeoutSeconds`
//! under each `failurePolicy`, the API server checking the serving certificate against the
//! `caBundle` and the `127.0.0.1` SAN, certificate rotation under load, and `/readyz`
//! waiting for the first lists. Each test registers webhooks of its own for every opted-in
//! namespace, so each gets a bed of its own (one at a time).
//!
//! Needs the control plane binaries: `scripts/controlplane.sh build`.

mod e2e_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e_support::api::{self, opted_in};
use e2e_support::bed::{Bed, BedOptions, ZONE_KEY};
use e2e_support::objects::{self, deployment};
use e2e_support::spreadguard::{Options, Spreadguard};
use e2e_support::tls::Ca;
use e2e_support::wait::until;
use e2e_support::webhook::SlowRelay;
use serde_json::{Value, json};

static ONE_BED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Polls dry-run creates of `object` until the answer satisfies `want` (a registration
/// change reaching the API server's webhook cache), and returns that answer.
async fn until_answer(
    client: &kube::Client,
    object: &Value,
    what: &str,
    want: impl Fn(&api::Answer) -> bool,
) -> api::Answer {
    until(Duration::from_secs(20), what, || async {
        let answer = api::create(client, object, true).await;
        if want(&answer) {
            Ok(answer)
        } else {
            Err(format!("{answer:?}"))
        }
    })
    .await
}

// === 8. failure policies ===

#[tokio::test]
async fn spreadguard_down_or_too_slow_is_admitted_under_ignore_and_refused_under_fail() {
    let _one = ONE_BED.lock().await;
    let bed = Bed::start(BedOptions::new("failure"));
    let client = bed.client().await;
    // The chart's default failure policies (Ignore), a 1-second timeout.
    let ignore = json!({"webhooks": {"timeoutSeconds": 1,
                                     "mutating": {"failurePolicy": "Ignore"},
                                     "validating": {"failurePolicy": "Ignore"}}});
    let fail = json!({"webhooks": {"mutating": {"failurePolicy": "Fail"},
                                   "validating": {"failurePolicy": "Fail"}}});
    let mut sg = Spreadguard::start(&bed, Options::new("spreadguard").values(ignore.clone())).await;
    sg.register(&bed).await;
    let ns = api::namespace(&client, "failure", &opted_in("enforce")).await;
    sg.wait_mode(&bed, &ns, "enforce").await;
    let single = |name: &str| deployment(&ns, name, Some(1));

    // Down, Ignore: admitted as if spreadguard were not installed (not patched, not denied).
    sg.stop();
    let answer = api::create(&client, &single("down-ignore"), false).await;
    assert!(answer.ok(), "{answer:?}");
    assert!(objects::spread_constraints(&answer.body).is_empty());
    assert!(answer.warnings.is_empty(), "{answer:?}");

    // Down, Fail: refused with the API server's own message.
    sg.upgrade(&bed, fail.clone());
    sg.register_only(&bed).await;
    until_answer(&client, &single("probe"), "Fail in effect", |a| !a.ok()).await;
    let refused = api::create(&client, &single("down-fail"), false).await;
    assert_eq!(refused.status, 500, "{refused:?}");
    let port = sg.listen.port();
    assert!(
        refused.message().starts_with(&format!(
            "Internal error occurred: failed calling webhook \"mutate.spreadguard.io\": failed to call webhook: Post \"https://127.0.0.1:{port}/mutate?timeout=1s\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )),
        "{}",
        refused.message()
    );
    assert!(api::get(&client, &single("down-fail")).await.is_none());

    // Slower than timeoutSeconds: spreadguard answers, but 3 s late (behind a relay that
    // holds each connection), against a 1-second timeout. Ignore first.
    sg.spawn();
    sg.wait_ready().await;
    let relay = SlowRelay::start(sg.listen, Duration::from_secs(3)).await;
    sg.upgrade(&bed, ignore.clone());
    sg.upgrade(
        &bed,
        json!({"webhooks": {"url": format!("https://{}", relay.addr)}}),
    );
    sg.register_only(&bed).await;
    // Until the new registration is in effect the 1-replica Deployment is denied (HA001).
    until_answer(
        &client,
        &single("probe"),
        "Ignore behind the slow relay",
        |a| a.ok(),
    )
    .await;
    let start = Instant::now();
    let answer = api::create(&client, &single("slow-ignore"), false).await;
    let took = start.elapsed();
    assert!(answer.ok(), "{answer:?}");
    assert!(objects::spread_constraints(&answer.body).is_empty());
    assert!(
        took >= Duration::from_secs(1),
        "the API server waited out the timeout: {took:?}"
    );

    // Slow, Fail: refused, naming the timeout.
    sg.upgrade(&bed, fail);
    sg.register_only(&bed).await;
    until_answer(
        &client,
        &single("probe"),
        "Fail behind the slow relay",
        |a| !a.ok(),
    )
    .await;
    let refused = api::create(&client, &single("slow-fail"), false).await;
    assert_eq!(refused.status, 500, "{refused:?}");
    assert_eq!(
        refused.message(),
        format!(
            "Internal error occurred: failed calling webhook \"mutate.spreadguard.io\": failed to call webhook: Post \"https://{}/mutate?timeout=1s\": context deadline exceeded",
            relay.addr
        )
    );
    assert!(api::get(&client, &single("slow-fail")).await.is_none());
    bed.assert_running();
}

// === 9. TLS ===

#[tokio::test]
async fn the_api_server_checks_the_ca_bundle_and_the_ip_san_and_rotation_fails_no_create() {
    let _one = ONE_BED.lock().await;
    let bed = Bed::start(BedOptions::new("tls"));
    let client = bed.client().await;
    let mut sg = Spreadguard::start(&bed, Options::new("spreadguard")).await;
    sg.register(&bed).await;
    let ns = api::namespace(&client, "tls", &opted_in("enforce")).await;
    sg.wait_mode(&bed, &ns, "enforce").await;
    let probe = deployment(&ns, "probe", Some(3));

    // A caBundle from another CA: refused (failurePolicy Fail), the API server names x509.
    let stranger = Ca::new("not spreadguard's CA");
    let right_ca = sg.ca.pem.clone();
    sg.upgrade(
        &bed,
        json!({"certificates": {"existingSecret": {"caBundle": stranger.pem}}}),
    );
    sg.register_only(&bed).await;
    let refused = until_answer(&client, &probe, "the foreign caBundle in effect", |a| {
        !a.ok()
    })
    .await;
    assert!(
        refused.message().contains(
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        ),
        "{}",
        refused.message()
    );

    // The right CA, but a certificate without the 127.0.0.1 IP SAN (a DNS name only). The
    // API server keeps its connections to a webhook open, so the certificate is checked when
    // it connects again: after a restart.
    sg.upgrade(
        &bed,
        json!({"certificates": {"existingSecret": {"caBundle": right_ca}}}),
    );
    sg.register_only(&bed).await;
    until_answer(&client, &probe, "the right caBundle back", |a| a.ok()).await;
    sg.stop();
    sg.rotate_certificate(&sg.ca.server(&["spreadguard.e2e.svc"]));
    sg.spawn();
    sg.wait_ready().await;
    let refused = api::create(&client, &probe, true).await;
    assert_eq!(refused.status, 500, "{refused:?}");
    assert!(
        refused.message().contains(
            "tls: failed to verify certificate: x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"
        ),
        "{}",
        refused.message()
    );

    // Rotation under load: a new certificate from the same CA about every second, by `..data`
    // swap, while Deployments are created back to back through the API server and fresh TLS
    // handshakes (trusting only the CA, checking the IP SAN) are made directly. With each
    // rotation the caBundle gains another (unused) CA, as a CA rollover publishes both: the
    // API server then builds a new client and handshakes again, against the new certificate.
    sg.stop();
    sg.rotate_certificate(&sg.ca.server(&["127.0.0.1"]));
    sg.spawn();
    sg.wait_ready().await;
    until_answer(&client, &probe, "a valid certificate again", |a| a.ok()).await;
    // How many rotations are done; the load runs until all are, plus one more window.
    let done = Arc::new(AtomicUsize::new(0));
    const ROTATIONS: usize = 5;
    let creator = {
        let client = client.clone();
        let ns = ns.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut results = Vec::new();
            let mut i = 0;
            loop {
                let window = done.load(Ordering::SeqCst);
                if window > ROTATIONS {
                    break;
                }
                let d = deployment(&ns, &format!("rotating-{i}"), Some(3));
                let answer = api::create(&client, &d, false).await;
                results.push((
                    window,
                    i,
                    answer.status,
                    answer.message().to_owned(),
                    objects::spread_keys(&answer.body),
                ));
                i += 1;
            }
            results
        })
    };
    let handshakes = {
        let (addr, ca) = (sg.listen, sg.ca.pem.clone());
        let done = done.clone();
        tokio::spawn(async move {
            let mut results = Vec::new();
            while done.load(Ordering::SeqCst) <= ROTATIONS {
                results.push(e2e_support::tls::handshake(addr, &ca).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            results
        })
    };
    let mut bundle = sg.ca.pem.clone();
    for minutes in 1..=ROTATIONS as i64 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let lifetime = time::Duration::days(2) + time::Duration::minutes(minutes);
        let pem = sg.ca.server_expiring(&["127.0.0.1"], lifetime);
        sg.rotate_certificate(&pem);
        bundle.push_str(&Ca::new(&format!("next CA {minutes}")).pem);
        sg.upgrade(
            &bed,
            json!({"certificates": {"existingSecret": {"caBundle": bundle}}}),
        );
        sg.register_only(&bed).await;
        // Wait until spreadguard serves it: its expiry metric moves to the new not-after.
        let want = (time::OffsetDateTime::now_utc() + lifetime).unix_timestamp();
        until(
            Duration::from_secs(5),
            "the rotated certificate served",
            || async {
                let metrics = sg.metrics();
                let expiry = metrics
                    .lines()
                    .find(|l| l.starts_with("spreadguard_certificate_expiry_timestamp_seconds"))
                    .and_then(|l| l.split_whitespace().last())
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0) as i64;
                if (expiry - want).abs() <= 5 {
                    Ok(())
                } else {
                    Err(format!("expiry {expiry}, want {want}"))
                }
            },
        )
        .await;
        done.fetch_add(1, Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    done.fetch_add(1, Ordering::SeqCst);
    let results = creator.await.unwrap();
    let failed: Vec<_> = results.iter().filter(|r| r.2 != 201).collect();
    assert!(
        failed.is_empty(),
        "{} of {} creates failed: {failed:?}",
        failed.len(),
        results.len()
    );
    // Creates ran before, between and after the rotations: every window saw some.
    for window in 0..=ROTATIONS {
        assert!(
            results.iter().any(|r| r.0 == window),
            "no create between rotations {window} and {}",
            window + 1
        );
    }
    for (_, i, _, _, keys) in &results {
        assert_eq!(
            keys,
            &[ZONE_KEY, "kubernetes.io/hostname"],
            "create {i} not patched"
        );
    }
    let handshakes = handshakes.await.unwrap();
    let bad: Vec<_> = handshakes.iter().filter(|h| h.is_err()).collect();
    assert!(
        bad.is_empty(),
        "{} of {} handshakes failed: {bad:?}",
        bad.len(),
        handshakes.len()
    );
    eprintln!(
        "{} creates and {} fresh handshakes through {ROTATIONS} certificate rotations, none failed",
        results.len(),
        handshakes.len()
    );
    bed.assert_running();
}

// === 10. /readyz waits for the first lists ===

#[tokio::test]
async fn readyz_stays_false_until_the_first_lists_succeed() {
    let _one = ONE_BED.lock().await;
    let bed = Bed::start(BedOptions::new("readyz"));
    // The chart's ServiceAccount without its ClusterRoleBinding: every list is refused (403).
    let mut options = Options::new("spreadguard");
    options.bind_rbac = false;
    let sg = Spreadguard::start(&bed, options).await;
    let started = Instant::now();
    until(
        Duration::from_secs(10),
        "spreadguard's admin port",
        || async {
            sg.assert_running();
            sg.admin_status("/livez")
                .filter(|s| *s == 200)
                .map(|_| ())
                .ok_or_else(|| "no answer".to_owned())
        },
    )
    .await;
    // Not ready while the lists fail: checked for 3 seconds.
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            sg.admin_status("/readyz"),
            Some(503),
            "ready without a node list"
        );
        assert_eq!(sg.admin_status("/livez"), Some(200));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Bind the role: ready after the next successful lists.
    let client = bed.client().await;
    let bound = Instant::now();
    for binding in e2e_support::chart::of_kind(&sg.rendered, "ClusterRoleBinding") {
        api::apply(&client, binding).await;
    }
    until(
        Duration::from_secs(60),
        "ready once the lists succeed",
        || async {
            sg.assert_running();
            match sg.admin_status("/readyz") {
                Some(200) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    eprintln!("ready {:?} after the RBAC binding", bound.elapsed());
}
