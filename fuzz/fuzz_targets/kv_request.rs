//! Key Vault request bodies (enclava-vault/src/model.rs `decode` of every request type), then
//! the vault operation the server runs with the decoded request, against a real (in-memory,
//! unsealed dev) vault. Nothing panics; bad bodies are `BadParameter`.
#![no_main]

use enclava_vault::keys::release::ReleaseRequest;
use enclava_vault::model::decode;
use enclava_vault::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let v = enclava_fuzz::vault();
    match selector % 11 {
        0 => {
            if let Ok(p) = decode::<KeyCreateParameters>(body) {
                // RSA key generation is slow and not parsing: leave it to the unit tests.
                if !p.kty.to_ascii_uppercase().contains("RSA") {
                    let _ = v.create_key("fz-create", &p);
                }
            }
        }
        1 => {
            if let Ok(p) = decode::<KeyImportParameters>(body) {
                let _ = v.import_key("fz-import", &p);
            }
        }
        2 => {
            if let Ok(p) = decode::<KeyUpdateParameters>(body) {
                let _ = v.update_key("fz-update", None, &p);
            }
        }
        3 => {
            if let Ok(p) = decode::<KeyOperationsParameters>(body) {
                for k in enclava_fuzz::OP_KEYS {
                    let _ = v.encrypt(k, None, &p);
                    let _ = v.decrypt(k, None, &p);
                    let _ = v.wrap_key(k, None, &p);
                    let _ = v.unwrap_key(k, None, &p);
                }
            }
        }
        4 => {
            if let Ok(p) = decode::<KeySignParameters>(body) {
                for k in enclava_fuzz::OP_KEYS {
                    let _ = v.sign(k, None, &p);
                }
            }
        }
        5 => {
            if let Ok(p) = decode::<KeyVerifyParameters>(body) {
                for k in enclava_fuzz::OP_KEYS {
                    let _ = v.verify(k, None, &p);
                }
            }
        }
        6 => {
            if let Ok(p) = decode::<GetRandomBytesRequest>(body) {
                let _ = v.rng(p.count);
            }
        }
        7 => {
            if let Ok(p) = decode::<KeyRotationPolicy>(body) {
                let _ = v.set_rotation_policy("fz-update", &p);
            }
        }
        8 => {
            if let Ok(p) = decode::<SecretSetParameters>(body) {
                let _ = v.set_secret("fz-secret", &p);
            }
        }
        9 => {
            if let Ok(p) = decode::<SecretUpdateParameters>(body) {
                let _ = v.update_secret("fz-secret", None, &p);
            }
        }
        _ => {
            let _ = decode::<ReleaseRequest>(body);
            let _ = decode::<BackupBlob>(body);
        }
    }
});
