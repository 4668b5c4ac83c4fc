//! The whole run protocol, steps (a) to (e), each a function of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{SecondsFormat, Utc};
use enclava_envelope::KeyWrapper;
use enclava_runtime::{Access, DirMapping, Limits, Manifest, Runtime, RuntimeError};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::client::{CallError, Client, Connection};
use crate::data::{
    InputRecord, OutputRecord, PrivateDir, Recipient, ReleasedKeys, RsaOaepWrapper, SealedInput,
    decrypt_input, encrypt_output, input_target, output_file_name, spki_from_components,
};
use crate::error::{EnclaveError, FailedRule, RefusedBy};
use crate::evidence::{CollectedEvidence, TeeChoice, collect, native_request};
use crate::keyhsm::{ReleasedKey, released_key_from_jws};
use crate::keys::{EphemeralKeys, RuntimeData};
use crate::receipt::{AttestationInfo, Receipt, SignedReceipt, WorkloadInfo, sign_receipt};
use enclava_client::wire::{ReleaseRequest, ReleaseResult};

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub manifest: Manifest,
    pub module: Vec<u8>,
    pub tee: TeeChoice,
    pub inputs: Vec<SealedInput>,
    /// Where the output envelopes are written (created if missing).
    pub output_dir: PathBuf,
    pub connection: Connection,
    /// Root of the attester's device paths (normally `/`).
    pub attester_root: PathBuf,
    /// Where private plaintext directories are made (default: `/dev/shm`, else the temp dir).
    pub scratch_root: Option<PathBuf>,
    /// The host's caps on the manifest's limits.
    pub host_limits: Option<Limits>,
}

/// Progress of a run, reported as each step completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Measured {
        measurement: String,
    },
    KeysGenerated {
        wrapping_kid: String,
    },
    Challenge {
        nonce_prefix: String,
    },
    Evidence {
        tee: String,
        bytes: usize,
    },
    Attested {
        jti: String,
        issuer: String,
    },
    Released {
        kid: String,
        kty: String,
    },
    InputDecrypted {
        name: String,
        guest_path: String,
        bytes: u64,
    },
    WorkloadFinished {
        exit_code: i32,
        millis: u64,
    },
    OutputEncrypted {
        guest_path: String,
        file: String,
        recipient: String,
    },
    ReceiptSigned {
        jti: String,
    },
    Wiped,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Measured { measurement } => write!(f, "(a) workload measurement {measurement}"),
            Step::KeysGenerated { wrapping_kid } => write!(
                f,
                "(b) ephemeral RSA-2048 wrapping key {wrapping_kid} and P-256 receipt key generated in memory"
            ),
            Step::Challenge { nonce_prefix } => {
                write!(
                    f,
                    "(b) challenge from the attestation service {nonce_prefix}…"
                )
            }
            Step::Evidence { tee, bytes } => write!(
                f,
                "(c) {tee} evidence collected ({bytes} bytes) over SHA-256(runtime data)"
            ),
            Step::Attested { jti, issuer } => {
                write!(f, "(c) attested: token jti {jti} from {issuer}")
            }
            Step::Released { kid, kty } => write!(f, "(c) key released: {kid} ({kty})"),
            Step::InputDecrypted {
                name,
                guest_path,
                bytes,
            } => write!(
                f,
                "(d) input {name} decrypted to {guest_path} ({bytes} bytes, read-only)"
            ),
            Step::WorkloadFinished { exit_code, millis } => {
                write!(f, "(d) workload exited with {exit_code} after {millis} ms")
            }
            Step::OutputEncrypted {
                guest_path,
                file,
                recipient,
            } => write!(
                f,
                "(d) output {guest_path} encrypted to {recipient} -> {file}"
            ),
            Step::ReceiptSigned { jti } => {
                write!(
                    f,
                    "(e) receipt signed with the attested receipt key (token {jti})"
                )
            }
            Step::Wiped => write!(f, "(d) plaintext directories wiped; released keys dropped"),
        }
    }
}

/// A completed run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub receipt: SignedReceipt,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// The attestation token and what the run reads from it (unverified: the vault verifies it).
#[derive(Debug, Clone)]
pub struct Attested {
    pub token: String,
    pub claims: Map<String, Value>,
    pub jti: String,
    pub issuer: String,
}

/// A manifest key reference `NAME` or `NAME/VERSION`, checked to be a safe path.
pub fn key_path(reference: &str) -> Result<String, EnclaveError> {
    let (name, version) = reference.split_once('/').unwrap_or((reference, ""));
    let name_ok = !name.is_empty()
        && name.len() <= 127
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let version_ok = version.len() <= 64 && version.bytes().all(|b| b.is_ascii_alphanumeric());
    if !name_ok || !version_ok {
        return Err(EnclaveError::bad(format!(
            "manifest key {reference:?}: expected NAME or NAME/VERSION (NAME 1-127 of [0-9A-Za-z-], VERSION alphanumeric)"
        )));
    }
    Ok(format!("/keys/{name}/{version}"))
}

/// Checks everything local before anything is sent: manifest, module digest, inputs, recipients.
pub fn check_request(req: &RunRequest) -> Result<Vec<(String, String)>, EnclaveError> {
    req.manifest
        .validate()
        .map_err(|e| EnclaveError::bad(format!("manifest: {e}")))?;
    let digest = enclava_runtime::module_sha256(&req.module);
    if digest != req.manifest.module_sha256 {
        return Err(EnclaveError::bad(format!(
            "module digest mismatch: the manifest expects sha256 {}, the module has {digest}",
            req.manifest.module_sha256
        )));
    }
    for k in &req.manifest.keys {
        key_path(k)?;
    }
    let mut targets = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for i in &req.inputs {
        let t = input_target(&req.manifest, &i.name)?;
        if !seen.insert(t.clone()) {
            return Err(EnclaveError::bad(format!(
                "--input {}: given twice",
                i.name
            )));
        }
        if !i.path.is_file() {
            return Err(EnclaveError::bad(format!(
                "--input {}: {} is not a readable file",
                i.name,
                i.path.display()
            )));
        }
        targets.push(t);
    }
    let mut names = std::collections::BTreeSet::new();
    for (path, r) in &req.manifest.outputs {
        Recipient::parse(r)
            .map_err(|e| EnclaveError::bad(format!("manifest output {path}: {e}")))?;
        if !names.insert(output_file_name(path)) {
            return Err(EnclaveError::bad(format!(
                "manifest output {path}: another output has the same file name {}",
                output_file_name(path)
            )));
        }
    }
    Ok(targets)
}

/// Step (b): a challenge from the attestation service.
pub fn challenge(client: &Client) -> Result<String, EnclaveError> {
    // The typed client checks the shape (`{"nonce": non-empty, at most 1024 characters}`).
    client
        .typed()
        .challenge()
        .map(|c| c.nonce)
        .map_err(|e| CallError::from(e).into_enclave("GET /challenge"))
}

/// Step (c): the native attestation request; a denial is [`EnclaveError::Refused`] naming every
/// failed rule.
pub fn attest(
    client: &Client,
    ev: &CollectedEvidence,
    runtime_data: &RuntimeData,
    nonce: &str,
) -> Result<Attested, EnclaveError> {
    attest_with_gpu(client, ev, runtime_data, nonce, None)
}

/// [`attest`] with GPU evidence attached (composite CPU+GPU attestation); the runtime data must
/// carry the GPUs' nonce ([`RuntimeData::with_gpu_nonce`]).
pub fn attest_with_gpu(
    client: &Client,
    ev: &CollectedEvidence,
    runtime_data: &RuntimeData,
    nonce: &str,
    gpu: Option<&crate::evidence::GpuAttachment>,
) -> Result<Attested, EnclaveError> {
    let mut body = native_request(ev, &runtime_data.json, nonce);
    if let Some(g) = gpu {
        g.attach(&mut body);
    }
    let answer = match client.typed().attest_native(&body).map_err(CallError::from) {
        Ok(a) => a,
        Err(CallError::Http(h))
            if h.status == 403
                || (h.status == 400
                    && (h.code == "evidence_invalid" || h.code == "invalid_data")) =>
        {
            return Err(EnclaveError::Refused {
                by: RefusedBy::Attestation,
                status: h.status,
                code: h.code,
                message: h.message,
                failed: h.failed,
            });
        }
        Err(e) => return Err(e.into_enclave("POST /attest/native")),
    };
    let token = answer.token;
    let decoded = enclava_token::decode_unverified(&token)
        .map_err(|e| EnclaveError::Server(format!("the attestation token does not decode: {e}")))?;
    let claims = decoded.claims;
    let text = |n: &str| {
        claims
            .get(n)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(Attested {
        jti: text("jti"),
        issuer: text("iss"),
        token,
        claims,
    })
}

/// Step (c): release of one key named by the manifest, unwrapped in memory (step (d)).
pub fn release(
    client: &Client,
    reference: &str,
    attested: &Attested,
    keys: &EphemeralKeys,
) -> Result<ReleasedKey, EnclaveError> {
    let path = format!("{}/release", key_path(reference)?);
    let body = ReleaseRequest {
        target: attested.token.clone(),
        nonce: None,
        enc: Some("RSA_AES_KEY_WRAP_256".into()),
    };
    let answer: ReleaseResult = match client
        .typed()
        .send("POST", &path, &[], Some(&body))
        .map_err(CallError::from)
    {
        Ok(v) => v,
        Err(CallError::Http(h)) if h.status == 401 || h.status == 403 => {
            let mut failed = h.failed;
            if failed.is_empty() {
                failed = failed_from_release_message(&h.message);
            }
            return Err(EnclaveError::Refused {
                by: RefusedBy::Release,
                status: h.status,
                code: h.code,
                message: format!("key {reference}: {}", h.message),
                failed,
            });
        }
        Err(CallError::Http(h)) if h.status == 404 => {
            return Err(EnclaveError::bad(format!(
                "key {reference} named by the manifest: {} ({})",
                h.message, h.code
            )));
        }
        Err(e) => return Err(e.into_enclave(&format!("POST {path}"))),
    };
    let jws = answer.value.as_str();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    crate::release_sig::verify_release_jws(jws, client.pinned_ca(), now)?;
    released_key_from_jws(jws, keys)
}

/// The vault's release denial names each failed condition as
/// `claim 'PATH': expected X, found Y (at LOCATION)`; this recovers them when the answer has no
/// structured `failed` list.
pub fn failed_from_release_message(message: &str) -> Vec<FailedRule> {
    let mut out = Vec::new();
    for part in message.split("claim '").skip(1) {
        let Some((path, rest)) = part.split_once("': expected ") else {
            continue;
        };
        let (expected, rest) = rest.split_once(", found ").unwrap_or((rest, ""));
        let (found, at) = match rest.rsplit_once(" (at ") {
            Some((f, a)) => (f, a.split(')').next().unwrap_or("")),
            None => (rest.split("; ").next().unwrap_or(rest), ""),
        };
        let found = found.split("; claim").next().unwrap_or(found);
        out.push(FailedRule {
            rule: at.to_string(),
            claim_path: path.to_string(),
            expected: expected.to_string(),
            found: found.trim_end_matches(';').to_string(),
        });
        if out.len() >= 64 {
            break;
        }
    }
    out
}

/// Resolves a recipient to a key wrapper (reading a vault key's public part when not pinned).
pub fn recipient_wrapper(client: &Client, recipient: &str) -> Result<RsaOaepWrapper, EnclaveError> {
    match Recipient::parse(recipient)? {
        Recipient::Pem { spki } => RsaOaepWrapper::new(RsaOaepWrapper::pem_kid(&spki), &spki),
        Recipient::VaultKey {
            kid,
            spki: Some(spki),
        } => RsaOaepWrapper::new(kid, &spki),
        Recipient::VaultKey { kid, spki: None } => {
            let rest = kid
                .strip_prefix(client.base())
                .and_then(|r| r.strip_prefix("/keys/"))
                .ok_or_else(|| {
                    EnclaveError::bad(format!(
                        "recipient {kid}: not a key of {} (pin its public key with #spki=...)",
                        client.base()
                    ))
                })?;
            let path = key_path(rest)?;
            let v = client
                .call("GET", &path, None, true)
                .map_err(|e| e.into_enclave(&format!("reading recipient key {kid}")))?;
            let b = |m: &str| {
                v.pointer(&format!("/key/{m}"))
                    .and_then(Value::as_str)
                    .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
                    .ok_or_else(|| {
                        EnclaveError::Server(format!(
                            "recipient {kid}: the vault returned no RSA {m}"
                        ))
                    })
            };
            let spki = spki_from_components(&b("n")?, &b("e")?)?;
            RsaOaepWrapper::new(kid, &spki)
        }
    }
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn runtime_error(e: RuntimeError) -> EnclaveError {
    match e {
        RuntimeError::Manifest(m) => EnclaveError::bad(format!("manifest: {m}")),
        RuntimeError::ModuleDigestMismatch { .. } | RuntimeError::Compile(_) => {
            EnclaveError::bad(e.to_string())
        }
        RuntimeError::Engine(_) | RuntimeError::HostDir { .. } | RuntimeError::Io { .. } => {
            EnclaveError::internal(e.to_string())
        }
        other => EnclaveError::Workload(other.to_string()),
    }
}

fn tail(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let t = text.trim_end();
    let start = t.len().saturating_sub(max);
    let mut s = start;
    while !t.is_char_boundary(s) {
        s += 1;
    }
    t.get(s..).unwrap_or("").to_string()
}

/// Runs the whole protocol. `progress` sees every step as it completes.
pub fn run(req: &RunRequest, progress: &mut dyn FnMut(&Step)) -> Result<RunReport, EnclaveError> {
    let started_at = now_rfc3339();
    let targets = check_request(req)?;
    std::fs::create_dir_all(&req.output_dir).map_err(|e| {
        EnclaveError::bad(format!("--output-dir {}: {e}", req.output_dir.display()))
    })?;
    let client = Client::new(req.connection.clone())?;

    // (a) measure
    let measurement = enclava_runtime::measure(&req.module, &req.manifest);
    progress(&Step::Measured {
        measurement: hex::encode(measurement),
    });
    // Compile the measured bytes into the shared runtime's cache while attestation and key release
    // wait on the network; the run below then finds them compiled (its cache is keyed by the
    // SHA-256 of the bytes that run, so only these exact bytes can ever use this compilation).
    let precompile = {
        let module = req.module.clone();
        std::thread::Builder::new()
            .name("enclava-precompile".into())
            .spawn(move || Runtime::shared().and_then(|rt| rt.precompile(&module)))
            .ok()
    };

    // (b) keys, challenge, runtime data
    let keys = EphemeralKeys::generate()?;
    progress(&Step::KeysGenerated {
        wrapping_kid: keys.wrapping_kid().to_string(),
    });
    let nonce = challenge(&client)?;
    progress(&Step::Challenge {
        nonce_prefix: nonce.chars().take(8).collect(),
    });
    // GPU evidence named by ENCLAVA_GPU_EVIDENCE is attested with the CPU evidence.
    let gpu = crate::evidence::GpuAttachment::from_env()?;
    let rd = RuntimeData::with_gpu_nonce(
        &keys,
        &measurement,
        &nonce,
        gpu.as_ref().map(|g| g.nonce.as_str()),
    )?;

    // (c) evidence, attestation, release
    let ev = collect(req.tee, &req.attester_root, &rd.report_data(), &measurement)?;
    progress(&Step::Evidence {
        tee: ev.tee.to_string(),
        bytes: ev.evidence.len(),
    });
    let attested = attest_with_gpu(&client, &ev, &rd, &nonce, gpu.as_ref())?;
    progress(&Step::Attested {
        jti: attested.jti.clone(),
        issuer: attested.issuer.clone(),
    });
    let mut released = Vec::new();
    for k in &req.manifest.keys {
        let rk = release(&client, k, &attested, &keys)?;
        progress(&Step::Released {
            kid: rk.kid.clone(),
            kty: rk.kty.clone(),
        });
        released.push(rk);
    }
    let mut released = ReleasedKeys::new(released);
    let keys_released = released.kids();

    // Recipients are resolved before the workload runs, so a bad recipient costs no run.
    let mut wrappers: BTreeMap<String, RsaOaepWrapper> = BTreeMap::new();
    for (path, r) in &req.manifest.outputs {
        wrappers.insert(path.clone(), recipient_wrapper(&client, r)?);
    }

    // (d) private dirs, inputs, run
    let mut dirs: BTreeMap<String, PrivateDir> = BTreeMap::new();
    for guest in req.manifest.dirs.keys() {
        dirs.insert(guest.clone(), PrivateDir::new(req.scratch_root.as_deref())?);
    }
    let mut inputs: Vec<InputRecord> = Vec::new();
    for (input, (guest_dir, file)) in req.inputs.iter().zip(targets.iter()) {
        let host = dirs
            .get(guest_dir)
            .map(|d| d.path().to_path_buf())
            .ok_or_else(|| EnclaveError::internal("input directory vanished"))?;
        let rec = decrypt_input(input, guest_dir, file, &host, &released)?;
        progress(&Step::InputDecrypted {
            name: rec.name.clone(),
            guest_path: rec.guest_path.clone(),
            bytes: rec.plaintext_bytes,
        });
        inputs.push(rec);
    }
    // The released keys are not needed once the inputs are open.
    released.wipe();

    let mapping: Vec<DirMapping> = req
        .manifest
        .dirs
        .iter()
        .filter_map(|(g, a)| dirs.get(g).map(|d| (d.path().to_path_buf(), g.clone(), *a)))
        .collect();
    let host_limits = req.host_limits.unwrap_or(req.manifest.limits);
    // A failed precompile is not reported here: the run compiles again and reports the error.
    if let Some(handle) = precompile {
        let _ = handle.join();
    }
    let runtime = Runtime::shared().map_err(runtime_error)?;
    let outcome = runtime
        .run(&req.module, &req.manifest, &mapping, &host_limits)
        .map_err(runtime_error)?;
    // Instantiation and execution (what the time limit bounds), not compilation.
    let workload_ms = u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX);
    progress(&Step::WorkloadFinished {
        exit_code: outcome.exit_code,
        millis: workload_ms,
    });
    if outcome.exit_code != 0 {
        return Err(EnclaveError::Workload(format!(
            "the workload exited with code {}; stderr: {}",
            outcome.exit_code,
            tail(&outcome.stderr, 2000)
        )));
    }

    // (d) outputs
    let mut outputs: Vec<OutputRecord> = Vec::new();
    // All outputs or none: envelopes already written are removed when a later one fails.
    let remove_written = |outputs: &[OutputRecord]| {
        for o in outputs {
            let _ = std::fs::remove_file(req.output_dir.join(&o.file));
        }
    };
    for (guest_path, wrapper) in &wrappers {
        let rec = match host_path_of(&req.manifest, &dirs, guest_path)
            .and_then(|host| encrypt_output(guest_path, &host, wrapper, &req.output_dir))
        {
            Ok(r) => r,
            Err(e) => {
                remove_written(&outputs);
                return Err(e);
            }
        };
        progress(&Step::OutputEncrypted {
            guest_path: guest_path.clone(),
            file: rec.file.clone(),
            recipient: wrapper.kid().to_string(),
        });
        outputs.push(rec);
    }
    for (_, d) in std::mem::take(&mut dirs) {
        d.wipe()?;
    }
    progress(&Step::Wiped);

    // (e) receipt
    let receipt = Receipt {
        version: 1,
        workload: WorkloadInfo {
            name: req.manifest.name.clone(),
            measurement: hex::encode(measurement),
            module_sha256: req.manifest.module_sha256.clone(),
            manifest_sha256: hex::encode(Sha256::digest(req.manifest.canonical_json())),
        },
        tee: ev.tee.to_string(),
        simulated: !ev.tee.is_hardware(),
        attestation: AttestationInfo {
            issuer: attested.issuer.clone(),
            jti: attested.jti.clone(),
            token: attested.token.clone(),
        },
        keys_released,
        inputs,
        outputs,
        exit_code: outcome.exit_code,
        started_at,
        finished_at: now_rfc3339(),
        workload_ms,
    };
    let signed = sign_receipt(receipt, &keys)?;
    progress(&Step::ReceiptSigned {
        jti: attested.jti.clone(),
    });
    Ok(RunReport {
        receipt: signed,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
    })
}

/// The host path of a guest output file.
fn host_path_of(
    manifest: &Manifest,
    dirs: &BTreeMap<String, PrivateDir>,
    guest_path: &str,
) -> Result<PathBuf, EnclaveError> {
    for (dir, access) in &manifest.dirs {
        if *access != Access::ReadWrite {
            continue;
        }
        let rest = if dir == "/" {
            guest_path.strip_prefix('/')
        } else {
            guest_path
                .strip_prefix(dir.as_str())
                .and_then(|r| r.strip_prefix('/'))
        };
        if let (Some(rest), Some(d)) = (rest, dirs.get(dir)) {
            // The workload may have planted symbolic links: every component must be a real
            // directory and the output a regular file, so the host never follows a link out of
            // the private directory (the workload has exited; nothing changes them any more).
            let mut p = d.path().to_path_buf();
            let segs: Vec<&str> = rest.split('/').collect();
            for (i, seg) in segs.iter().enumerate() {
                p.push(seg);
                let last = i + 1 == segs.len();
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if last && m.file_type().is_file() => {}
                    Ok(m) if !last && m.file_type().is_dir() => {}
                    Ok(_) => {
                        return Err(EnclaveError::Workload(format!(
                            "output {guest_path}: expected a regular file in real directories, found a symbolic link or special file"
                        )));
                    }
                    Err(e) => {
                        return Err(EnclaveError::Workload(format!(
                            "the workload did not produce its declared output {guest_path}: {e}"
                        )));
                    }
                }
            }
            return Ok(p);
        }
    }
    Err(EnclaveError::bad(format!(
        "manifest output {guest_path}: not inside a read-write directory"
    )))
}

/// Writes a signed receipt as pretty JSON.
pub fn write_receipt(path: &Path, receipt: &SignedReceipt) -> Result<(), EnclaveError> {
    let text = serde_json::to_vec_pretty(receipt)
        .map_err(|e| EnclaveError::internal(format!("receipt does not serialize: {e}")))?;
    std::fs::write(path, text)
        .map_err(|e| EnclaveError::bad(format!("cannot write the receipt {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_request(module: Vec<u8>) -> RunRequest {
        let manifest = Manifest {
            name: "w".into(),
            module_sha256: enclava_runtime::module_sha256(&module),
            args: vec!["--input".into(), "/input".into()],
            env: Default::default(),
            dirs: [
                ("/input".to_string(), Access::ReadOnly),
                ("/output".to_string(), Access::ReadWrite),
            ]
            .into(),
            keys: ["data-key".to_string()].into(),
            outputs: Default::default(),
            limits: Limits {
                memory_bytes: 1 << 20,
                time_ms: 1000,
            },
        };
        RunRequest {
            manifest,
            module,
            tee: TeeChoice::Sim,
            inputs: vec![],
            output_dir: PathBuf::from("/nonexistent-out"),
            connection: Connection {
                url: "https://127.0.0.1:9".into(),
                token: None,
                ca_cert: None,
                timeout: std::time::Duration::from_secs(1),
            },
            attester_root: PathBuf::from("/"),
            scratch_root: None,
            host_limits: None,
        }
    }

    #[test]
    fn measurement_changes_with_one_byte_of_module_or_manifest() {
        let module = b"\0asm\x01\0\0\0 some module bytes".to_vec();
        let req = sample_request(module.clone());
        let base = enclava_runtime::measure(&req.module, &req.manifest);
        for i in 0..module.len() {
            let mut m = module.clone();
            m[i] ^= 0x01;
            assert_ne!(
                enclava_runtime::measure(&m, &req.manifest),
                base,
                "byte {i}"
            );
        }
        let mut manifest = req.manifest.clone();
        manifest.args[1] = "/inpuT".into();
        assert_ne!(enclava_runtime::measure(&module, &manifest), base);
        let mut manifest = req.manifest.clone();
        manifest.limits.time_ms += 1;
        assert_ne!(enclava_runtime::measure(&module, &manifest), base);
        let mut manifest = req.manifest.clone();
        manifest.keys.insert("another-key".into());
        assert_ne!(enclava_runtime::measure(&module, &manifest), base);
        assert_eq!(
            enclava_runtime::measure(&module, &req.manifest.clone()),
            base
        );
    }

    #[test]
    fn local_input_is_checked_before_anything_is_sent() {
        let req = sample_request(b"module".to_vec());
        assert!(check_request(&req).is_ok());
        // A module the manifest does not name.
        let mut bad = req.clone();
        bad.module.push(0);
        let e = check_request(&bad).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("module digest mismatch"), "{e}");
        // Missing input file, twice the same target, an unusable key name, a bad recipient.
        let mut bad = req.clone();
        bad.inputs = vec![SealedInput {
            name: "t.csv".into(),
            path: "/nonexistent/x.enc".into(),
        }];
        assert_eq!(check_request(&bad).unwrap_err().exit_code(), 2);
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut bad = req.clone();
        bad.inputs = vec![
            SealedInput {
                name: "t.csv".into(),
                path: f.path().into(),
            },
            SealedInput {
                name: "/input/t.csv".into(),
                path: f.path().into(),
            },
        ];
        assert!(
            check_request(&bad)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let mut bad = req.clone();
        bad.manifest.keys = ["a.b".to_string()].into();
        assert_eq!(check_request(&bad).unwrap_err().exit_code(), 2);
        let mut bad = req.clone();
        bad.manifest.outputs = [("/output/x".to_string(), "analyst".to_string())].into();
        assert_eq!(check_request(&bad).unwrap_err().exit_code(), 2);
        // The whole run stops there too (nothing listens on port 9, so a network attempt would be
        // exit 3, not 2).
        let mut bad = req.clone();
        bad.module.push(0);
        assert_eq!(run(&bad, &mut |_| {}).unwrap_err().exit_code(), 2);
        // And a good request with an unreachable server is a server error.
        let dir = tempfile::tempdir().unwrap();
        let mut good = req;
        good.output_dir = dir.path().join("out");
        assert_eq!(run(&good, &mut |_| {}).unwrap_err().exit_code(), 3);
    }

    #[cfg(unix)]
    #[test]
    fn outputs_behind_symbolic_links_are_refused() {
        let req = sample_request(b"m".to_vec());
        let mut dirs = BTreeMap::new();
        dirs.insert("/output".to_string(), PrivateDir::new(None).unwrap());
        let out = dirs["/output"].path().to_path_buf();
        std::fs::write(out.join("ok.json"), b"{}").unwrap();
        assert_eq!(
            host_path_of(&req.manifest, &dirs, "/output/ok.json").unwrap(),
            out.join("ok.json")
        );
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(outside.path(), b"host secret").unwrap();
        std::os::unix::fs::symlink(outside.path(), out.join("leak.json")).unwrap();
        std::fs::create_dir(out.join("real")).unwrap();
        std::os::unix::fs::symlink("/etc", out.join("sub")).unwrap();
        for p in [
            "/output/leak.json",
            "/output/sub/hostname",
            "/output/missing",
            "/output/real",
        ] {
            let e = host_path_of(&req.manifest, &dirs, p).unwrap_err();
            assert_eq!(e.exit_code(), 4, "{p}: {e}");
        }
        assert_eq!(
            host_path_of(&req.manifest, &dirs, "/input/x")
                .unwrap_err()
                .exit_code(),
            2
        );
        // Wiping does not follow the links either.
        for (_, d) in dirs {
            d.wipe().unwrap();
        }
        assert!(!out.exists());
        assert_eq!(std::fs::read(outside.path()).unwrap(), b"host secret");
    }

    #[test]
    fn key_references_are_safe_paths() {
        assert_eq!(key_path("data-key").unwrap(), "/keys/data-key/");
        assert_eq!(
            key_path("data-key/abc123").unwrap(),
            "/keys/data-key/abc123"
        );
        for bad in ["", "a/b/c", "../x", "a b", "a/..", "a:b", "a.b"] {
            assert!(key_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn release_denials_are_parsed_into_rules() {
        let msg = "the attestation token does not satisfy the key's release policy: claim 'x-enclava-measurement': expected equals \"ab\", found \"cd\" (at anyOf[0].allOf[1]); claim 'x-ms-attestation-type': expected equals \"sevsnpvm\", found \"enclava-sim\" (at anyOf[0].allOf[0])";
        let f = failed_from_release_message(msg);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].claim_path, "x-enclava-measurement");
        assert_eq!(f[0].expected, "equals \"ab\"");
        assert_eq!(f[0].found, "\"cd\"");
        assert_eq!(f[0].rule, "anyOf[0].allOf[1]");
        assert_eq!(f[1].claim_path, "x-ms-attestation-type");
        assert!(failed_from_release_message("no rules here").is_empty());
    }

    #[test]
    fn stderr_tail_is_bounded_and_utf8_safe() {
        assert_eq!(tail(b"abc\n", 10), "abc");
        assert_eq!(tail("ééé".as_bytes(), 3), "é");
    }
}
