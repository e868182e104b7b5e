//! The handshake, both halves: the client says which plan it runs and how many images it
//! brings; the server accepts or refuses with a reason; the client sends its public key.

use mp2ml_ckks::{PublicKey, SecretKey};
use mp2ml_ir::plan::MpcBackend;
use mp2ml_mpc::Channel;

use crate::error::{ProtocolError, Refusal, Result};
use crate::phase::Phase;
use crate::plan::{ClientSetup, ServerSetup};
use crate::session::MAX_IMAGES;
use crate::wire::{self, Hello, PROTOCOL_VERSION};

/// Client: sends the hello for `images` images, waits for the verdict, then sends the session's
/// public key.
pub(crate) fn client(
    setup: &ClientSetup,
    ch: &mut impl Channel,
    images: usize,
    mpc: Option<MpcBackend>,
    pk: &PublicKey,
) -> Result<()> {
    Phase::Handshake.enter(ch);
    let hello = Hello {
        version: PROTOCOL_VERSION,
        plan_hash: setup.hash.clone(),
        images: images as u64,
        mpc,
    };
    ch.send_frame(&hello.to_bytes())?;
    ch.flush()?;
    wire::recv_verdict(ch)?;
    wire::send_pk(ch, pk)
}

/// The server's admission decision on a client's hello once the plan checks passed:
/// `Err(reason)` refuses the session with that reason, which the client prints.
pub type Admit<'a> = dyn FnMut(&Hello) -> std::result::Result<(), String> + 'a;

/// Server: receives the hello, checks version, plan, batch size and the `--mpc` override
/// (`mpc`, the server's), asks `admit`, sends the verdict; on acceptance receives the client's
/// public key. Returns the number of images and the key.
pub(crate) fn server(
    setup: &ServerSetup,
    ch: &mut impl Channel,
    mpc: Option<MpcBackend>,
    admit: &mut Admit<'_>,
) -> Result<(usize, PublicKey)> {
    Phase::Handshake.enter(ch);
    let hello = Hello::from_bytes(&ch.recv_frame()?)?;
    let refusal = refusal(setup, &hello)
        .or_else(|| {
            (hello.mpc != mpc).then(|| Refusal::Backend {
                client: tag(hello.mpc),
                server: tag(mpc),
            })
        })
        .or_else(|| admit(&hello).err().map(Refusal::NotAdmitted));
    wire::send_verdict(ch, refusal.as_ref().map(ToString::to_string).as_deref())?;
    if let Some(r) = refusal {
        return Err(ProtocolError::RefusedClient(r).into());
    }
    let pk = wire::recv_pk(ch, &setup.params)?;
    Ok((hello.images as usize, pk))
}

/// How an override shows in a refusal.
fn tag(mpc: Option<MpcBackend>) -> String {
    mpc.map_or("the plan's choice".into(), |b| format!("--mpc {}", b.tag()))
}

/// Why the server refuses `hello`, if it does.
fn refusal(setup: &ServerSetup, hello: &Hello) -> Option<Refusal> {
    if hello.version != PROTOCOL_VERSION {
        Some(Refusal::Version {
            client: hello.version,
            server: PROTOCOL_VERSION,
        })
    } else if hello.plan_hash != setup.plan.public_hash {
        Some(Refusal::PlanHash {
            client: hello.plan_hash.clone(),
            server: setup.plan.public_hash.clone(),
        })
    } else if hello.images == 0 || hello.images > session_limit(&setup.plan.public) as u64 {
        Some(Refusal::BatchSize {
            images: hello.images,
            max: session_limit(&setup.plan.public),
        })
    } else {
        None
    }
}

/// Most images one session of `plan` may carry: σ counts the masked values over
/// `session_images` images (issue 13), so both parties refuse more.
pub(crate) fn session_limit(plan: &mp2ml_ir::plan::ClientPlan) -> usize {
    plan.session_images.min(MAX_IMAGES)
}

/// Client: a fresh key pair for one session.
pub(crate) fn client_keys(setup: &ClientSetup) -> (SecretKey, PublicKey) {
    let mut rng = mp2ml_ckks::os_rng();
    let sk = SecretKey::generate(&setup.params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng);
    (sk, pk)
}
