//! Keys and JWEs for the stand-in's tests, made by an independent JOSE
//! implementation: Python's jwcrypto through `tools/jose-peer.py`, in the
//! venv `scripts/setup-jose-tools.sh` installs under
//! `<target>/tools/jose-venv` (`CARGO_TARGET_DIR`, a relative one taken from
//! the repository root as the script does, else `<root>/target`).
//!
//! [`JosePeer::get`] sets the venv up once per process (quick when it is in
//! place) and panics, rather than skipping, when it cannot. [`TestKeys::get`]
//! makes a set of RSA-4096 keys once per process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use allegro_fitconnect::jose::{RsaPrivateJwk, RsaPublicJwk};
use serde_json::{json, Value};
use uuid::Uuid;

use super::ZustelldienstConfig;

/// The private members of an RSA JWK.
const PRIVATE_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

/// Makes a self-signed X.509 certificate (SHA-512, a year) for the private
/// JWK on stdin with the `cryptography` package jwcrypto depends on, and
/// prints it base64 DER (an `x5c` entry).
const SELF_SIGNED_CERT: &str = r#"
import base64, datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from jwcrypto import jwk
key = jwk.JWK.from_json(sys.stdin.read())
private = serialization.load_pem_private_key(key.export_to_pem(private_key=True, password=None), None)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "allegro-testkit " + key["kid"])])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(private, hashes.SHA512()))
print(base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode())
"#;

/// The venv's python and `tools/jose-peer.py`.
pub struct JosePeer {
    python: PathBuf,
    script: PathBuf,
}

/// What [`JosePeer::genkeys`] makes: `kid`, `alg`, `key_ops` (comma
/// separated) and `use`.
pub type KeySpec<'a> = (&'a str, &'a str, &'a str, &'a str);

impl JosePeer {
    /// The peer, its venv set up on first use.
    pub fn get() -> &'static JosePeer {
        static PEER: OnceLock<JosePeer> = OnceLock::new();
        PEER.get_or_init(|| {
            let root = crate::repo_root();
            JosePeer {
                python: setup_venv(&root),
                script: root.join("tools/jose-peer.py"),
            }
        })
    }

    /// New RSA-4096 private JWKs, made in parallel.
    pub fn genkeys(&self, specs: &[KeySpec<'_>]) -> Vec<Value> {
        let children: Vec<(&str, Child)> = specs
            .iter()
            .map(|(kid, alg, key_ops, key_use)| {
                let args = [
                    "genkey",
                    "--kid",
                    kid,
                    "--alg",
                    alg,
                    "--key-ops",
                    key_ops,
                    "--use",
                    key_use,
                ];
                (*kid, self.spawn(&args))
            })
            .collect();
        children
            .into_iter()
            .map(|(kid, child)| {
                let output = child.wait_with_output().expect("jose-peer.py genkey runs");
                assert!(
                    output.status.success(),
                    "jose-peer.py genkey {kid}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                serde_json::from_slice(&output.stdout).expect("genkey prints a JWK")
            })
            .collect()
    }

    /// jwcrypto's JWE compact serialization (RSA-OAEP-256, A256GCM, with
    /// `zip: DEF` if asked) of `plaintext` for the public JWK `key`.
    pub fn encrypt(&self, key: &Value, plaintext: &[u8], zip: bool) -> String {
        let file = key_file(key);
        let path = file.path().to_str().expect("a UTF-8 temporary path");
        let mut args = vec!["encrypt", "--key", path];
        if zip {
            args.push("--zip");
        }
        self.run(self.spawn(&args), plaintext)
            .unwrap_or_else(|e| panic!("jose-peer.py encrypt: {e}"))
    }

    /// jwcrypto's PS512 security event token (`typ: secevent+jwt`) over
    /// `claims`, signed with the private JWK `key`; `Err` is its stderr.
    pub fn sign(&self, key: &Value, claims: &Value) -> Result<String, String> {
        let file = key_file(key);
        let path = file.path().to_str().expect("a UTF-8 temporary path");
        self.run(
            self.spawn(&["sign", "--key", path]),
            claims.to_string().as_bytes(),
        )
    }

    /// jwcrypto's verification of a PS512 token against the JWK set
    /// `jwks`: the claims, or its stderr (e.g. `InvalidJWSSignature`).
    pub fn verify(&self, jwks: &Value, token: &str) -> Result<Value, String> {
        let file = key_file(jwks);
        let path = file.path().to_str().expect("a UTF-8 temporary path");
        let out = self.run(self.spawn(&["verify", "--jwks", path]), token.as_bytes())?;
        serde_json::from_str(&out).map_err(|e| format!("jose-peer.py verify printed no JSON: {e}"))
    }

    /// A self-signed certificate for the private JWK `key`, as the `x5c`
    /// member of its public JWK (base64 DER).
    pub fn self_signed_x5c(&self, key: &Value) -> Vec<String> {
        let child = Command::new(&self.python)
            .args(["-c", SELF_SIGNED_CERT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the venv's python runs");
        let cert = self
            .run(child, key.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("making a self-signed certificate: {e}"));
        vec![cert]
    }

    fn spawn(&self, args: &[&str]) -> Child {
        Command::new(&self.python)
            .arg(&self.script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the venv's python runs")
    }

    /// Feeds `stdin` to `child`: its stdout (trimmed), or its stderr.
    fn run(&self, mut child: Child, stdin: &[u8]) -> Result<String, String> {
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let output = child.wait_with_output().unwrap();
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

/// `json` in a temporary file (removed when dropped), for jose-peer.py.
fn key_file(json: &Value) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(json.to_string().as_bytes()).unwrap();
    file
}

/// The target dir as scripts/setup-jose-tools.sh takes it.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Runs scripts/setup-jose-tools.sh (idempotent); the venv's python.
fn setup_venv(root: &Path) -> PathBuf {
    let target = target_dir(root);
    let script = root.join("scripts/setup-jose-tools.sh");
    let output = Command::new("bash")
        .arg(&script)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({}); jwcrypto is needed for the Zustelldienst's tests:\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let python = target.join("tools/jose-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing after setup",
        python.display()
    );
    python
}

/// The public part of the private JWK `private`, with `key_ops: [op]`.
pub fn public_jwk(private: &Value, op: &str) -> Value {
    let mut key = private.clone();
    let members = key.as_object_mut().expect("a JWK is an object");
    for name in PRIVATE_MEMBERS {
        members.remove(name);
    }
    members.insert("key_ops".into(), json!([op]));
    key
}

/// RSA-4096 keys for a test run, as private JWKs made by jwcrypto.
pub struct TestKeys {
    /// The Zustelldienst's signing key (kid `zustelldienst-sig`, PS512).
    pub zustelldienst: Value,
    /// Its public JWK as the stand-in publishes it: `key_ops: [verify]`
    /// and a self-signed certificate as `x5c` (the published JWK schema
    /// requires one).
    pub zustelldienst_published: Value,
    /// The destination's encryption key (kid `destination-enc`,
    /// RSA-OAEP-256): senders encrypt to its public part, the subscriber
    /// decrypts.
    pub destination_enc: Value,
    /// The destination's SET signing key (kid `destination-sig`, PS512).
    pub destination_sig: Value,
    /// Another signing key with the same kid `destination-sig`: its SETs
    /// name the destination's key but do not verify with it.
    pub impostor_sig: Value,
}

impl TestKeys {
    /// The keys, made once per process (a few seconds).
    pub fn get() -> &'static TestKeys {
        static KEYS: OnceLock<TestKeys> = OnceLock::new();
        KEYS.get_or_init(|| {
            let peer = JosePeer::get();
            let mut keys = peer
                .genkeys(&[
                    ("zustelldienst-sig", "PS512", "sign", "sig"),
                    ("destination-enc", "RSA-OAEP-256", "unwrapKey", "enc"),
                    ("destination-sig", "PS512", "sign", "sig"),
                    ("destination-sig", "PS512", "sign", "sig"),
                ])
                .into_iter();
            let mut next = || keys.next().expect("four keys");
            let zustelldienst = next();
            let mut published = public_jwk(&zustelldienst, "verify");
            published["x5c"] = json!(peer.self_signed_x5c(&zustelldienst));
            TestKeys {
                zustelldienst,
                zustelldienst_published: published,
                destination_enc: next(),
                destination_sig: next(),
                impostor_sig: next(),
            }
        })
    }

    /// The public encryption key to encrypt to (`key_ops: [wrapKey]`).
    pub fn destination_enc_public(&self) -> Value {
        public_jwk(&self.destination_enc, "wrapKey")
    }

    /// The public key the Zustelldienst verifies the destination's SETs with.
    pub fn destination_verify(&self) -> RsaPublicJwk {
        RsaPublicJwk::from_value(&public_jwk(&self.destination_sig, "verify"))
            .expect("a public JWK")
    }

    /// `value` (one of the private JWKs here) for allegro-fitconnect.
    pub fn private(value: &Value) -> RsaPrivateJwk {
        RsaPrivateJwk::from_value(value).expect("a private JWK")
    }

    /// A stand-in configuration with these keys and one destination.
    pub fn config(
        &self,
        client_id: &str,
        client_secret: &str,
        destination_id: Uuid,
    ) -> ZustelldienstConfig {
        ZustelldienstConfig {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            destinations: vec![(destination_id, self.destination_verify())],
            own_key: Self::private(&self.zustelldienst),
            own_jwk: self.zustelldienst_published.clone(),
        }
    }
}
