//! The Cloud KMS emulator's request parsing and handling: paths, query strings, JSON bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("emulator_requests.inc.rs");

fuzz_target!(|data: &[u8]| {
    let app =
        keygate_emulators::gcp::router(std::sync::Arc::new(keygate_emulators::Hooks::default()));
    send_all(app, data);
});
