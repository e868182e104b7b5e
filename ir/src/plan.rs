//! The execution plan: what the compiler writes and the runtime executes.
//!
//! Two views of one plan are written:
//! - [`ClientPlan`] (`NAME.client.ron`): the public part: CKKS parameters, input shape and scale,
//!   the MPC steps with their circuits and value counts, output shape and post-processing. It says
//!   nothing about weights; in image packing ([`ImageLayouts`]) it carries the layouts of the
//!   packed tensors, which reveal the linear layers' shapes.
//! - [`ServerPlan`] (`NAME.ron`): the public part plus the HE segments (linear ops with levels and
//!   scales), the mapping of tensors onto MPC steps, and a reference to the binary weights file
//!   with its SHA-256.
//!
//! Both carry [`PLAN_VERSION`] and the SHA-256 of the public part, which the parties compare at
//! the handshake.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::circuit::ShareCircuit;
use crate::layout::Layout;

/// The two-party protocol that evaluates an MPC step's circuit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum MpcBackend {
    /// Half-gates garbled circuits: constant rounds, 32 bytes per AND gate.
    #[default]
    Yao,
    /// GMW on XOR shares with Beaver triples: one round per AND layer, 2 bits per AND gate
    /// each way online.
    Gmw,
}

impl MpcStep {
    /// Index of the circuit `backend` runs for this step.
    pub fn circuit_for(&self, backend: MpcBackend) -> CircuitRef {
        match (backend, self.gmw_variant) {
            (MpcBackend::Gmw, crate::circuit::Style::Depth) => self.depth_circuit,
            _ => self.circuit,
        }
    }
}

impl MpcBackend {
    /// `yao` or `gmw`.
    pub fn tag(self) -> &'static str {
        match self {
            MpcBackend::Yao => "yao",
            MpcBackend::Gmw => "gmw",
        }
    }
}

/// What the compiler's cost model minimizes when it picks each step's back end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum MpcObjective {
    /// The time after the client's input is known (the offline phase runs ahead): GMW's
    /// strength on fast links, as MP2ML's Table 2 shows.
    #[default]
    Online,
    /// The whole session, offline and online.
    Total,
}

impl MpcObjective {
    /// `online` or `total`.
    pub fn tag(self) -> &'static str {
        match self {
            MpcObjective::Online => "online",
            MpcObjective::Total => "total",
        }
    }
}

/// A network between the parties, as the compiler's cost model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkProfile {
    /// Round-trip time in milliseconds.
    pub rtt_ms: f64,
    /// Bandwidth in Mbit/s (each direction).
    pub mbit_s: f64,
}

impl NetworkProfile {
    /// A LAN: 0.2 ms, 1 Gbit/s.
    pub const LAN: NetworkProfile = NetworkProfile {
        rtt_ms: 0.2,
        mbit_s: 1000.0,
    };
    /// A WAN: 40 ms, 100 Mbit/s.
    pub const WAN: NetworkProfile = NetworkProfile {
        rtt_ms: 40.0,
        mbit_s: 100.0,
    };
    /// Both parties on one machine over loopback TCP, as measured on the development machine
    /// (`mp2ml-bench cost`: 1-byte ping-pong round trip, one-way throughput of 256 MB).
    pub const LOOPBACK: NetworkProfile = NetworkProfile {
        rtt_ms: 0.03,
        mbit_s: 20000.0,
    };
}

impl Default for NetworkProfile {
    fn default() -> Self {
        NetworkProfile::LAN
    }
}

impl std::str::FromStr for NetworkProfile {
    type Err = String;

    /// `lan`, `wan`, `loopback` or `RTT_ms:Mbit_s` (e.g. `40:100`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lan" => return Ok(NetworkProfile::LAN),
            "wan" => return Ok(NetworkProfile::WAN),
            "loopback" => return Ok(NetworkProfile::LOOPBACK),
            _ => {}
        }
        let bad =
            || format!("network `{s}` is not lan, wan, loopback or RTT_ms:Mbit_s (e.g. 40:100)");
        let (r, m) = s.split_once(':').ok_or_else(bad)?;
        let rtt_ms: f64 = r.trim().parse().map_err(|_| bad())?;
        let mbit_s: f64 = m.trim().parse().map_err(|_| bad())?;
        if !(rtt_ms.is_finite() && rtt_ms >= 0.0 && mbit_s.is_finite() && mbit_s > 0.0) {
            return Err(format!(
                "network `{s}`: the RTT must be ≥ 0 ms and the bandwidth > 0 Mbit/s"
            ));
        }
        Ok(NetworkProfile { rtt_ms, mbit_s })
    }
}

/// Declares a typed index into one of a plan's vectors. `#[serde(transparent)]`: it is written
/// as the bare number, so the plan format is that of a `usize`.
macro_rules! plan_index {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub usize);

        impl $name {
            /// What the index names, for error messages.
            pub const WHAT: &'static str = $what;

            /// The raw position.
            pub fn index(self) -> usize {
                self.0
            }

            /// The element it names in `items`, or an [`IndexError`] if it is out of range
            /// (an untrusted plan may hold any number).
            pub fn get<T>(self, items: &[T]) -> Result<&T, IndexError> {
                items.get(self.0).ok_or(IndexError {
                    what: $what,
                    index: self.0,
                    len: items.len(),
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

plan_index!(
    /// Index of a ciphertext tensor in [`ServerPlan::tensors`].
    TensorRef,
    "tensor"
);
plan_index!(
    /// Index of a circuit in [`ClientPlan::circuits`].
    CircuitRef,
    "circuit"
);
plan_index!(
    /// Index of an MPC step in [`ClientPlan::mpc_steps`].
    StepRef,
    "MPC step"
);

/// A plan index that points past the end of the vector it names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} {index} does not exist (the plan has {len})")]
pub struct IndexError {
    /// What the index names (`tensor`, `circuit`, `MPC step`).
    pub what: &'static str,
    /// The index.
    pub index: usize,
    /// How many there are.
    pub len: usize,
}

/// Version of the plan format; a plan of another version is refused.
pub const PLAN_VERSION: u32 = 6;

/// CKKS parameters of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CkksParams {
    /// log2 of the ring dimension N.
    pub log_n: u32,
    /// The modulus chain: `moduli[0]` is q0 (the share modulus), then p1, …, pL.
    pub moduli: Vec<u64>,
    /// Security level the parameters were chosen for (128, 192 or 256 bits); both parties
    /// refuse parameters that do not meet it.
    pub security_bits: u32,
    /// Standard deviation of the encryption error.
    pub error_std: f64,
}

impl CkksParams {
    /// The ring dimension N.
    pub fn n(&self) -> usize {
        1usize << self.log_n
    }

    /// The highest level (number of moduli minus one).
    pub fn max_level(&self) -> usize {
        self.moduli.len().saturating_sub(1)
    }

    /// log2 of the product of all moduli.
    pub fn log_q(&self) -> f64 {
        self.moduli.iter().map(|&q| (q as f64).log2()).sum()
    }
}

/// Kind of a non-linear step, as the client sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ActivationKind {
    /// `max(x, 0)`.
    Relu,
    /// Max over windows of one plane, optionally followed by ReLU.
    MaxPool {
        /// Kernel `[kh, kw]`.
        kernel: [usize; 2],
        /// Strides `[sh, sw]`.
        strides: [usize; 2],
        /// ReLU fused after the max.
        relu: bool,
    },
    /// Clamp to `[min, max]`.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// `x ≥ 0 ? x : alpha·x`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// `x·x`.
    Square,
}

/// One non-linear step, public to both parties.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MpcStep {
    /// Name of the step (from the model's node names).
    pub name: String,
    /// What it computes.
    pub kind: ActivationKind,
    /// Index into [`ClientPlan::circuits`]: the size-optimal circuit, run under Yao.
    pub circuit: CircuitRef,
    /// Index into [`ClientPlan::circuits`]: the depth-optimized circuit of the same function
    /// and layout.
    pub depth_circuit: CircuitRef,
    /// The variant GMW runs (whichever the compiler's cost model found faster); Yao always
    /// runs the size-optimal one.
    pub gmw_variant: crate::circuit::Style,
    /// The Boolean back end the compiler chose for the network it compiled for
    /// (`mp2ml-run --mpc` overrides it for every step).
    pub backend: MpcBackend,
    /// Circuit instances per image.
    pub instances: usize,
    /// Ciphertexts the client receives (`instances · values_in`); each holds one value for every
    /// image of the batch, in circuit order (instance-major).
    pub values_in: usize,
    /// Ciphertexts the client sends back (`instances · values_out`).
    pub values_out: usize,
    /// Level at which the client encrypts the masked outputs.
    pub out_level: usize,
    /// Scale (log2) at which the client encrypts the outputs: it multiplies the masked
    /// integers `z` (at scale Δ) by `2^(out_scale_bits − scale_bits)` before encrypting, and the
    /// server subtracts its mask at the same scale. Encryption and unmasking are exact mod
    /// Q_ℓ, so the mask's size puts no bound on Q_ℓ; a larger scale is used where the values
    /// feed the output, whose flooding noise needs headroom below the scale.
    pub out_scale_bits: u32,
}

/// Client-side post-processing of the decrypted outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PostProcess {
    /// Raw outputs (logits).
    None,
    /// Softmax over the last axis.
    Softmax,
    /// Logistic sigmoid, element-wise.
    Sigmoid,
    /// Index of the largest output.
    ArgMax,
}

/// The model input, as the client encrypts it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// ONNX input name.
    pub name: String,
    /// Shape of one image (without the batch axis), e.g. `[1, 28, 28]`.
    pub shape: Vec<usize>,
    /// Level at which the client encrypts the input.
    pub level: usize,
    /// Range of input values the plan was compiled for.
    pub range: (f32, f32),
    /// Scale (log2) at which the client encodes the input.
    pub scale_bits: u32,
}

/// The model output, as the client decrypts it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// ONNX output name.
    pub name: String,
    /// Shape of one output (without the batch axis).
    pub shape: Vec<usize>,
    /// Level of the output ciphertexts.
    pub level: usize,
    /// Bits of the server's flooding noise.
    pub flood_bits: u32,
    /// Scale (log2) of the output ciphertexts: the client divides by `2^scale_bits`. It exceeds
    /// `flood_bits` by the output precision.
    pub scale_bits: u32,
    /// What the client applies after decrypting.
    pub post: PostProcess,
}

/// The entry flood (docs/ARCHITECTURE.md, "Flooding"): every ciphertext the client encrypts is
/// encoded times the product F of the `rescales` primes above the tensor's working level; the
/// server adds a public-key encryption of a flood of `bits` bits and rescales `rescales` times
/// before any weight touches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryFlood {
    /// Bits of the flood: σ_v + ⌈log2 B_fresh⌉.
    pub bits: u32,
    /// Primes of F (the extra rescales).
    pub rescales: usize,
}

/// The public part of a plan: everything the client needs and may know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientPlan {
    /// [`PLAN_VERSION`].
    pub version: u32,
    /// CKKS parameters.
    pub params: CkksParams,
    /// Fixed-point scale of activations: Δ = 2^scale_bits.
    pub scale_bits: u32,
    /// Statistical security of a whole session, in bits: the circuit masks and the output flood
    /// are [`ClientPlan::value_sigma`] bits wider than what they hide, so that the union bound
    /// over every statistically masked value of a session gives 2^-σ.
    pub sigma: u32,
    /// Images per ciphertext group (at most N); larger batches use several groups.
    pub batch: usize,
    /// Most images one session may carry (both parties refuse more); σ counts over them.
    pub session_images: usize,
    /// The entry flood of every client encryption.
    pub entry: EntryFlood,
    /// Input.
    pub input: InputSpec,
    /// The network the compiler chose each step's back end for.
    pub network: NetworkProfile,
    /// What the choice minimized.
    pub objective: MpcObjective,
    /// Non-linear steps in execution order.
    pub mpc_steps: Vec<MpcStep>,
    /// Deduplicated circuits referenced by the steps.
    pub circuits: Vec<ShareCircuit>,
    /// Output.
    pub output: OutputSpec,
    /// Image packing's layouts (absent in batch packing, whose plans do not carry the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageLayouts>,
}

/// One set of polynomials the client encrypts in image packing (per image): a tensor's
/// elements packed into `layout`, encrypted at `level`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    /// Where each element goes.
    pub layout: Layout,
    /// Level of the encryptions.
    pub level: usize,
}

/// Coefficient positions of values inside a set of polynomials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Positions {
    /// Polynomials of the set.
    pub polys: usize,
    /// `(polynomial, coefficient)` of each value, in order (a position may repeat).
    pub at: Vec<(u32, u32)>,
}

/// An MPC step in image packing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageStep {
    /// Where the step's input values (circuit order) sit in the polynomials the client
    /// decrypts.
    pub input: Positions,
    /// The layouts the client packs the step's outputs into (one upload per consuming layout).
    pub uploads: Vec<Upload>,
}

/// What the client needs to run an image-packed plan (Cheetah, Huang et al. 2022): the
/// layouts reveal the layers' shapes (channels, kernel sizes, strides, padding).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageLayouts {
    /// The uploads of the model input.
    pub input: Vec<Upload>,
    /// Per MPC step, in order.
    pub steps: Vec<ImageStep>,
    /// Where the output elements sit in the output polynomials.
    pub output: Positions,
}

/// Per-value statistical bits for `count` statistically masked values per session at session
/// security `sigma`: σ + ⌈log2 count⌉ (union bound); `None` on overflow.
pub fn value_sigma(sigma: u32, count: u128) -> Option<u32> {
    let log = 128 - count.max(1).saturating_sub(1).leading_zeros();
    sigma.checked_add(log)
}

impl ClientPlan {
    /// SHA-256 (hex) of the canonical RON text of the public part; fails if the plan cannot be
    /// serialized (never the hash of an empty text).
    pub fn hash(&self) -> Result<String, ron::Error> {
        // Hashes the compact RON text as it is produced (an ImageNet-size plan's text is
        // over a gigabyte).
        let mut h = HashWriter(Sha256::new());
        ron::ser::to_writer(&mut h, self)?;
        Ok(hex::encode(h.0.finalize()))
    }

    /// The circuit `r` names.
    pub fn circuit(&self, r: CircuitRef) -> Result<&ShareCircuit, IndexError> {
        r.get(&self.circuits)
    }

    /// The MPC step `r` names.
    pub fn step(&self, r: StepRef) -> Result<&MpcStep, IndexError> {
        r.get(&self.mpc_steps)
    }

    /// Values per image masked statistically: every circuit output (mask r'), every output
    /// element (output flood) and every coefficient the entry flood covers — in batch packing
    /// one per input element and per circuit output (a ciphertext's other coefficients never
    /// mix into them), in image packing all N coefficients of every upload polynomial (the
    /// kernel products mix every coefficient's noise into the wanted ones). The HE→MPC share
    /// masks are uniform mod q0 and do not count.
    pub fn masked_per_image(&self) -> u128 {
        let outs: u128 = self.mpc_steps.iter().map(|s| s.values_out as u128).sum();
        let elems = |s: &[usize]| s.iter().map(|&d| d as u128).product::<u128>();
        outs + self.entry_flooded_per_image() + elems(&self.output.shape)
    }

    /// Coefficients per image the entry flood covers (see [`ClientPlan::masked_per_image`]).
    pub fn entry_flooded_per_image(&self) -> u128 {
        match &self.image {
            None => {
                let outs: u128 = self.mpc_steps.iter().map(|s| s.values_out as u128).sum();
                let input: u128 = self.input.shape.iter().map(|&d| d as u128).product();
                outs + input
            }
            Some(l) => {
                let polys: u128 = l
                    .input
                    .iter()
                    .chain(l.steps.iter().flat_map(|s| &s.uploads))
                    .map(|u| u.layout.polys() as u128)
                    .sum();
                // Saturating on absurd (untrusted) plans: σ_v then exceeds 128 and is refused.
                let n = 1u128.checked_shl(self.params.log_n).unwrap_or(u128::MAX);
                polys.saturating_mul(n)
            }
        }
    }

    /// The per-value mask width of this plan: [`value_sigma`] over `session_images ×`
    /// [`ClientPlan::masked_per_image`].
    pub fn value_sigma(&self) -> Option<u32> {
        let count = (self.session_images as u128).checked_mul(self.masked_per_image())?;
        value_sigma(self.sigma, count)
    }
}

/// A tensor the server holds as ciphertexts: one ciphertext per element (per ciphertext group).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeTensor {
    /// Name (from the model).
    pub name: String,
    /// Shape of one image.
    pub shape: Vec<usize>,
    /// Level of its ciphertexts.
    pub level: usize,
    /// Image packing: the number of polynomials per image holding it (absent in batch
    /// packing, where the tensor is one ciphertext per element).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polys: Option<usize>,
}

impl HeTensor {
    /// Number of elements (ciphertexts per group); `usize::MAX` if the product overflows (a
    /// crafted plan), which every size check then refuses.
    pub fn len(&self) -> usize {
        self.shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX)
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A sparse integer matrix in the weights file (CSR), and its bias.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixRef {
    /// Byte offset of the section in the weights file.
    pub offset: u64,
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (concatenated inputs).
    pub cols: usize,
    /// Stored entries.
    pub nnz: usize,
}

/// One server-side operation of an HE segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HeOp {
    /// `out = rescale(W · concat(inputs) + b)`: weights are integers `round(W·p)` for the prime
    /// `p = moduli[level_in]`, bias `round(b·Δ·p)`, then the ciphertexts are divided by `p`.
    Linear {
        /// Name (the model nodes it came from).
        name: String,
        /// Input tensors, all at `level_in`, concatenated in this order.
        inputs: Vec<TensorRef>,
        /// Output tensor at `level_in − 1`.
        output: TensorRef,
        /// The matrix.
        matrix: MatrixRef,
        /// Level of the inputs.
        level_in: usize,
    },
    /// Image packing: `out[o] = rescale(Σ_(i, p, k) ∈ terms[o] inputs[i].poly[p] · kernel[k])`
    /// plus the bias at `positions` before the rescale. Kernel polynomials are integers
    /// `round(W·p)` for `p = moduli[level_in]`, stored in the weights file as the rows of a
    /// CSR matrix with N columns (column = coefficient); the bias `round(b·Δ·p)` of output
    /// element `e` (at `positions[e]`) is row `e`'s bias of the `bias` section.
    PolyLinear {
        /// Name (the model nodes it came from).
        name: String,
        /// Input tensors (sets of polynomials), all at `level_in`.
        inputs: Vec<TensorRef>,
        /// Output tensor at `level_in − 1`, one polynomial per entry of `terms`.
        output: TensorRef,
        /// The kernel polynomials.
        kernels: MatrixRef,
        /// The bias (rows: output elements, no entries).
        bias: MatrixRef,
        /// `(input, polynomial, kernel)` products summed into each output polynomial.
        terms: Vec<Vec<(u32, u32, u32)>>,
        /// `(polynomial, coefficient)` of every output element.
        positions: Vec<(u32, u32)>,
        /// Level of the inputs.
        level_in: usize,
    },
    /// Copies a tensor to a lower level (exact: dropping RNS limbs).
    ModDrop {
        /// Input tensor.
        input: TensorRef,
        /// Output tensor at `level`.
        output: TensorRef,
        /// Target level.
        level: usize,
    },
}

/// A linear segment evaluated by the server on ciphertexts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeSegment {
    /// Name.
    pub name: String,
    /// Operations in order.
    pub ops: Vec<HeOp>,
    /// Multiply-accumulates per image (sum of matrix entries).
    pub macs: u64,
}

/// The server's side of an MPC step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MpcBinding {
    /// Index into [`ClientPlan::mpc_steps`].
    pub step: StepRef,
    /// Tensor whose elements feed the circuits (mod-dropped to level 0 before sharing).
    pub input: TensorRef,
    /// Element indices of `input` in circuit order (`instances · values_in`).
    pub gather: Vec<u32>,
    /// Tensor that receives the outputs, element `i` = circuit output `i`.
    pub output: TensorRef,
}

/// One segment of the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Segment {
    /// Linear layers on ciphertexts (server only).
    He(HeSegment),
    /// A non-linear step (both parties).
    Mpc(MpcBinding),
}

/// The binary weights file the server plan refers to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsRef {
    /// File name, relative to the plan's folder.
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 (hex) of the file.
    pub sha256: String,
}

/// The server's plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerPlan {
    /// [`PLAN_VERSION`].
    pub version: u32,
    /// Model name.
    pub model: String,
    /// SHA-256 of [`ServerPlan::public`], checked at the handshake.
    pub public_hash: String,
    /// The public part (identical to the client plan).
    pub public: ClientPlan,
    /// Ciphertext tensors; tensor 0 is the encrypted input.
    pub tensors: Vec<HeTensor>,
    /// Index of the output tensor.
    pub output_tensor: TensorRef,
    /// Segments in execution order.
    pub segments: Vec<Segment>,
    /// Weights side file.
    pub weights: WeightsRef,
    /// Image packing: the tensors the client's uploads fill (aligned with
    /// [`ImageLayouts`]'s upload lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageTensors>,
}

impl ServerPlan {
    /// The tensor `r` names.
    pub fn tensor(&self, r: TensorRef) -> Result<&HeTensor, IndexError> {
        r.get(&self.tensors)
    }
}

/// The tensors of the client's uploads in an image-packed plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageTensors {
    /// One per upload of the model input.
    pub input: Vec<TensorRef>,
    /// Per MPC step, one per upload of its outputs.
    pub steps: Vec<Vec<TensorRef>>,
}

/// A SHA-256 fed by `fmt::Write` (what the RON serializer writes to).
struct HashWriter(Sha256);

impl std::fmt::Write for HashWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// [`ClientPlanFile`] borrowing its parts, to write one without copying the plan (it
/// serializes exactly as [`ClientPlanFile`]).
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename = "ClientPlanFile")]
pub struct ClientPlanFileRef<'a> {
    /// [`PLAN_VERSION`].
    pub version: u32,
    /// SHA-256 of `plan`.
    pub public_hash: &'a str,
    /// The public part.
    pub plan: &'a ClientPlan,
}

/// The client's plan file: the public part and its hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientPlanFile {
    /// [`PLAN_VERSION`].
    pub version: u32,
    /// SHA-256 of `plan`.
    pub public_hash: String,
    /// The public part.
    pub plan: ClientPlan,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_written_as_bare_numbers() {
        // `#[serde(transparent)]`: the plan format is that of a usize.
        let b = MpcBinding {
            step: StepRef(2),
            input: TensorRef(5),
            gather: vec![1],
            output: TensorRef(6),
        };
        let text = ron::ser::to_string(&b).expect("ron");
        assert_eq!(text, "(step:2,input:5,gather:[1],output:6)");
        let back: MpcBinding = ron::from_str(&text).expect("parse");
        assert_eq!(back, b);
    }

    #[test]
    fn out_of_range_index_is_an_error() {
        let v = [10, 20, 30];
        assert_eq!(TensorRef(2).get(&v), Ok(&30));
        let e = TensorRef(3).get(&v).expect_err("out of range");
        assert_eq!(
            e,
            IndexError {
                what: "tensor",
                index: 3,
                len: 3
            }
        );
        assert_eq!(e.to_string(), "tensor 3 does not exist (the plan has 3)");
    }
}
