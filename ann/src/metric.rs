//! How vectors are compared.

/// How vectors are compared. Scores are higher-is-better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Cosine similarity (vectors are normalised when stored).
    Cosine,
    /// Dot product (inner product search).
    Dot,
    /// *Negative* euclidean distance.
    Euclidean,
}

impl Metric {
    /// `cosine`, `dot` or `euclidean` (the name in index files).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::Euclidean => "euclidean",
        }
    }
}
