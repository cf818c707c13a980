//! Signed bundles end to end, against the real `weir` binary and its admin API: every refusal
//! code produced by a real attempt (none of which may reach compilation), rollback protection
//! across a restart, and a hot-swap soak of 50 versions under live input.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray as _;
use arrow_array::types::{Int64Type, UInt64Type};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use weir_tests::bundle_tools::{
    Admin, assert_refused, forge, keygen, manifest_range, sign, split, versioned_module,
};
use weir_tests::weir_process::{
    Running, Scratch, assert_balanced, free_tcp_port, read_parquet_dir,
};

const NAME: &str = "weir-guest-versioned";

/// Keys, bundles and a config for a `weir run` reading `{"seq": n}` lines from stdin through
/// the `versioned` guest into Parquet, with the admin API on a free port.
struct Setup {
    s: Scratch,
    ops: std::path::PathBuf,
    limited: std::path::PathBuf,
    old: std::path::PathBuf,
    stranger: std::path::PathBuf,
    config: std::path::PathBuf,
    admin: Admin,
    revoked_version: u64,
}

impl Setup {
    fn new(test: &str, max_upload: &str, extra_admin: &str) -> Self {
        let s = Scratch::new(test);
        let keys = s.join("keys");
        let (ops, _) = keygen(&keys, "ops");
        let (limited, _) = keygen(&keys, "limited");
        let (old, _) = keygen(&keys, "old");
        let stranger_dir = s.join("elsewhere");
        let (stranger, _) = keygen(&stranger_dir, "stranger");
        let module = s.write("v1.wasm", versioned_module(1));
        let _ = sign(&[&ops], NAME, 1, &module, &s.join("bundles/v1.wpol"));
        // A module whose hash the trust store revokes (a version "known bad").
        let revoked_version = 77;
        let revoked_hash = hex::encode(Sha256::digest(versioned_module(revoked_version)));
        let token = "s3cret-token-for-tests";
        let _ = s.write("admin.token", format!("{token}\n"));
        let port = free_tcp_port();
        let config = s.write(
            "weir.toml",
            format!(
                r#"[pipeline]
batch_max_rows = 200
batch_max_delay = "20ms"
state_dir = "state"
canary_batches = 2

[sources.in]
type = "stdin"
[sources.in.schema]
columns = ["seq: int64"]

[trust]
revoked_keys = ["keys/old.pub"]
revoked_modules = ["{revoked_hash}"]
[[trust.keys]]
name = "ops"
public_key = "keys/ops.pub"
[[trust.keys]]
name = "limited"
public_key = "keys/limited.pub"
policies = ["other-*"]
[[trust.keys]]
name = "old"
public_key = "keys/old.pub"

[[policies]]
bundle = "bundles/v1.wpol"

[sinks.out]
type = "parquet"
path = "out"

[admin]
listen = "127.0.0.1:{port}"
token_file = "admin.token"
max_upload = "{max_upload}"
{extra_admin}
"#
            ),
        );
        Self {
            ops,
            limited,
            old,
            stranger,
            config,
            admin: Admin {
                base: format!("http://127.0.0.1:{port}"),
                token: token.to_owned(),
            },
            revoked_version,
            s,
        }
    }

    fn start(&self) -> Running {
        let running =
            Running::start_piped(&self.s, &["run", "--config", self.config.to_str().unwrap()]);
        assert!(
            self.admin.wait_ready(Duration::from_secs(60)),
            "the admin API at {} did not come up:\n{}",
            self.admin.base,
            running.stderr()
        );
        running
    }

    /// A bundle of the versioned guest at `version`, signed by `keys`.
    fn bundle(&self, version: u64, keys: &[&Path]) -> Vec<u8> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let module = self
            .s
            .write(&format!("m{n}.wasm"), versioned_module(version));
        sign(
            keys,
            NAME,
            version,
            &module,
            &self.s.join(&format!("b{n}.wpol")),
        )
    }

    fn running_version(&self) -> u64 {
        let list = self.admin.get("/v1/policies");
        list["policies"][0]["version"].as_u64().expect("version")
    }
}

fn feed(running: &mut Running, from: i64, to: i64) {
    let stdin = running.child.stdin.as_mut().expect("stdin piped");
    let text: String = (from..to).map(|i| format!("{{\"seq\":{i}}}\n")).collect();
    stdin.write_all(text.as_bytes()).expect("feeding weir");
    stdin.flush().expect("flush");
}

fn finish(mut running: Running) -> Value {
    drop(running.child.stdin.take());
    running.wait(Duration::from_secs(120)).ok().clone()
}

/// (seq, version) of every output row, in seq order.
fn output(dir: &Path) -> Vec<(i64, u64)> {
    let mut rows: Vec<(i64, u64)> = read_parquet_dir(dir)
        .iter()
        .flat_map(|b| {
            let seq = b.column_by_name("seq").unwrap().as_primitive::<Int64Type>();
            let ver = b
                .column_by_name("policy_version")
                .unwrap()
                .as_primitive::<UInt64Type>();
            seq.values()
                .iter()
                .copied()
                .zip(ver.values().iter().copied())
                .collect::<Vec<_>>()
        })
        .collect();
    rows.sort_unstable();
    rows
}

#[test]
fn every_refusal_code_from_a_real_attempt_and_none_reaches_compilation() {
    let t = Setup::new("refusals", "1 MiB", "");
    let mut running = t.start();
    feed(&mut running, 0, 1000);

    // Two good versions, so there is something to replay and to go below.
    let v2 = t.bundle(2, &[&t.ops]);
    let (status, body) = t.admin.put(NAME, &v2);
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["version"], 2);
    assert_eq!(body["previous_version"], 1);
    let v3 = t.bundle(3, &[&t.ops]);
    assert_eq!(t.admin.put(NAME, &v3).0, 200);
    assert_eq!(t.running_version(), 3);
    feed(&mut running, 1000, 2000);

    let compiled = t.admin.compilations();
    let good4 = t.bundle(4, &[&t.ops]);
    let mut refused = BTreeMap::new();
    let mut attempt = |what: &str, code: &str, answer: (u16, Value)| {
        assert_refused(&answer, code, what);
        *refused.entry(code.to_owned()).or_insert(0u32) += 1;
    };

    // Tampering.
    let mut b = good4.clone();
    let last = b.len() - 10;
    b[last] ^= 0x01;
    attempt(
        "a flipped module byte",
        "bad_signature",
        t.admin.put(NAME, &b),
    );
    let mut b = good4.clone();
    let at = manifest_range(&b).start + 40;
    b[at] ^= 0x01;
    attempt(
        "a flipped manifest byte",
        "bad_signature",
        t.admin.put(NAME, &b),
    );

    // Keys.
    attempt(
        "signed by a key the host does not know",
        "untrusted_key",
        t.admin.put(NAME, &t.bundle(4, &[&t.stranger])),
    );
    attempt(
        "signed by a key not allowed for this name",
        "untrusted_key",
        t.admin.put(NAME, &t.bundle(4, &[&t.limited])),
    );
    attempt(
        "signed by a revoked key",
        "revoked",
        t.admin.put(NAME, &t.bundle(4, &[&t.old])),
    );
    attempt(
        "a revoked module hash",
        "revoked",
        t.admin.put(NAME, &t.bundle(t.revoked_version, &[&t.ops])),
    );

    // Versions.
    attempt(
        "the running version again (re-signed)",
        "downgrade",
        t.admin.put(NAME, &t.bundle(3, &[&t.ops])),
    );
    attempt(
        "a lower version",
        "downgrade",
        t.admin.put(NAME, &t.bundle(2, &[&t.ops])),
    );
    attempt(
        "the replay of an old bundle",
        "downgrade",
        t.admin.put(NAME, &v2),
    );

    // Shape.
    attempt(
        "a truncated bundle",
        "malformed",
        t.admin.put(NAME, &good4[..good4.len() - 100]),
    );
    attempt(
        "a truncated header",
        "malformed",
        t.admin.put(NAME, &good4[..20]),
    );
    let mut big = good4.clone();
    big.resize(2 << 20, 0);
    attempt("an oversize upload", "too_large", t.admin.put(NAME, &big));
    let (manifest, _, _) = split(&good4);
    attempt(
        "a signed bundle whose module is not wasm",
        "malformed",
        t.admin.put(
            NAME,
            &forge(manifest.clone(), b"#!/bin/sh\nrm -rf /\n", &t.ops, true),
        ),
    );
    let mut wrong_abi = manifest.clone();
    wrong_abi["abi_version"] = 2.into();
    wrong_abi["policy"]["abi_version"] = 2.into();
    let (_, _, module4) = split(&good4);
    attempt(
        "a bundle for another ABI",
        "abi_mismatch",
        t.admin.put(NAME, &forge(wrong_abi, &module4, &t.ops, true)),
    );
    // The same guest declaring its output column as text: the Parquet sink already writes it
    // as uint64. The custom section is patched in place ("uint64" and "string" have the same
    // length), and the module signed normally.
    let mut module = versioned_module(4);
    let needle = br#""policy_version","type":"uint64""#;
    let mut patched = 0;
    while let Some(at) = module.windows(needle.len()).position(|w| w == needle) {
        module[at..at + needle.len()].copy_from_slice(br#""policy_version","type":"string""#);
        patched += 1;
    }
    assert!(patched > 0, "the guest's manifest names its output");
    let path = t.s.write("text-output.wasm", &module);
    attempt(
        "an output schema the running sink cannot take",
        "schema_incompatible",
        t.admin.put(
            NAME,
            &sign(&[&t.ops], NAME, 4, &path, &t.s.join("text.wpol")),
        ),
    );

    // Tokens.
    attempt(
        "no token",
        "unauthorized",
        t.admin.put_with(NAME, &good4, None),
    );
    attempt(
        "a wrong token",
        "unauthorized",
        t.admin.put_with(NAME, &good4, Some("not-the-token")),
    );

    assert_eq!(
        t.admin.compilations(),
        compiled,
        "no refused bundle may reach compilation"
    );
    assert_eq!(t.running_version(), 3, "refusals leave the running version");
    let health = t.admin.get("/healthz");
    for (code, n) in &refused {
        assert_eq!(
            health["refusals"][code].as_u64(),
            Some(u64::from(*n)),
            "refusals of {code} counted: {health:#}"
        );
    }

    // A version that passes every check but fails on live data: the canary keeps the old one,
    // and the failed version does not raise the high-water mark.
    let failing = t.bundle((1 << 63) | 5, &[&t.ops]);
    let answer = t.admin.put(NAME, &failing);
    assert_refused(
        &answer,
        "canary_failed",
        "a version failing on recent batches",
    );
    assert!(
        answer.1["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("built to fail"),
        "{:#}",
        answer.1
    );
    assert_eq!(t.running_version(), 3);
    let (status, body) = t.admin.put(NAME, &good4);
    assert_eq!(
        status, 200,
        "after a failed canary, the next version is taken: {body:#}"
    );
    feed(&mut running, 2000, 3000);

    let summary = finish(running);
    assert_balanced(&summary);
    let rows = output(&t.s.join("out"));
    assert_eq!(rows.len(), 3000);

    // Restart: the state directory's version 4 runs, not the config's version 1, and the
    // rollback marks hold.
    let mut running = t.start();
    assert_eq!(t.running_version(), 4);
    assert!(
        running.stderr().contains("newer accepted version"),
        "{}",
        running.stderr()
    );
    let before = t.admin.compilations();
    assert_refused(
        &t.admin.put(NAME, &good4),
        "downgrade",
        "the same version after a restart",
    );
    assert_refused(
        &t.admin.put(NAME, &v3),
        "downgrade",
        "an older version after a restart",
    );
    assert_eq!(t.admin.compilations(), before);
    feed(&mut running, 3000, 3100);
    let summary = finish(running);
    assert_balanced(&summary);
    let rows = output(&t.s.join("out"));
    assert_eq!(rows.len(), 3100);
    assert!(
        rows[3000..].iter().all(|&(_, v)| v == 4),
        "after restart: version 4"
    );
}

#[test]
fn hot_swap_soak_50_versions_under_live_input_loses_and_duplicates_nothing() {
    let t = Setup::new("soak", "4 MiB", "");
    // Sign every version first, so pushes follow each other closely.
    let bundles: Vec<Vec<u8>> = (2..=51).map(|v| t.bundle(v, &[&t.ops])).collect();
    let mut running = t.start();
    let stdin = running.child.stdin.take().expect("stdin piped");
    // Input flows (about 25k rows/s) until every push is done, then 2,000 more rows: the
    // pushes, however long they take on a loaded machine, all overlap live input.
    let pushed = Arc::new(AtomicBool::new(false));
    let writer = std::thread::spawn({
        let pushed = Arc::clone(&pushed);
        move || {
            let mut stdin = stdin;
            let started = Instant::now();
            let (mut next, mut tail) = (0i64, None);
            while tail.is_none_or(|end| next < end) {
                if tail.is_none() && pushed.load(Ordering::Acquire) {
                    tail = Some(next + 2000);
                }
                let text: String = (next..next + 500)
                    .map(|i| format!("{{\"seq\":{i}}}\n"))
                    .collect();
                stdin.write_all(text.as_bytes()).expect("feeding weir");
                stdin.flush().expect("flush");
                next += 500;
                std::thread::sleep(Duration::from_millis(20));
            }
            (next, started.elapsed())
        }
    });
    let mut latencies = Vec::new();
    for (i, bundle) in bundles.iter().enumerate() {
        let version = i as u64 + 2;
        let (status, body) = t.admin.put(NAME, bundle);
        assert_eq!(status, 200, "push of version {version}: {body:#}");
        assert_eq!(body["version"], version);
        latencies.push(body["timings"]["total_ms"].as_f64().unwrap());
    }
    pushed.store(true, Ordering::Release);
    let (total, fed_for) = writer.join().expect("writer");
    let summary = finish(running);
    assert_balanced(&summary);

    let rows = output(&t.s.join("out"));
    let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        seqs,
        (0..total).collect::<Vec<_>>(),
        "every input row exactly once"
    );
    let mut versions_seen = std::collections::BTreeSet::new();
    for pair in rows.windows(2) {
        assert!(
            pair[0].1 <= pair[1].1,
            "versions never decrease in input order: seq {} ran on {}, seq {} on {}",
            pair[0].0,
            pair[0].1,
            pair[1].0,
            pair[1].1
        );
    }
    for r in &rows {
        versions_seen.insert(r.1);
    }
    assert_eq!(
        rows.first().unwrap().1,
        1,
        "the first rows ran on version 1"
    );
    assert_eq!(
        rows.last().unwrap().1,
        51,
        "the last rows ran on version 51"
    );
    assert!(
        versions_seen.len() >= 10,
        "the swaps happened while data flowed (fed for {fed_for:?}; versions seen: \
         {versions_seen:?})"
    );
    latencies.sort_by(f64::total_cmp);
    eprintln!(
        "soak: 50 pushes, upload→active p50 {:.1} ms, max {:.1} ms; {} versions seen in the \
         output",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        versions_seen.len()
    );
}

#[test]
fn a_bundle_dropped_into_the_watched_directory_is_promoted_or_refused() {
    let t = Setup::new("watch", "1 MiB", "watch_dir = \"incoming\"");
    let mut running = t.start();
    feed(&mut running, 0, 500);
    let incoming = t.s.join("incoming");
    let wait_for = |path: &Path| {
        let started = Instant::now();
        while !path.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} did not appear",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The way the docs say: write elsewhere, rename in.
    let good = t.bundle(2, &[&t.ops]);
    let staged = t.s.write("staged.wpol", &good);
    std::fs::rename(&staged, incoming.join("v2.wpol")).unwrap();
    wait_for(&incoming.join("accepted/v2.wpol"));
    assert_eq!(t.running_version(), 2);

    let mut bad = t.bundle(3, &[&t.ops]);
    let last = bad.len() - 3;
    bad[last] ^= 0x80;
    let staged = t.s.write("staged.wpol", &bad);
    std::fs::rename(&staged, incoming.join("v3.wpol")).unwrap();
    // The watcher writes the refusal first, then moves the bundle next to it.
    wait_for(&incoming.join("refused/v3.wpol.json"));
    wait_for(&incoming.join("refused/v3.wpol"));
    let refusal: Value =
        serde_json::from_slice(&std::fs::read(incoming.join("refused/v3.wpol.json")).unwrap())
            .unwrap();
    assert_eq!(refusal["error"]["code"], "bad_signature", "{refusal:#}");
    assert!(
        !incoming.join("v3.wpol").exists(),
        "the refused bundle left incoming/"
    );
    assert_eq!(t.running_version(), 2, "a refused bundle changes nothing");
    feed(&mut running, 500, 1000);
    let summary = finish(running);
    assert_balanced(&summary);
    let rows = output(&t.s.join("out"));
    assert_eq!(rows.len(), 1000);
    assert!(
        rows.iter().any(|r| r.1 == 2),
        "rows after the drop ran on version 2"
    );
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with openssl in `dir`: `ca.crt`,
/// `admin.crt`, `admin.key`.
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let script = "set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
  -out ca.crt -days 2 -subj /CN=weir-test-ca
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout admin.key \
  -out admin.csr -subj /CN=localhost
printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > ext.cnf
openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt \
  -days 2 -extfile ext.cnf";
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "making the test certificates with openssl failed (openssl is needed): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `weir ARGS`: (success, stdout + stderr).
fn weir_cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(weir_tests::weir_process::weir_bin())
        .args(args)
        .output()
        .expect("weir starts");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn tls_admin_api_and_a_two_key_threshold_through_weir_push() {
    let extra = "[admin.tls]\ncert = \"tls/admin.crt\"\nkey = \"tls/admin.key\"\n\
                 [[trust.keys]]\nname = \"second\"\npublic_key = \"keys/second.pub\"\n\
                 [trust.thresholds]\n\"weir-guest-*\" = 2\n";
    let t = Setup::new("tls", "1 MiB", extra);
    let (second, _) = keygen(&t.s.join("keys"), "second");
    // The configured version 1 needs both signatures too.
    let module = t.s.write("v1-two.wasm", versioned_module(1));
    let _ = sign(
        &[&t.ops, &second],
        NAME,
        1,
        &module,
        &t.s.join("bundles/v1.wpol"),
    );
    let tls = t.s.join("tls");
    make_certificates(&tls);
    let url = t.admin.base.replace("http://", "https://");
    let ca = tls.join("ca.crt");
    let token = t.s.join("admin.token");
    let (ca, token) = (ca.to_str().unwrap(), token.to_str().unwrap());

    let mut running = Running::start_piped(&t.s, &["run", "--config", t.config.to_str().unwrap()]);
    let started = Instant::now();
    let listing = loop {
        let (ok, out) = weir_cli(&["policies", "--to", &url, "--ca-cert", ca]);
        if ok {
            break out;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the TLS admin API did not come up: {out}\n{}",
            running.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(listing.contains(NAME), "{listing}");
    feed(&mut running, 0, 500);

    let push = |bundle: &Path, with_ca: bool| {
        let mut args = vec!["push", "--to", &url, "--token-file", token];
        if with_ca {
            args.extend(["--ca-cert", ca]);
        }
        args.push(bundle.to_str().unwrap());
        weir_cli(&args)
    };

    // Without the CA the client refuses the self-signed certificate.
    let one_path = t.s.write("one.wpol", t.bundle(2, &[&t.ops]));
    let (ok, out) = push(&one_path, false);
    assert!(!ok, "a client without the CA must not connect: {out}");

    // One signature where two are needed.
    let (ok, out) = push(&one_path, true);
    assert!(!ok && out.contains("untrusted_key"), "{out}");
    assert!(
        out.contains("needs 2"),
        "the reason names the threshold: {out}"
    );

    // Two.
    let module = t.s.write("v2-two.wasm", versioned_module(2));
    let two_path = t.s.join("two.wpol");
    let _ = sign(&[&t.ops, &second], NAME, 2, &module, &two_path);
    let (ok, out) = push(&two_path, true);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("activated {NAME} version 2 (was 1)")),
        "{out}"
    );
    let (ok, listing) = weir_cli(&["policies", "--to", &url, "--ca-cert", ca, "--json"]);
    assert!(ok, "{listing}");
    let listing: Value = serde_json::from_str(
        listing
            .lines()
            .skip_while(|l| !l.trim_start().starts_with('{') && !l.starts_with('['))
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    )
    .unwrap_or_else(|e| panic!("weir policies --json: {e}: {listing}"));
    let policies = listing
        .get("policies")
        .and_then(Value::as_array)
        .or_else(|| listing.as_array())
        .expect("a list of policies")
        .clone();
    assert_eq!(policies[0]["version"], 2);
    assert_eq!(policies[0]["signers"], serde_json::json!(["ops", "second"]));

    feed(&mut running, 500, 1000);
    let summary = finish(running);
    assert_balanced(&summary);
    assert_eq!(output(&t.s.join("out")).len(), 1000);
}

/// A config for the key-rotation test: `keys` trusted (name, `.pub` under `keys/`), `revoked`
/// (`.pub` files under `keys/`), the configured bundle `bundles/v1.wpol`.
fn rotation_config(s: &Scratch, port: u16, keys: &[&str], revoked: &[&str]) -> std::path::PathBuf {
    let trusted: String = keys
        .iter()
        .map(|k| format!("[[trust.keys]]\nname = \"{k}\"\npublic_key = \"keys/{k}.pub\"\n"))
        .collect();
    let revoked: Vec<String> = revoked
        .iter()
        .map(|k| format!("\"keys/{k}.pub\""))
        .collect();
    s.write(
        "weir.toml",
        format!(
            "[pipeline]\nstate_dir = \"state\"\ncanary_batches = 0\n\
             [sources.in]\ntype = \"stdin\"\n[sources.in.schema]\ncolumns = [\"seq: int64\"]\n\
             [trust]\nrevoked_keys = [{}]\n{trusted}\
             [[policies]]\nbundle = \"bundles/v1.wpol\"\n\
             [sinks.out]\ntype = \"parquet\"\npath = \"out\"\n\
             [admin]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"admin.token\"\n",
            revoked.join(", ")
        ),
    )
}

#[test]
fn key_rotation_in_the_order_docs_operations_gives() {
    let s = Scratch::new("rotation");
    let keys = s.join("keys");
    let (old, _) = keygen(&keys, "old");
    let (new, _) = keygen(&keys, "new");
    let module = |v: u64| s.write(&format!("m{v}.wasm"), versioned_module(v));
    let _ = sign(&[&old], NAME, 1, &module(1), &s.join("bundles/v1.wpol"));
    let _ = s.write("admin.token", "rotate-token\n");
    let port = free_tcp_port();
    let admin = Admin {
        base: format!("http://127.0.0.1:{port}"),
        token: "rotate-token".into(),
    };
    let start = |config: &Path| {
        let running = Running::start_piped(&s, &["run", "--config", config.to_str().unwrap()]);
        assert!(
            admin.wait_ready(Duration::from_secs(60)),
            "no admin API:\n{}",
            running.stderr()
        );
        running
    };
    let version = || {
        admin.get("/v1/policies")["policies"][0]["version"]
            .as_u64()
            .unwrap()
    };

    // Before: only the old key; v2 signed by it is pushed and accepted.
    let config = rotation_config(&s, port, &["old"], &[]);
    let running = start(&config);
    let v2 = sign(&[&old], NAME, 2, &module(2), &s.join("v2.wpol"));
    assert_eq!(admin.put(NAME, &v2).0, 200);
    assert_eq!(version(), 2);
    let _ = finish(running);

    // 1. Add the new key next to the old one; restart: the accepted v2 still runs.
    let config = rotation_config(&s, port, &["old", "new"], &[]);
    let running = start(&config);
    assert_eq!(version(), 2);
    // 2. Re-sign with the new key at a new version; it replaces the configured bundle, and
    // is pushed (a hot swap).
    let v3 = sign(&[&new], NAME, 3, &module(3), &s.join("v3.wpol"));
    std::fs::write(s.join("bundles/v1.wpol"), &v3).unwrap();
    assert_eq!(admin.put(NAME, &v3).0, 200);
    assert_eq!(version(), 3);
    let _ = finish(running);

    // 3. Revoke the old key; restart: v3 runs, and the old key can sign nothing more.
    let config = rotation_config(&s, port, &["new"], &["old"]);
    let running = start(&config);
    assert_eq!(version(), 3);
    let v4_old = sign(&[&old], NAME, 4, &module(4), &s.join("v4-old.wpol"));
    assert_refused(
        &admin.put(NAME, &v4_old),
        "revoked",
        "a bundle signed by the old key",
    );
    let v4 = sign(&[&new], NAME, 4, &module(4), &s.join("v4.wpol"));
    assert_eq!(admin.put(NAME, &v4).0, 200);
    let _ = finish(running);

    // The wrong order: the configured bundle is re-signed with the new key, but not at a
    // version above the accepted v2, which only the old key signed; then the old key is
    // revoked. The host refuses to start and names the stored bundle it cannot verify.
    let s2 = Scratch::new("rotation-wrong-order");
    std::fs::create_dir_all(s2.join("keys")).unwrap();
    for k in ["old.pub", "new.pub"] {
        std::fs::copy(keys.join(k), s2.join("keys").join(k)).unwrap();
    }
    let _ = sign(&[&old], NAME, 1, &module(1), &s2.join("bundles/v1.wpol"));
    let _ = s2.write("admin.token", "rotate-token\n");
    let config = rotation_config(&s2, port, &["old"], &[]);
    let running = Running::start_piped(&s2, &["run", "--config", config.to_str().unwrap()]);
    assert!(admin.wait_ready(Duration::from_secs(60)));
    assert_eq!(admin.put(NAME, &v2).0, 200);
    let _ = finish(running);
    let _ = sign(&[&new], NAME, 1, &module(1), &s2.join("bundles/v1.wpol"));
    let config = rotation_config(&s2, port, &["new"], &["old"]);
    let mut refused = Running::start_piped(&s2, &["run", "--config", config.to_str().unwrap()]);
    drop(refused.child.stdin.take());
    let done = refused.wait(Duration::from_secs(60));
    assert_ne!(done.code, Some(0));
    assert!(
        done.stderr.contains(&format!("state/policies/{NAME}.wpol"))
            && done.stderr.contains("revoked"),
        "{}",
        done.stderr
    );
}
