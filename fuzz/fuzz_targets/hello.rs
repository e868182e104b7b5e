//! The handshake's hello and the server's verdict frame on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mp2ml_mpc::{Channel, ChannelConfig, MemChannel};
use mp2ml_runtime::wire::{recv_verdict, Hello};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Hello::from_bytes(data) {
        assert_eq!(h.to_bytes(), data, "hello re-encodes differently");
    }
    // Raw bytes as a frame stream: length prefixes are untrusted.
    let cfg = ChannelConfig { max_frame: 1 << 16, read_timeout: std::time::Duration::from_millis(1), ..Default::default() };
    let (mut a, mut b) = MemChannel::pair(cfg);
    if a.send(data).is_ok() && a.flush().is_ok() {
        drop(a);
        let _ = recv_verdict(&mut b);
        let _ = b.recv_frame();
    }
});
