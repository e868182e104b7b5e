//! Both parties in one process, over a real TCP connection on the loopback interface.

use std::net::TcpListener;
use std::path::Path;

use mp2ml_mpc::{ChannelConfig, TcpChannel};

use crate::client::{run_client, Batch, ClientOutput};
use crate::error::{Result, RuntimeError};
use crate::plan::{ClientSetup, ServerSetup};
use crate::report::SessionReport;
use crate::server::serve;
use crate::session::SessionOptions;
use crate::wire;

/// Channel settings for a plan: frames bounded by the plan's largest ciphertext.
pub fn channel_config(params: &mp2ml_ckks::Params, opts: &SessionOptions) -> ChannelConfig {
    ChannelConfig {
        read_timeout: opts.timeout,
        write_timeout: opts.timeout,
        max_frame: wire::max_frame(params),
        ..ChannelConfig::default()
    }
}

/// The client's view of a server plan (the same public part and hash).
pub fn client_setup_of(server: &ServerSetup) -> ClientSetup {
    ClientSetup {
        plan: server.plan.public.clone(),
        hash: server.plan.public_hash.clone(),
        params: server.params.clone(),
        #[cfg(feature = "test-hooks")]
        probe: None,
    }
}

/// Runs one session with the server on a thread and the client on this one, over loopback
/// TCP. Returns the client's outputs and both reports (client, server).
pub fn run_local(
    server: &ServerSetup,
    batch: &Batch,
    opts: &SessionOptions,
) -> Result<(ClientOutput, SessionReport, SessionReport)> {
    let client = client_setup_of(server);
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| RuntimeError::Net(format!("bind 127.0.0.1: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| RuntimeError::Net(e.to_string()))?;
    let cfg = channel_config(&server.params, opts);
    std::thread::scope(|s| {
        let srv = s.spawn(move || -> Result<SessionReport> {
            let ch = TcpChannel::accept(&listener, cfg)?;
            serve(server, ch, opts)
        });
        let ch = TcpChannel::connect(addr, cfg)?;
        let client_result = run_client(&client, ch, batch, opts);
        let server_result = srv.join().map_err(|_| RuntimeError::ServerPanicked)?;
        match (client_result, server_result) {
            // When the server failed first, the client only sees the channel close: report
            // the server's error then.
            (Err(RuntimeError::Mpc(mp2ml_mpc::MpcError::Closed { .. })), Err(e)) => Err(e),
            (c, s) => {
                let (out, crep) = c?;
                Ok((out, crep, s?))
            }
        }
    })
}

/// Loads a `[B, ...]` float32 `.npy` batch whose per-image shape must match the plan.
pub fn load_batch(path: &Path, shape: &[usize], limit: Option<usize>) -> Result<Batch> {
    let (s, data) = crate::npy::read_f32(path)?;
    let per: usize = shape.iter().product();
    let ok = s.len() == shape.len() + 1 && s[1..] == *shape;
    if !ok {
        return Err(RuntimeError::Input(format!(
            "{}: shape {:?} does not match the plan's input [B, {}]",
            path.display(),
            s,
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut images = s[0];
    let mut data = data;
    if let Some(l) = limit {
        images = images.min(l);
        data.truncate(images * per);
    }
    Ok(Batch { images, data })
}
