"""Random Hessians for the coupled quadratic objective of Eqs. 6-11.

``"scaled"``: ``H = D^{1/2} R D^{1/2}`` with ``D = diag(d)``, d log-uniform over ``log10_diag`` and ``R`` a
correlation matrix with Haar-random eigenvectors and eigenvalues log-uniform in ``[1, mixing]`` (rescaled to
unit diagonal). Then H_ii = d_i spans the requested decades, the eigenvalues span at least as many, and every
parameter is coupled to every other. ``"haar"``: ``H = Q diag(e) Qᵀ`` with Haar Q and e log-uniform; its
diagonal concentrates near the mean eigenvalue (the per-parameter ⟨g²⟩ then barely varies), which is why
``"scaled"`` is the default for a Fig. 3 from a real objective.
"""

from __future__ import annotations

import numpy as np

__all__ = ["haar_orthogonal", "make_hessian"]


def haar_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-distributed orthogonal matrix, shape (n, n) (QR of a Gaussian matrix with sign fix)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def make_hessian(
    n: int,
    log10_diag: tuple[float, float],
    rng: np.random.Generator,
    kind: str = "scaled",
    mixing: float = 10.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw a symmetric positive-definite Hessian.

    Parameters
    ----------
    n : int
        Dimension, >= 2.
    log10_diag : (float, float)
        log10 range of H_ii (``"scaled"``) or of the eigenvalues (``"haar"``).
    rng : np.random.Generator
    kind : {"scaled", "haar"}
    mixing : float
        Condition number >= 1 of the correlation matrix R (``"scaled"`` only).

    Returns
    -------
    H : ndarray, shape (n, n)
    eigenvalues : ndarray, shape (n,), ascending
    sqrt_factor : ndarray, shape (n, n)
        L with ``L Lᵀ = H`` (``V diag(sqrt(e))``), for drawing ξ ~ N(0, H) (Eq. 7).
    """
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    lo, hi = log10_diag
    if not lo < hi:
        raise ValueError(f"log10_diag must be increasing, got {log10_diag}")
    if kind not in ("scaled", "haar"):
        raise ValueError(f"kind must be 'scaled' or 'haar', got {kind!r}")
    if not mixing >= 1.0:
        raise ValueError(f"mixing must be >= 1, got {mixing}")
    q = haar_orthogonal(n, rng)
    if kind == "haar":
        h = (q * 10.0 ** rng.uniform(lo, hi, n)) @ q.T
    else:
        r = (q * np.geomspace(1.0, mixing, n)) @ q.T
        s = 1.0 / np.sqrt(np.diag(r))
        r = r * s[:, None] * s[None, :]
        sd = np.sqrt(10.0 ** rng.uniform(lo, hi, n))
        h = r * sd[:, None] * sd[None, :]
    h = 0.5 * (h + h.T)
    e, v = np.linalg.eigh(h)
    if e[0] <= 0:
        raise ValueError("the drawn Hessian is not positive definite; narrow log10_diag or lower mixing")
    return h, e, v * np.sqrt(e)
