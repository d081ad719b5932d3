//! The broker's access control as docs/mqtt.md ships it: a device uses only
//! its own topics, and nobody connects without a certificate from updraft's
//! device CA.

use std::time::Duration;

use serde_json::json;

use crate::common;
use crate::{Broker, Device, Pki, device, execution_state, firmware, server};
use common::Backend;

async fn devices_use_only_their_own_topics(backend: Backend) {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let api = server(backend, &pki, &broker).await;
    let fw = firmware(&api).await;
    let victim = device(&api, "cam3").await;
    let intruder = device(&api, "cam4").await;
    let mut v = Device::connect(&pki, &broker, &victim).await;
    // The intruder also listens on the victim's topics (the broker accepts the
    // subscription and delivers nothing).
    let mut i = Device::connect_as(
        &pki,
        &broker,
        &intruder,
        "cam4",
        &["$aws/things/cam4/jobs/#".to_owned(), "$aws/things/cam3/jobs/#".to_owned()],
    )
    .await;
    api.post("/api/v1/jobs", json!({"id": "acl-1", "firmware": fw, "devices": ["cam3"]})).await.expect(201, None);
    api.server.tick_scheduler().await;
    let (_, got) = v.request("get", json!({})).await;
    assert_eq!(got["queuedJobs"][0]["jobId"], "acl-1", "{got}");

    // The intruder reports on the victim's job, on the victim's topic: dropped by the broker.
    let forged = json!({"status": "SUCCEEDED"}).to_string();
    i.client.publish("$aws/things/cam3/jobs/acl-1/update", rumqttc::QoS::AtLeastOnce, false, forged).await.unwrap();
    // And as itself: not its job.
    let (outcome, e) = i.request("acl-1/update", json!({"status": "SUCCEEDED"})).await;
    assert_eq!((outcome.as_str(), &e["code"]), ("rejected", &json!("ResourceNotFound")));
    // The victim's own request after the forgery sees its job untouched.
    let (_, got) = v.request("get", json!({})).await;
    assert_eq!(got["queuedJobs"][0]["jobId"], "acl-1", "{got}");
    assert_eq!(execution_state(&api, "acl-1", "cam3").await, "notified");
    // Nothing of the victim's reached the intruder.
    assert!(
        i.drain().iter().all(|(topic, _)| !topic.starts_with("$aws/things/cam3/")),
        "the intruder read the victim's topics"
    );

    // Without a certificate from the device CA, no connection.
    let mut o = rumqttc::MqttOptions::new("nobody", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(5));
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(pki.broker_ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    o.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(tls))));
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(o, 10);
    let first = tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await.expect("an answer");
    assert!(
        !matches!(first, Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))),
        "a client without a certificate connected"
    );
}

/// Certificates are issued to operators for devices that exist, and only with an MQTT door.
async fn certificates_are_issued_by_operators_for_known_devices(backend: Backend) {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let api = server(backend, &pki, &broker).await;
    firmware(&api).await;
    let cred = device(&api, "cam6").await;
    assert!(cred["private_key_pem"].as_str().unwrap().contains("PRIVATE KEY"));
    api.post("/api/v1/devices/ghost/mqtt-certificate", json!({})).await.expect(404, Some("not_found"));
    let viewer = api.key("viewer").await;
    api.as_key(&viewer).post("/api/v1/devices/cam6/mqtt-certificate", json!({})).await.expect(403, Some("forbidden"));
    // A tenant's things carry its name.
    let acme = api.post("/api/v1/tenants", json!({"name": "acme"})).await.expect(201, None)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let acme = api.as_key(&acme);
    acme.post("/api/v1/products", json!({"key": "cam"})).await.expect(201, None);
    acme.post("/api/v1/devices", json!({"id": "cam6", "product": "cam"})).await.expect(201, None);
    let theirs = acme.post("/api/v1/devices/cam6/mqtt-certificate", json!({})).await.expect(200, None).clone();
    assert_eq!(theirs["thing_name"], "acme@cam6");

    let plain = common::Api::start(backend).await;
    plain.post("/api/v1/products", json!({"key": "cam"})).await.expect(201, None);
    plain.post("/api/v1/devices", json!({"id": "cam6", "product": "cam"})).await.expect(201, None);
    plain.post("/api/v1/devices/cam6/mqtt-certificate", json!({})).await.expect(409, Some("mqtt_disabled"));
}

/// A device that floods is throttled with the device API's budget, and an oversized message is
/// refused without breaking updraft's connection.
async fn floods_are_throttled_and_oversized_messages_refused(backend: Backend) {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let configure = crate::door(&pki, &broker, true);
    let server = common::TestServer::start_with(backend, move |s| {
        configure(s);
        s.ddi_rate_limit_per_minute = 1;
        s.ddi_rate_limit_burst = 4;
    })
    .await;
    let api = common::Api::on(server);
    firmware(&api).await;
    let cam = device(&api, "cam9").await;
    let mut d = Device::connect(&pki, &broker, &cam).await;
    let big = json!({"clientToken": "big", "statusDetails": {"x": "y".repeat(1000)}, "pad": "z".repeat(70_000)});
    let (outcome, e) = d.request("get", big).await;
    assert_eq!(
        (outcome.as_str(), &e["code"], &e["clientToken"]),
        ("rejected", &json!("InvalidRequest"), &json!("big"))
    );
    let mut codes = Vec::new();
    for i in 0..5 {
        let (_, body) = d.request("get", json!({"clientToken": format!("t{i}")})).await;
        codes.push(body["code"].as_str().unwrap_or("accepted").to_owned());
    }
    assert_eq!(codes.last().map(String::as_str), Some("RequestThrottled"), "{codes:?}");
    assert!(codes.iter().filter(|c| *c == "accepted").count() >= 2, "{codes:?}");
}

crate::on_both_stores!(
    devices_use_only_their_own_topics,
    certificates_are_issued_by_operators_for_known_devices,
    floods_are_throttled_and_oversized_messages_refused
);
