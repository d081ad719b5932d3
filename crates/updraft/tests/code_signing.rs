//! Code signing (seed 002's `customCodeSigning`) over real HTTP, on SQLite and
//! on PostgreSQL: a CA, an intermediate and leaf certificates are made at test
//! time (rcgen), files are signed with ECDSA P-256, Ed25519 and RSA-PSS 3072
//! (aws-lc-rs); a signed upload is checked against the tenant's trust anchors
//! and delivered with its signature, and one flipped byte anywhere is refused
//! with a clear error, leaving nothing behind.

mod common;

use std::sync::LazyLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{Api, Backend, stored_files};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

on_both_stores!(
    trust_anchors_are_managed_by_admins,
    signed_uploads_are_verified_stored_and_delivered,
    tampered_uploads_are_refused_and_leave_nothing,
    signing_profiles_sign_uploads_and_never_show_their_keys,
);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Alg {
    Ecdsa,
    Ed25519,
    RsaPss,
}

const ALGS: [Alg; 3] = [Alg::Ecdsa, Alg::Ed25519, Alg::RsaPss];

/// A leaf's key, for signing as a build server would.
enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

impl Signer {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Signer::Ecdsa(k) => k.sign(&rng, message).unwrap().as_ref().to_vec(),
            Signer::Ed25519(k) => k.sign(message).as_ref().to_vec(),
            Signer::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PSS_SHA256, &rng, message, &mut sig).unwrap();
                sig
            }
        }
    }

    fn public_key(&self) -> Vec<u8> {
        match self {
            Signer::Ecdsa(k) => k.public_key().as_ref().to_vec(),
            Signer::Ed25519(k) => k.public_key().as_ref().to_vec(),
            Signer::Rsa(k) => k.public_key().as_ref().to_vec(),
        }
    }
}

struct Leaf {
    signer: Signer,
    /// The key, PKCS#8 DER.
    pkcs8: Vec<u8>,
    /// Leaf and intermediate, PEM, leaf first.
    chain: String,
}

/// The test PKI: a root CA (the anchor), an intermediate, a leaf per
/// algorithm under it, and a leaf under a CA the tenant does not trust.
/// Made once per test binary (an RSA-3072 key takes a moment).
struct Pki {
    root: String,
    other_root: String,
    leaves: Vec<(Alg, Leaf)>,
    stranger: Leaf,
}

impl Pki {
    fn leaf(&self, alg: Alg) -> &Leaf {
        &self.leaves.iter().find(|(a, _)| *a == alg).unwrap().1
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    p
}

fn leaf_cert(alg: Alg, issuer: &Issuer<'_, KeyPair>, intermediate_pem: &str) -> Leaf {
    let rng = SystemRandom::new();
    let (pkcs8, signer): (Vec<u8>, Signer) = match alg {
        Alg::Ecdsa => {
            let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            let k = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref()).unwrap();
            (doc.as_ref().to_vec(), Signer::Ecdsa(k))
        }
        Alg::Ed25519 => {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            (doc.as_ref().to_vec(), Signer::Ed25519(Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap()))
        }
        Alg::RsaPss => {
            let k = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa3072).unwrap();
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = k.as_der().unwrap();
            (der.as_ref().to_vec(), Signer::Rsa(k))
        }
    };
    let key = KeyPair::try_from(pkcs8.as_slice()).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, format!("firmware signer {alg:?}"));
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let cert = p.signed_by(&key, issuer).unwrap();
    Leaf { signer, pkcs8, chain: format!("{}{}", cert.pem(), intermediate_pem) }
}

static PKI: LazyLock<Pki> = LazyLock::new(|| {
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca_params("updraft test root");
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let mid_key = KeyPair::generate().unwrap();
    let mid_params = ca_params("updraft test intermediate");
    let mid = mid_params.signed_by(&mid_key, &root_issuer).unwrap();
    let mid_issuer = Issuer::new(mid_params, mid_key);
    let leaves = ALGS.iter().map(|&a| (a, leaf_cert(a, &mid_issuer, &mid.pem()))).collect();

    let other_key = KeyPair::generate().unwrap();
    let other_params = ca_params("someone else's root");
    let other_root = other_params.self_signed(&other_key).unwrap();
    let other_issuer = Issuer::new(other_params, other_key);
    let stranger = leaf_cert(Alg::Ecdsa, &other_issuer, "");
    Pki { root: root.pem(), other_root: other_root.pem(), leaves, stranger }
});

fn alg_name(alg: Alg) -> &'static str {
    match alg {
        Alg::Ecdsa => "ECDSA",
        Alg::Ed25519 => "Ed25519",
        Alg::RsaPss => "RSA",
    }
}

fn image(alg: Alg) -> Vec<u8> {
    (0..300_000u32).map(|i| (i.wrapping_mul(31) ^ alg as u32) as u8).collect()
}

/// Seed 002's `codeSigning` for a file.
fn custom(alg: &str, chain: &str, signature: &[u8]) -> Value {
    json!({"customCodeSigning": {
        "certificateChain": {"certificateName": "/certs/ota_signer.pem", "inlineDocument": chain},
        "hashAlgorithm": "SHA256",
        "signature": {"inlineDocument": BASE64.encode(signature)},
        "signatureAlgorithm": alg,
    }})
}

async fn upload(api: &Api, version: &str, bytes: &[u8], code_signing: Value) -> common::Answer {
    let form = Form::new()
        .text("product", "thermo")
        .text("version", version.to_owned())
        .text("files", json!([{"name": "app.bin", "codeSigning": code_signing}]).to_string())
        .part("file", Part::bytes(bytes.to_vec()).file_name("app.bin"));
    api.multipart("/api/v1/firmware", form).await
}

async fn with_anchor(b: Backend) -> Api {
    let api = Api::start(b).await;
    api.post("/api/v1/products", json!({"key": "thermo"})).await.expect(201, None);
    api.post("/api/v1/trust-anchors", json!({"name": "root", "certificate": PKI.root})).await.expect(201, None);
    api
}

async fn trust_anchors_are_managed_by_admins(b: Backend) {
    let api = Api::start(b).await;
    let created = api.post("/api/v1/trust-anchors", json!({"name": "root", "certificate": PKI.root})).await;
    let anchor = created.expect(201, None).clone();
    assert_eq!(anchor["fingerprint"].as_str().unwrap().len(), 64);
    assert!(anchor["certificate"].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----\n"));
    let again = api.post("/api/v1/trust-anchors", json!({"certificate": PKI.root})).await;
    again.expect(409, Some("conflict"));
    let two = format!("{}{}", PKI.root, PKI.other_root);
    let refused = api.post("/api/v1/trust-anchors", json!({"certificate": two})).await;
    assert_eq!(refused.expect(400, Some("validation_failed"))["error"]["details"][0]["field"], "certificate");
    api.post("/api/v1/trust-anchors", json!({"certificate": "not a certificate"}))
        .await
        .expect(400, Some("validation_failed"));

    let viewer = api.key("viewer").await;
    let listed = api.as_key(&viewer).get("/api/v1/trust-anchors").await;
    assert_eq!(listed.expect(200, None)["items"], json!([anchor]));
    let id = anchor["id"].as_str().unwrap();
    api.as_key(&viewer).get(&format!("/api/v1/trust-anchors/{id}")).await.expect(200, None);
    api.as_key(&viewer).delete(&format!("/api/v1/trust-anchors/{id}")).await.expect(403, Some("forbidden"));
    let operator = api.key("operator").await;
    api.as_key(&operator)
        .post("/api/v1/trust-anchors", json!({"certificate": PKI.other_root}))
        .await
        .expect(403, Some("forbidden"));

    api.delete(&format!("/api/v1/trust-anchors/{id}")).await.expect(204, None);
    api.delete(&format!("/api/v1/trust-anchors/{id}")).await.expect(404, Some("not_found"));
    assert_eq!(api.get("/api/v1/trust-anchors").await.expect(200, None)["total"], 0);
    let audit = api.get("/api/v1/audit?kind=trust_anchor.").await;
    let kinds: Vec<&str> =
        audit.expect(200, None)["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["trust_anchor.deleted", "trust_anchor.created"], "the audit log records both changes");
}

async fn signed_uploads_are_verified_stored_and_delivered(b: Backend) {
    let api = with_anchor(b).await;
    let mut ids = Vec::new();
    for (i, alg) in ALGS.into_iter().enumerate() {
        let bytes = image(alg);
        let leaf = PKI.leaf(alg);
        let sig = leaf.signer.sign(&bytes);
        let answer = upload(&api, &format!("1.0.{i}"), &bytes, custom(alg_name(alg), &leaf.chain, &sig)).await;
        let fw = answer.expect(201, None);
        let signing = &fw["files"][0]["code_signing"];
        let canonical = ["ECDSA-P256", "Ed25519", "RSA-PSS"][i];
        assert_eq!(signing["signature_algorithm"], canonical, "{fw}");
        assert_eq!(signing["hash_algorithm"], "SHA-256");
        assert_eq!(signing["signature"], BASE64.encode(&sig));
        assert_eq!(signing["certificate_name"], "/certs/ota_signer.pem");
        assert_eq!(signing["certificate_chain"].as_str().unwrap().trim(), leaf.chain.trim());
        let id = fw["id"].as_str().unwrap().to_owned();
        assert_eq!(
            api.get(&format!("/api/v1/firmware/{id}")).await.expect(200, None)["files"][0]["code_signing"],
            *signing
        );
        ids.push((alg, id, bytes, sig));
    }

    // Delivered: each signed image to its own device, over the device API.
    for (n, (alg, id, bytes, sig)) in ids.iter().enumerate() {
        let device = format!("dev-{n}");
        let created = api.post("/api/v1/devices", json!({"id": device, "product": "thermo"})).await;
        let token = created.expect(201, None)["token"].as_str().unwrap().to_owned();
        api.post("/api/v1/jobs", json!({"id": format!("job-{n}"), "firmware": id, "devices": [device]}))
            .await
            .expect(201, None);
        api.server.tick_scheduler().await;
        let get = |url: String| {
            let http = api.http.clone();
            let token = token.clone();
            async move { http.get(url).header("authorization", format!("TargetToken {token}")).send().await.unwrap() }
        };
        let poll: Value = get(api.server.url(&format!("/default/controller/v1/{device}"))).await.json().await.unwrap();
        let href = poll["_links"]["deploymentBase"]["href"].as_str().expect("work offered").to_owned();
        let deployment: Value = get(href).await.json().await.unwrap();
        let chunk = &deployment["deployment"]["chunks"][0];
        let meta: std::collections::BTreeMap<&str, &str> = chunk["metadata"]
            .as_array()
            .expect("a signed file's chunk carries metadata")
            .iter()
            .map(|kv| (kv["key"].as_str().unwrap(), kv["value"].as_str().unwrap()))
            .collect();
        assert_eq!(meta["signature.algorithm"], ["ECDSA-P256", "Ed25519", "RSA-PSS"][n]);
        assert_eq!(meta["signature.hash"], "SHA-256");
        assert_eq!(meta["signature.value"], BASE64.encode(sig));
        assert_eq!(meta["signature.certificate"].trim(), PKI.leaf(*alg).chain.trim());
        let artifacts = chunk["artifacts"].as_array().unwrap();
        assert_eq!(artifacts.len(), 2, "the file and its signature: {chunk}");
        let sig_artifact = &artifacts[1];
        assert_eq!(sig_artifact["filename"], "app.bin.sig");
        assert_eq!(sig_artifact["size"], sig.len());
        let sig_href = sig_artifact["_links"]["download-http"]["href"].as_str().unwrap().to_owned();
        let downloaded = get(sig_href).await;
        assert_eq!(downloaded.status(), 200);
        let downloaded = downloaded.bytes().await.unwrap();
        assert_eq!(&downloaded[..], &sig[..], "the .sig artifact is the raw signature");
        assert_eq!(sig_artifact["hashes"]["sha256"], hex::encode(sha2::Sha256::digest(sig)));
        let file_href = artifacts[0]["_links"]["download-http"]["href"].as_str().unwrap().to_owned();
        let file = get(file_href).await.bytes().await.unwrap();
        assert_eq!(&file[..], &bytes[..]);

        // What a device does with it: verify the file with the leaf's key.
        let key = PKI.leaf(*alg).signer.public_key();
        let verification: &dyn signature::VerificationAlgorithm = match alg {
            Alg::Ecdsa => &signature::ECDSA_P256_SHA256_ASN1,
            Alg::Ed25519 => &signature::ED25519,
            Alg::RsaPss => &signature::RSA_PSS_2048_8192_SHA256,
        };
        signature::UnparsedPublicKey::new(verification, &key).verify(&file, &downloaded).unwrap();
    }

    // ECDSA's other encoding, r || s (AWS Signer's, PKCS#11 tokens'), is accepted too.
    let fixed =
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &PKI.leaf(Alg::Ecdsa).pkcs8).unwrap();
    let bytes = image(Alg::Ecdsa);
    let sig = fixed.sign(&SystemRandom::new(), &bytes).unwrap().as_ref().to_vec();
    assert_eq!(sig.len(), 64);
    let answer = upload(&api, "1.1.0", &bytes, custom("ECDSA-P256", &PKI.leaf(Alg::Ecdsa).chain, &sig)).await;
    assert_eq!(answer.expect(201, None)["files"][0]["code_signing"]["signature"], BASE64.encode(&sig));

    // An unsigned image shows no signature (its deployment, unchanged, is ddi.rs's).
    let plain = Form::new()
        .text("product", "thermo")
        .text("version", "0.9.0")
        .part("file", Part::bytes(vec![1u8; 100]).file_name("app.bin"));
    let fw = api.multipart("/api/v1/firmware", plain).await.expect(201, None).clone();
    assert!(fw["files"][0].get("code_signing").is_none(), "{fw}");
}

use sha2::Digest as _;

async fn tampered_uploads_are_refused_and_leave_nothing(b: Backend) {
    let api = with_anchor(b).await;
    let assert_nothing_stored = |api: &Api, what: String| {
        let files = stored_files(&api.server.data_dir());
        assert!(files.is_empty(), "{what}: files left behind: {files:?}");
    };
    let refuse = async |api: &Api, what: &str, bytes: &[u8], signing: Value, code: &str, field: &str| {
        let answer = upload(api, "1.0.0", bytes, signing).await;
        let body = answer.expect(422, Some(code));
        assert_eq!(body["error"]["details"][0]["field"], field, "{what}: {body}");
        assert_eq!(api.get("/api/v1/firmware").await.expect(200, None)["total"], 0, "{what}: nothing stored");
        assert_nothing_stored(api, what.to_owned());
    };
    let sig_field = "files[0].codeSigning.customCodeSigning.signature";
    let chain_field = "files[0].codeSigning.customCodeSigning.certificateChain";

    for alg in ALGS {
        let bytes = image(alg);
        let leaf = PKI.leaf(alg);
        let sig = leaf.signer.sign(&bytes);

        let mut flipped = sig.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x01;
        let what = format!("{alg:?}: a flipped signature byte");
        refuse(
            &api,
            &what,
            &bytes,
            custom(alg_name(alg), &leaf.chain, &flipped),
            "code_signing_bad_signature",
            sig_field,
        )
        .await;

        let mut other_file = bytes.clone();
        other_file[1000] ^= 0x80;
        let what = format!("{alg:?}: a flipped file byte");
        refuse(
            &api,
            &what,
            &other_file,
            custom(alg_name(alg), &leaf.chain, &sig),
            "code_signing_bad_signature",
            sig_field,
        )
        .await;

        // One flipped byte of the leaf certificate (inside its DER, so the PEM still reads).
        let mut certs: Vec<Vec<u8>> = pem_blocks(&leaf.chain);
        let middle = certs[0].len() / 2;
        certs[0][middle] ^= 0x01;
        let what = format!("{alg:?}: a flipped certificate byte");
        refuse(
            &api,
            &what,
            &bytes,
            custom(alg_name(alg), &to_pem(&certs), &sig),
            "code_signing_untrusted_chain",
            chain_field,
        )
        .await;
    }

    let bytes = image(Alg::Ecdsa);
    let stranger = &PKI.stranger;
    let what = "a chain to an anchor the tenant does not trust";
    refuse(
        &api,
        what,
        &bytes,
        custom("ECDSA", &stranger.chain, &stranger.signer.sign(&bytes)),
        "code_signing_untrusted_chain",
        chain_field,
    )
    .await;

    let leaf = PKI.leaf(Alg::Ecdsa);
    let sig = leaf.signer.sign(&bytes);
    let leaf_only: String = to_pem(&pem_blocks(&leaf.chain)[..1]);
    refuse(
        &api,
        "a chain without its intermediate",
        &bytes,
        custom("ECDSA", &leaf_only, &sig),
        "code_signing_untrusted_chain",
        chain_field,
    )
    .await;
    refuse(
        &api,
        "an unknown algorithm",
        &bytes,
        custom("DSA", &leaf.chain, &sig),
        "code_signing_unsupported_algorithm",
        "files[0].codeSigning.customCodeSigning.signatureAlgorithm",
    )
    .await;
    refuse(
        &api,
        "an algorithm the key is not of",
        &bytes,
        custom("Ed25519", &leaf.chain, &sig),
        "code_signing_unsupported_algorithm",
        sig_field,
    )
    .await;
    let mut sha1 = custom("ECDSA", &leaf.chain, &sig);
    sha1["customCodeSigning"]["hashAlgorithm"] = json!("SHA1");
    refuse(
        &api,
        "SHA-1",
        &bytes,
        sha1,
        "code_signing_unsupported_algorithm",
        "files[0].codeSigning.customCodeSigning.hashAlgorithm",
    )
    .await;

    // A signature that is not base64 is a malformed request.
    let mut garbled = custom("ECDSA", &leaf.chain, &sig);
    garbled["customCodeSigning"]["signature"]["inlineDocument"] = json!("%%%");
    upload(&api, "1.0.0", &bytes, garbled).await.expect(400, Some("validation_failed"));

    // With the anchor removed, the good upload is refused too; with it back, accepted.
    let anchors = api.get("/api/v1/trust-anchors").await.expect(200, None).clone();
    let id = anchors["items"][0]["id"].as_str().unwrap();
    api.delete(&format!("/api/v1/trust-anchors/{id}")).await.expect(204, None);
    refuse(&api, "no anchors", &bytes, custom("ECDSA", &leaf.chain, &sig), "code_signing_untrusted_chain", chain_field)
        .await;
    api.post("/api/v1/trust-anchors", json!({"certificate": PKI.root})).await.expect(201, None);
    upload(&api, "1.0.0", &bytes, custom("ECDSA", &leaf.chain, &sig)).await.expect(201, None);
}

fn key_pem(pkcs8: &[u8]) -> String {
    let b64 = BASE64.encode(pkcs8);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap()).collect();
    format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
}

async fn signing_profiles_sign_uploads_and_never_show_their_keys(b: Backend) {
    let api = with_anchor(b).await;
    let mut answers: Vec<Value> = Vec::new();
    for (i, alg) in ALGS.into_iter().enumerate() {
        let leaf = PKI.leaf(alg);
        let name = format!("ota-{i}");
        let import = json!({"name": name, "private_key": key_pem(&leaf.pkcs8), "certificate_chain": leaf.chain, "platform": "freertos"});
        let created = api.post("/api/v1/signing-profiles", import.clone()).await;
        let profile = created.expect(201, None).clone();
        assert_eq!(profile["signature_algorithm"], ["ECDSA-P256", "Ed25519", "RSA-PSS"][i]);
        assert_eq!(profile["platform"], "freertos");
        answers.push(profile);
        api.post("/api/v1/signing-profiles", import).await.expect(409, Some("conflict"));

        let bytes = image(alg);
        let signing = json!({"startSigningJobParameter": {
            "signingProfileName": name,
            "signingProfileParameter": {"certificatePathOnDevice": "/certs/signer.pem"},
            "destination": {"s3Destination": {"bucket": "ignored"}},
        }});
        let fw = upload(&api, &format!("2.0.{i}"), &bytes, signing).await.expect(201, None).clone();
        let signed = &fw["files"][0]["code_signing"];
        assert_eq!(signed["signing_profile"], name.as_str(), "{fw}");
        assert_eq!(signed["certificate_name"], "/certs/signer.pem");
        assert_eq!(signed["certificate_chain"].as_str().unwrap().trim(), leaf.chain.trim());
        let sig = BASE64.decode(signed["signature"].as_str().unwrap()).unwrap();
        let verification: &dyn signature::VerificationAlgorithm = match alg {
            Alg::Ecdsa => &signature::ECDSA_P256_SHA256_ASN1,
            Alg::Ed25519 => &signature::ED25519,
            Alg::RsaPss => &signature::RSA_PSS_2048_8192_SHA256,
        };
        let key = leaf.signer.public_key();
        signature::UnparsedPublicKey::new(verification, &key)
            .verify(&bytes, &sig)
            .expect("updraft's signature verifies");
        answers.push(fw);
    }

    // Refused imports: a key that is not the leaf's, a chain to an unknown anchor, not a key.
    let ecdsa = PKI.leaf(Alg::Ecdsa);
    let rsa = PKI.leaf(Alg::RsaPss);
    let wrong = json!({"name": "wrong", "private_key": key_pem(&rsa.pkcs8), "certificate_chain": ecdsa.chain});
    let body = api.post("/api/v1/signing-profiles", wrong).await.expect(400, Some("validation_failed")).clone();
    assert_eq!(body["error"]["details"][0]["field"], "private_key");
    let stranger = json!({"name": "stranger", "private_key": key_pem(&PKI.stranger.pkcs8), "certificate_chain": PKI.stranger.chain});
    api.post("/api/v1/signing-profiles", stranger).await.expect(422, Some("code_signing_untrusted_chain"));
    let garbage = json!({"name": "garbage", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "certificate_chain": ecdsa.chain});
    api.post("/api/v1/signing-profiles", garbage).await.expect(400, Some("validation_failed"));
    let viewer = api.key("viewer").await;
    let as_viewer = json!({"name": "v", "private_key": key_pem(&ecdsa.pkcs8), "certificate_chain": ecdsa.chain});
    api.as_key(&viewer).post("/api/v1/signing-profiles", as_viewer).await.expect(403, Some("forbidden"));

    // An unknown profile is a missing reference; nothing is kept.
    let unknown = json!({"startSigningJobParameter": {"signingProfileName": "nope"}});
    let body = upload(&api, "3.0.0", &image(Alg::Ecdsa), unknown).await.expect(404, Some("not_found")).clone();
    assert_eq!(
        body["error"]["details"][0]["field"],
        "files[0].codeSigning.startSigningJobParameter.signingProfileName"
    );

    answers.push(api.as_key(&viewer).get("/api/v1/signing-profiles").await.expect(200, None).clone());
    answers.push(api.get("/api/v1/signing-profiles/ota-0").await.expect(200, None).clone());
    answers.push(api.get("/api/v1/firmware").await.expect(200, None).clone());
    answers.push(api.get("/api/v1/audit?kind=signing_profile.").await.expect(200, None).clone());
    let text = serde_json::to_string(&answers).unwrap();
    assert!(!text.contains("PRIVATE KEY"), "no answer holds a private key");
    for (_, leaf) in &PKI.leaves {
        let der = BASE64.encode(&leaf.pkcs8);
        let middle = der.len() / 2;
        assert!(!text.contains(&der[middle - 20..middle + 20]), "no answer holds a private key's bytes");
    }

    // The store holds the keys sealed, never in the clear.
    let sealed: Vec<String> = match api.server.settings.database_url.as_deref() {
        Some(url) => {
            let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(url).await.unwrap();
            sqlx::query_scalar("SELECT sealed_key FROM signing_profiles").fetch_all(&mut c).await.unwrap()
        }
        None => {
            let url = format!("sqlite://{}?mode=ro", api.server.data_dir().join("updraft.db").display());
            let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
            sqlx::query_scalar("SELECT sealed_key FROM signing_profiles").fetch_all(&mut c).await.unwrap()
        }
    };
    assert_eq!(sealed.len(), 3);
    for (s, (_, leaf)) in sealed.iter().zip(&PKI.leaves) {
        assert!(s.starts_with("v1:"), "sealed: {s}");
        let hex_key = hex::encode(&leaf.pkcs8);
        assert!(
            !s.contains(&hex_key[hex_key.len() / 2 - 20..hex_key.len() / 2 + 20]),
            "the key is not kept in the clear"
        );
    }
    api.delete("/api/v1/signing-profiles/ota-0").await.expect(204, None);
    api.get("/api/v1/signing-profiles/ota-0").await.expect(404, Some("not_found"));
}

fn pem_blocks(pem: &str) -> Vec<Vec<u8>> {
    pem.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|b| {
            let body: String = b.split("-----END CERTIFICATE-----").next().unwrap().split_whitespace().collect();
            BASE64.decode(body).unwrap()
        })
        .collect()
}

fn to_pem(ders: &[Vec<u8>]) -> String {
    ders.iter()
        .map(|d| format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", BASE64.encode(d)))
        .collect()
}
