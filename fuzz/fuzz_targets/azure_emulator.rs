//! The Key Vault emulator's request parsing and handling: paths, query strings, JSON bodies,
//! the token endpoint. The first byte chooses a key vault or a Managed HSM.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("emulator_requests.inc.rs");

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    send_all(
        keygate_emulators::azure::router_for_fuzzing(kind & 1 == 1),
        rest,
    );
});
