//! f32 reference executor (in progress).
