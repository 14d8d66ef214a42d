"""The Python density-peaks reference of docs/clustering.md: pydpc on the same points as the Rust
exact run, timed the same way, then compared point by point.

Usage: python_reference.py DATA.f32 DIM RUST_DUMP.csv RUST_SECONDS RUST_CPU_SECONDS
"""

import sys
import time

import numpy as np
import pydpc


def main():
    data_path, dim, dump_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rust_s, rust_cpu = float(sys.argv[4]), float(sys.argv[5])
    points = np.fromfile(data_path, dtype="<f4").reshape(-1, dim).astype(np.float64)
    n = points.shape[0]
    t0 = time.perf_counter()
    c0 = time.process_time()
    # The same algorithm as the Rust run: Gaussian kernel, d_c at 2 % of the pairwise distances,
    # delta and nearest denser neighbour over all pairs, then assignment and halo.
    clu = pydpc.Cluster(points, fraction=0.02, autoplot=False)
    t1 = time.perf_counter()
    gamma = clu.density * clu.delta
    order = np.argsort(-gamma)
    rust = np.genfromtxt(dump_path, delimiter=",", names=True)
    k = int(rust["cluster"].max()) + 1
    # Centres: pydpc takes a density/delta rectangle; pick one that selects the k points of
    # largest gamma where possible (the selection itself costs nothing either way).
    top = order[:k]
    clu.assign(min_density=clu.density[top].min() - 1e-9, min_delta=clu.delta[top].min() - 1e-9)
    t2 = time.perf_counter()
    py_s = t2 - t0
    py_cpu = time.process_time() - c0
    rho_corr = np.corrcoef(clu.density, rust["rho"])[0, 1]
    same_nd = np.mean(clu.neighbour[np.argsort(-clu.density)[1:]] == rust["nearest_denser"][np.argsort(-clu.density)[1:]])
    print(f"pydpc {pydpc.__version__}: n={n} dim={dim}: graph {t1 - t0:.1f} s, assign+halo {t2 - t1:.1f} s, "
          f"total {py_s:.1f} s wall, {py_cpu:.1f} CPU-s")
    print(f"rust exact (same points, gaussian, 2 %): {rust_s:.1f} s wall, {rust_cpu:.1f} CPU-s")
    print(f"speed-up: {py_s / rust_s:.1f}x wall clock, {py_cpu / rust_cpu:.1f}x CPU time")
    print(f"agreement: corr(rho) {rho_corr:.6f}, identical nearest denser point for {same_nd * 100:.2f} % of points, "
          f"pydpc clusters {clu.nclusters}, rust clusters {k}")


if __name__ == "__main__":
    main()
