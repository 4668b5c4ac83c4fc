//! Backup blobs (enclava-vault/src/backup.rs, the restore path of `POST /keys/restore` and
//! `POST /secrets/restore`): arbitrary bytes never panic and never restore (only a vault with
//! the same root key can make a blob that authenticates).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let v = enclava_fuzz::vault();
    assert!(
        v.restore_key(data).is_err(),
        "an unauthentic key backup restored"
    );
    assert!(
        v.restore_secret(data).is_err(),
        "an unauthentic secret backup restored"
    );
});
