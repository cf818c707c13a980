//! Writes the seed corpora under `fuzz/corpus/<target>/` and the seed signing key's public half
//! to `fuzz/seed-key.pub` (docs/fuzzing.md). Run from `fuzz/` after
//! `cargo xtask build-policies`:
//!
//! ```sh
//! cargo +nightly run --release --example make_seeds
//! ```
//!
//! The signing key is generated fresh and dropped: only its public key is kept, so the
//! `bundle` target's verifier trusts the seeds and nothing else. Rerunning rewrites the seeds
//! (new signatures); commit the public key with them.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use weir_abi::{BufferRef, ResultDesc, status};
use weir_fuzz::guest::{
    ARENA_BASE, Case, Guest, ImageBuilder, Morsel, POLICIES, policy_dir, valid_case,
};
use weir_fuzz::text::{Format, Mode};
use weir_host::engine::{Engine, Limits};
use weir_host::policy::abi::{OutputAssembler, read_result};
use weir_host::policy::bundle::{
    Bundle, BundleCaps, BundleLimits, BundleManifest, SignOptions, SigningKey, TrustStore,
    TrustedKey, sign_module, verify_bundle,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("creating the corpus directory");
    fs::write(dir.join(name), bytes).expect("writing a seed");
}

/// Checks that the host accepts a valid guest-output seed, with every declared column present:
/// a seed the host refused would only exercise its first check.
fn accepted(guest: &mut Guest, case: &[u8]) {
    let case = Case::parse(case).expect("a seed parses");
    guest.with_image(case.image, |shape, mem| {
        let total = case.morsels.iter().map(|m| m.input_rows).sum();
        let mut assembler =
            OutputAssembler::new(&shape.outputs, shape.filter, shape.row_preserving, total);
        for m in &case.morsels {
            let result = read_result(mem, m.result_ptr).expect("a result descriptor");
            assembler
                .add(mem, m.result_ptr, &result, m.input_rows)
                .unwrap_or_else(|e| panic!("{}: the host refuses a seed: {e}", shape.name));
        }
        let out = assembler
            .finish()
            .unwrap_or_else(|e| panic!("{}: the host refuses a seed: {e}", shape.name));
        assert!(
            out.columns.iter().all(Option::is_some),
            "{}: a column left out",
            shape.name
        );
    });
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");
    let modules = policy_dir();

    // Bundles and manifests: real modules signed with a fresh key on 2026-01-01.
    let key = SigningKey::generate().expect("a signing key");
    let second = SigningKey::generate().expect("a second signing key");
    fs::write(root.join("seed-key.pub"), key.public_key().to_pem()).expect("writing the key");
    let created_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let mut manifests = Vec::new();
    for (module, limits, expires) in [
        ("weir-guest-versioned", BundleLimits::default(), false),
        (
            "sensor-normalize",
            BundleLimits {
                batch_time_limit_ms: Some(500),
                memory_max_bytes: Some(64 << 20),
            },
            true,
        ),
    ] {
        let bytes = fs::read(modules.join(format!("{module}.wasm")))
            .unwrap_or_else(|e| panic!("{module}.wasm: {e}; run `cargo xtask build-policies`"));
        let embedded = weir_host::policy::inspect(&bytes)
            .expect("a loadable module")
            .manifest
            .name;
        let opts = SignOptions {
            name: embedded,
            version: 3,
            created_at,
            expires_at: expires.then(|| created_at + Duration::from_secs(30 * 86_400)),
            limits,
        };
        let keys: Vec<&SigningKey> = if expires {
            vec![&key, &second]
        } else {
            vec![&key]
        };
        let bundle = sign_module(&bytes, &keys, &opts).expect("signing");
        // The `bundle` target's verifier must accept it (same trust, a day after signing).
        let trusted = TrustedKey::new("seed", key.public_key(), &["*"]).expect("a trusted key");
        let trust = TrustStore::new(
            vec![trusted],
            &Default::default(),
            Default::default(),
            Default::default(),
        )
        .expect("a trust store");
        let now = created_at + Duration::from_secs(86_400);
        verify_bundle(&bundle, "seed", &trust, &BundleCaps::default(), now)
            .unwrap_or_else(|r| panic!("{module}: the seed bundle does not verify: {}", r.reason));
        write(&corpus.join("bundle"), &format!("{module}.wpol"), &bundle);
        let parsed = Bundle::parse(&bundle, &BundleCaps::default()).expect("a bundle");
        let manifest = parsed.manifest_bytes().to_vec();
        BundleManifest::from_json(&manifest).expect("a valid manifest");
        write(
            &corpus.join("manifest"),
            &format!("{module}.json"),
            &manifest,
        );
        manifests.push((manifest, parsed.signatures().to_vec()));
    }
    // A small container: a real manifest and signature records around an 8-byte module (its
    // hash does not match, so the verifier refuses it late).
    let (manifest, signatures) = &manifests[0];
    let small = Bundle::new(
        manifest.as_slice(),
        signatures.clone(),
        b"\0asm\x01\0\0\0".as_slice(),
    )
    .encode(&BundleCaps::default())
    .expect("encoding");
    write(&corpus.join("bundle"), "small-module.wpol", &small);

    // Guest output: valid results of every policy, in its real memory layout.
    let engine = Engine::new(Limits::default()).expect("the engine");
    for (index, name) in POLICIES.iter().enumerate() {
        let guest = Guest::load(&engine, name);
        let mut guest = guest;
        for (rows, out_rows, selection) in
            [(0, 0, false), (1, 1, false), (5, 3, true), (17, 9, false)]
        {
            let case = valid_case(index, &guest.shape, rows, out_rows, selection);
            accepted(&mut guest, &case);
            write(
                &corpus.join("guest_output"),
                &format!("{name}-{rows}-rows{}", if selection { "-sel" } else { "" }),
                &case,
            );
        }
    }
    // A guest error: `GUEST_ERROR` with a message.
    let mut image = ImageBuilder::default();
    let result_ref = image.put(&[0; size_of::<ResultDesc>()]);
    let message = image.put(b"sensor 7: humidity out of range");
    let mut bytes = image.finish();
    let result = ResultDesc {
        status: status::GUEST_ERROR,
        message: BufferRef {
            ptr: message.ptr,
            len: message.len,
        },
        ..bytemuck::Zeroable::zeroed()
    };
    let at = (result_ref.ptr - ARENA_BASE) as usize;
    bytes[at..at + size_of::<ResultDesc>()].copy_from_slice(bytemuck::bytes_of(&result));
    let case = Case::encode(
        0,
        &[Morsel {
            input_rows: 4,
            result_ptr: result_ref.ptr,
        }],
        &bytes,
    );
    write(&corpus.join("guest_output"), "guest-error", &case);

    // Decoders: sensor readings as NDJSON and CSV, declared and inferred.
    let ndjson = concat!(
        "{\"device_id\":\"dev-0001\",\"temperature\":21.5,\"seq\":1,\"ok\":true,\"ts\":\"2026-01-01T00:00:00Z\"}\n",
        "{\"device_id\":\"dev-0002\",\"temperature\":null,\"seq\":2,\"ok\":false,\"ts\":1767225601000}\n",
        "{\"device_id\":\"dev-0003\",\"temperature\":\"hot\",\"seq\":3}\n",
        "\n",
        "{\"device_id\":\"dev-0004\",\"temperature\":-4e1,\"seq\":4,\"extra\":[1,2]}\r\n",
        "{\"device_id\":\"dev-\\u00e9\",\"seq\":5}{\"seq\":6}\n",
        "{\"device_id\":\"dev-0007\",\"temperature\":19.25,\"seq\":7,\"ok\":null}",
    );
    let csv = concat!(
        "device_id,temperature,seq,ok\n",
        "dev-0001,21.5,1,true\n",
        "dev-0002,,2,false\r\n",
        "\"dev,0003\",hot,3,true\n",
        "\"multi\nline\",1.5,4,\n",
        "dev-0005,2.5\n",
        "dev-0006,3.5,6,true",
    );
    let base = Mode {
        format: Format::Ndjson,
        infer: false,
        batch_rows: 2,
        delimiter: b',',
        header: false,
        block: 64,
    };
    let modes = [
        ("ndjson-declared", base, ndjson),
        (
            "ndjson-inferred",
            Mode {
                infer: true,
                batch_rows: 1024,
                ..base
            },
            ndjson,
        ),
        (
            "csv-declared",
            Mode {
                format: Format::Csv,
                header: true,
                batch_rows: 7,
                ..base
            },
            csv,
        ),
        (
            "csv-inferred",
            Mode {
                format: Format::Csv,
                header: true,
                infer: true,
                batch_rows: 1,
                ..base
            },
            csv,
        ),
    ];
    for (name, mode, text) in modes {
        let mut seed = mode.encode().to_vec();
        seed.extend_from_slice(text.as_bytes());
        write(&corpus.join("decoders"), name, &seed);
    }
    println!("seeds written under {}", corpus.display());
}
