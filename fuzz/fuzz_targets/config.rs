//! The configuration loader: TOML text through deserialisation and every check `keygate
//! serve` makes before it starts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = keygate::config::Config::from_toml(text) {
        // Settings derived from a valid configuration are there to read.
        // Settings derived from a valid configuration are there to read, and what `serve`
        // computes from them does not fail.
        let settings = config.server_settings().expect("validated");
        let _ = settings.drain_grace();
        config.posture_settings().expect("validated");
    }
});
