"""Clustering: K-means (k-means++, seeded) over L2-normalised query embeddings.

Three implementations, chosen by size and device (issue 13):

- scikit-learn `KMeans` (Lloyd, one BLAS thread): the reference, up to 200k queries on CPU;
- scikit-learn `MiniBatchKMeans` on CPU past `MINIBATCH_MIN` queries;
- `torch_kmeans` (k-means++ seeding, then Lloyd's iterations in torch) on a GPU from
  `GPU_MIN` queries, where the GPU is chosen (`avengers_core.device.choose_device`).

All are seeded and reproducible; centroids are re-normalised for cosine routing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avengers_core.embed.base import normalise
from avengers_core.errors import InputError
from avengers_core.routing.effective_k import distinct, quiet_fit, refit_if_fewer

DEFAULT_K = 64
GPU_MIN = 50_000  # issue 13: from here on, a GPU clusters
MINIBATCH_MIN = 200_000  # issue 13: past this on CPU, MiniBatchKMeans
MINIBATCH_SIZE = 4096  # rows per mini-batch (scikit-learn's default 1024 is noisier)
LLOYD_ITERS = 100  # at most; stops when no query changes cluster
ROWS = 65_536  # rows per block when computing distances (bounds the N × K temporaries)


@dataclass
class Clustering:
    """K unit-norm centroids and each training query's cluster."""

    centroids: np.ndarray  # (K, d) float32, unit norm
    labels: np.ndarray  # (N,) int
    asked: int | None = None  # the K asked for; `k` is less when clusters were dropped

    @property
    def k(self) -> int:
        return len(self.centroids)

    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.k)


def method_for(n: int, device: str | None = None) -> tuple[str, str]:
    """(implementation, device) for `n` queries: ("torch", gpu) from `GPU_MIN` queries when
    the chosen device is a GPU, ("minibatch", "cpu") past `MINIBATCH_MIN`, else ("lloyd",
    "cpu"). The device is only looked up (importing torch) for tables that large."""
    from avengers_core.device import choose_device, is_gpu

    if n >= GPU_MIN:
        chosen = choose_device(device)
        if is_gpu(chosen):
            return "torch", chosen
    return ("minibatch" if n > MINIBATCH_MIN else "lloyd"), "cpu"


def kmeans(x: np.ndarray, k: int = DEFAULT_K, seed: int = 0, n_init: int = 1,
           device: str | None = None) -> Clustering:
    """K-means with k-means++ seeding over the rows of `x` (N, d); centroids re-normalised.

    `device`: None/"auto" (`AVENGERS_DEVICE`, else the fastest present), "cpu", "cuda",
    "cuda:N" or "mps" (see `method_for`). `x` is used in place when it is already unit-norm
    float32 (embeddings are), so no second copy of a large table is made. Clusters that hold
    no query or repeat another's centroid are dropped (`effective_k.keep_distinct`), and a
    table with fewer distinct rows than `k` is fitted with that many clusters, so the
    result may have fewer than `k` clusters (`asked` records `k`). Raises InputError
    when K < 1 or N < K."""
    if k < 1:
        raise InputError(f"K must be at least 1, got {k}")
    if len(x) < k:
        raise InputError(f"{len(x)} queries but K = {k} clusters asked for (expected N >= K)")
    x = unit_rows(x)
    method, dev = method_for(len(x), device)
    if method == "torch":
        return refit_if_fewer(distinct(torch_kmeans(x, k, seed, dev), k), x,
                              lambda d: kmeans(x, d, seed, n_init, device))
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    if method == "minibatch":
        # k-means++ on a sample of 3 batches, best of 3 (cheap), then mini-batch updates
        km = MiniBatchKMeans(n_clusters=k, init="k-means++", n_init=max(n_init, 3),
                             batch_size=MINIBATCH_SIZE, random_state=seed)
    else:
        km = KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed)
    # One BLAS thread: k-means++ seeding does many small matrix products, and two BLAS
    # threads waiting on each other run 2-10x slower when another program (Ollama, a
    # browser) holds a core; quiet, the difference is within noise (BENCHMARKS.md).
    with threadpool_limits(limits=1, user_api="blas"):
        labels = quiet_fit(lambda: km.fit_predict(x))  # issue 22: no raw library warning
    # issue 22: near-duplicate queries leave empty or repeated clusters; keep those that exist
    found = distinct(Clustering(centroids=normalise(km.cluster_centers_),
                                labels=labels.astype(int)), k)
    return refit_if_fewer(found, x, lambda d: kmeans(x, d, seed, n_init, device))


def unit_rows(x: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """`x` itself when it is C-contiguous float32 with unit-norm rows, else a normalised
    copy (checked a block at a time, so the check itself holds no N × d temporary)."""
    if x.dtype == np.float32 and x.flags.c_contiguous and x.ndim == 2:
        ok = all(np.abs(np.einsum("ij,ij->i", b, b) - 1.0).max(initial=0.0) <= tol
                 for b in (x[s : s + ROWS] for s in range(0, len(x), ROWS)))
        if ok:
            return x
    return normalise(x)


def torch_kmeans(x: np.ndarray, k: int, seed: int = 0, device: str = "cuda",
                 max_iter: int = LLOYD_ITERS) -> Clustering:
    """K-means in torch on `device`: k-means++ seeding (Arthur & Vassilvitskii, 2007: each
    next centre drawn with probability ∝ squared distance to the nearest one chosen, from a
    `torch.Generator` seeded with `seed`), then Lloyd's iterations until no row changes
    cluster (at most `max_iter`). `x`: (N, d) float32, moved to the device once.

    Cluster sums are one-hot matrix products, not atomic scatter-adds, so a run repeats
    bit for bit on the same device. An emptied cluster takes the row farthest from its
    centre, as scikit-learn does."""
    import torch

    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)
    n = xt.shape[0]
    sq = (xt * xt).sum(dim=1)
    first = int(torch.randint(n, (1,), generator=gen))
    centres = xt[first : first + 1].clone()
    d2 = _sq_dist(xt, sq, centres).squeeze(1)
    for _ in range(1, k):
        weights = d2.clamp_min(0).cpu().double()  # MPS has no float64
        pick = (int(torch.multinomial(weights, 1, generator=gen)) if weights.sum() > 0
                else int(torch.randint(n, (1,), generator=gen)))
        centres = torch.cat([centres, xt[pick : pick + 1]])
        d2 = torch.minimum(d2, _sq_dist(xt, sq, centres[-1:]).squeeze(1))
    labels = torch.full((n,), -1, dtype=torch.long, device=dev)
    for _ in range(max_iter):
        new, best = _assign(xt, sq, centres)
        if torch.equal(new, labels):
            break
        labels = new
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros((k, xt.shape[1]), dtype=xt.dtype, device=dev)
        for s in range(0, n, ROWS):
            onehot = torch.nn.functional.one_hot(labels[s : s + ROWS], k).to(xt.dtype)
            sums += onehot.T @ xt[s : s + ROWS]
        empty = torch.nonzero(counts == 0).flatten()
        centres = sums / counts.clamp_min(1).unsqueeze(1).to(xt.dtype)
        if len(empty):
            far = torch.argsort(best, descending=True, stable=True)[: len(empty)]
            centres[empty] = xt[far]
    out = centres.cpu().numpy()
    return Clustering(centroids=normalise(out), labels=labels.cpu().numpy().astype(int))


def _sq_dist(xt, sq, centres):
    """(N, C) squared Euclidean distances, ‖x‖² − 2 x·c + ‖c‖², a block of rows at a time."""
    import torch

    csq = (centres * centres).sum(dim=1)
    return torch.cat([sq[s : s + ROWS, None] - 2 * xt[s : s + ROWS] @ centres.T + csq
                      for s in range(0, len(xt), ROWS)])


def _assign(xt, sq, centres):
    """Nearest centre of every row and the squared distance to it."""
    import torch

    labels, best = [], []
    csq = (centres * centres).sum(dim=1)
    for s in range(0, len(xt), ROWS):
        d = sq[s : s + ROWS, None] - 2 * xt[s : s + ROWS] @ centres.T + csq
        v, i = d.min(dim=1)
        labels.append(i)
        best.append(v)
    return torch.cat(labels), torch.cat(best)
