//! The Boolean back end of each MPC step (issue 14): Yao (half-gates, [`mp2ml_mpc::yao`]) or
//! GMW (XOR shares with Beaver triples, [`mp2ml_mpc::gmw`]), as the plan chose it per step or
//! as `mp2ml-run --mpc` overrides it for every step. Both back ends evaluate circuits of the
//! same layout on the same input bits, so shares, masks and outputs are handled alike; they
//! share the session's channel (Yao's engine owns it, GMW borrows it per call).
//!
//! Offline (before the client's input exists), a step makes its garbled tables (Yao) or its
//! triples (GMW); online it opens only what its protocol opens. When the group's tables do not
//! fit [`crate::session::TABLE_BUDGET`], Yao streams per step and GMW makes its triples at the
//! start of the step.

use mp2ml_ir::circuit::ShareCircuit;
use mp2ml_ir::plan::{ClientPlan, MpcBackend, MpcStep};
use mp2ml_mpc::{
    Channel, Evaluator, EvaluatorOffline, Garbler, GarblerOffline, GmwClient, GmwOffline, GmwServer,
};

use crate::error::{Inconsistency, Result};
use crate::session::{backend, SessionOptions};

/// The server's offline state of one step.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one handle per MPC step; the bulk (tables, triples) is on the heap either way"
)]
pub enum ServerOffline {
    /// Garbled ahead (the tables went out offline).
    Yao(GarblerOffline),
    /// Triples and input-sharing seeds.
    Gmw(GmwOffline),
}

/// The client's offline state of one step.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one handle per MPC step; the bulk (tables, triples) is on the heap either way"
)]
pub enum ClientOffline {
    /// Tables received, random OTs done.
    Yao(EvaluatorOffline),
    /// Triples and input-sharing seeds.
    Gmw(GmwOffline),
}

/// A step's back end and the circuit it runs.
pub fn step_circuit<'a>(
    plan: &'a ClientPlan,
    step: &MpcStep,
    opts: &SessionOptions,
) -> Result<(MpcBackend, &'a ShareCircuit)> {
    let b = backend(step, opts);
    let sc = plan
        .circuit(step.circuit_for(b))
        .map_err(Inconsistency::from)?;
    Ok((b, sc))
}

/// The server's two engines of a session.
pub struct ServerMpc<'a, C: Channel> {
    /// Yao (owns the channel).
    pub yao: &'a mut Garbler<C>,
    /// GMW.
    pub gmw: &'a mut GmwServer,
}

impl<C: Channel> ServerMpc<'_, C> {
    /// Offline work of `n` instances of `sc` with the server's input bits.
    pub fn offline(
        &mut self,
        b: MpcBackend,
        sc: &ShareCircuit,
        n: usize,
        bits: &[bool],
    ) -> Result<ServerOffline> {
        Ok(match b {
            MpcBackend::Yao => ServerOffline::Yao(self.yao.offline(&sc.circuit, n, bits)?),
            MpcBackend::Gmw => {
                let ch = self.yao.channel_mut();
                ServerOffline::Gmw(self.gmw.offline(ch, &sc.circuit, n, bits)?)
            }
        })
    }

    /// Online work of a step; without an offline handle (tables over budget) the whole step.
    pub fn online(
        &mut self,
        b: MpcBackend,
        handle: Option<ServerOffline>,
        sc: &ShareCircuit,
        n: usize,
        bits: impl FnOnce() -> Vec<bool>,
    ) -> Result<()> {
        let handle = match handle {
            Some(h) => h,
            None if b == MpcBackend::Yao => {
                return Ok(self.yao.run_streaming(&sc.circuit, n, &bits())?);
            }
            None => self.offline(b, sc, n, &bits())?,
        };
        match handle {
            ServerOffline::Yao(h) => self.yao.online(h)?,
            ServerOffline::Gmw(h) => self.gmw.online(self.yao.channel_mut(), h)?,
        }
        Ok(())
    }
}

/// The client's two engines of a session.
pub struct ClientMpc<'a, C: Channel> {
    /// Yao (owns the channel).
    pub yao: &'a mut Evaluator<C>,
    /// GMW.
    pub gmw: &'a mut GmwClient,
}

impl<C: Channel> ClientMpc<'_, C> {
    /// Offline work of `n` instances of `sc`.
    pub fn offline(&mut self, b: MpcBackend, sc: &ShareCircuit, n: usize) -> Result<ClientOffline> {
        Ok(match b {
            MpcBackend::Yao => ClientOffline::Yao(self.yao.offline(&sc.circuit, n)?),
            MpcBackend::Gmw => {
                let ch = self.yao.channel_mut();
                ClientOffline::Gmw(self.gmw.offline(ch, &sc.circuit, n)?)
            }
        })
    }

    /// Online work of a step on the client's input bits; returns the circuit outputs.
    pub fn online(
        &mut self,
        b: MpcBackend,
        handle: Option<ClientOffline>,
        sc: &ShareCircuit,
        n: usize,
        bits: &[bool],
    ) -> Result<Vec<bool>> {
        let handle = match handle {
            Some(h) => h,
            None if b == MpcBackend::Yao => {
                return Ok(self.yao.run_streaming(&sc.circuit, n, bits)?)
            }
            None => self.offline(b, sc, n)?,
        };
        Ok(match handle {
            ClientOffline::Yao(h) => self.yao.online(h, bits)?,
            ClientOffline::Gmw(h) => self.gmw.online(self.yao.channel_mut(), h, bits)?,
        })
    }
}
